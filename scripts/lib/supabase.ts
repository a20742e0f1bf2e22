// The real Supabase CLI (from node_modules), pointed at a database URL instead of Docker.
import { bin, root } from "./paths.ts";
import { must, run, type RunResult } from "./proc.ts";

// The CLI tries TLS first and warns when a local server refuses it.
const env = { PGSSLMODE: "disable", SUPABASE_YES: "1", DO_NOT_TRACK: "1", SUPABASE_TELEMETRY_DISABLED: "1" };

export async function supabase(args: string[]): Promise<RunResult> {
  return await run(bin("supabase"), args, { cwd: root, env });
}

/**
 * The seed files of the local stack: the catalog (the only one supabase/config.toml names, so
 * the only one a hosted `supabase db push --include-seed` applies) and the demo users.
 */
export const localSeeds = ["./seed/catalog.sql", "./seed/demo.sql"];

/**
 * Applies pending migrations and the local seeds (which the CLI runs once per content hash),
 * from `workdir` (a copy of the project holding only some migrations, for the upgrade test).
 */
export async function pushMigrations(url: string, seeds = localSeeds, workdir = root): Promise<string[]> {
  const result = await must("supabase db push", bin("supabase"), [
    "db",
    "push",
    `--workdir=${workdir}`,
    `--remote=${url}`,
    "--yes",
    "--include-seed",
  ], {
    cwd: root,
    env: { ...env, SUPABASE_DB_SEED_SQL_PATHS: seeds.join(",") },
  });
  const text = result.stdout + "\n" + result.stderr;
  return [...text.matchAll(/Applying migration (\S+?)\.\.\./g)].map((m) => m[1]);
}

/** The TypeScript types of the public schema, exactly as `supabase gen types` prints them. */
export async function generateTypes(url: string): Promise<string> {
  const result = await must("supabase gen types", bin("supabase"), [
    "gen",
    "types",
    "--lang=typescript",
    "--schema=public",
    `--remote=${url}`,
  ], {
    cwd: root,
    env,
  });
  return result.stdout;
}
