/**
 * Story: an operator deploys to a hosted Supabase project the way the README says:
 * `npx supabase db push --include-seed`. The CLI applies the seed files that
 * supabase/config.toml names, and nothing else; that must be the catalog alone. A production
 * database must not get the demo users, and above all not a staff admin whose mailbox the
 * operator does not control. Then the operator makes the first staff admin with the README's
 * SQL line.
 *
 * Runs the real CLI against a database of its own (created beside the test database, with
 * the platform bootstrap a hosted project has), without the local stack's seed override.
 */
import { assertEquals } from "./_support/assert.ts";
import { join } from "node:path";
import { Cluster, pgBin } from "../../../scripts/lib/postgres.ts";
import { bin, root } from "../../../scripts/lib/paths.ts";
import { must, run } from "../../../scripts/lib/proc.ts";

const testDb = new URL(Deno.env.get("SUPABASE_DB_URL") ?? "postgresql://postgres:postgres@127.0.0.1:54322/postgres");
const cluster = new Cluster({ dir: "", port: Number(testDb.port) });
const database = `hosted_deploy_${Deno.pid}`;

/** One value, as psql prints it unaligned. */
async function query(sql: string, user = "postgres"): Promise<string> {
  const result = await must("psql", join(pgBin, "psql"), [
    "-X",
    "-Atq",
    "-v",
    "ON_ERROR_STOP=1",
    "-d",
    cluster.url(user, database),
    "-c",
    sql,
  ]);
  return result.stdout.trim();
}

Deno.test("the README's hosted deploy seeds the catalog, and creates no user and no staff admin", async () => {
  await cluster.freshDatabase(database);
  try {
    // Exactly the README's command, with nothing of the local stack in its environment.
    const env: Record<string, string> = { PGSSLMODE: "disable", DO_NOT_TRACK: "1", SUPABASE_TELEMETRY_DISABLED: "1" };
    const push = await run(bin("supabase"), [
      "db",
      "push",
      "--include-seed",
      "--yes",
      `--remote=${cluster.url("postgres", database)}`,
    ], {
      cwd: root,
      env: { ...env, SUPABASE_DB_SEED_SQL_PATHS: "" },
    });
    assertEquals(push.code, 0, push.stderr);
    assertEquals(
      await query("select string_agg(key, ',' order by tier) from public.plans"),
      "free,starter,pro,enterprise",
      "the catalog is there",
    );
    assertEquals(await query("select count(*) from auth.users"), "0", "no user");
    assertEquals(await query("select count(*) from public.user_roles where role = 'admin'"), "0", "no staff admin");
    assertEquals(
      await query("select string_agg(path, ',') from supabase_migrations.seed_files", "supabase_admin"),
      "supabase/seed/catalog.sql",
      "the catalog is the only seed file applied",
    );

    // The first staff admin, once the operator has signed up (README, "Deploying to a hosted project").
    await query(
      `insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                   confirmation_token, recovery_token, email_change_token_new, email_change, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
                 values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated', 'ops@example.com', '',
                   now(), '', '', '', '', '{"provider": "email", "providers": ["email"]}', '{}', now(), now())`,
      "supabase_admin",
    );
    const readme = await Deno.readTextFile(`${root}/README.md`);
    const line = readme.match(/^update public\.user_roles set role = 'admin'.*$/m)?.[0];
    assertEquals(typeof line, "string", "the README has the SQL line");
    await query(line!.replace("you@example.com", "ops@example.com"));
    assertEquals(
      await query(
        "select u.email from public.user_roles r join auth.users u on u.id = r.user_id where r.role = 'admin'",
      ),
      "ops@example.com",
    );
  } finally {
    await cluster.psql({ command: `drop database if exists ${database} with (force)` }, "supabase_admin", "template1");
  }
});
