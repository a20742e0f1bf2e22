// The local stack: the development cluster, its database and the functions server.
import { join } from "node:path";
import { Cluster, ensurePackages, portInUse, PRELOADED_LIBRARIES } from "./postgres.ts";
import { ensureCronPackage, preloadCron } from "./cron.ts";
import {
  DEV_DB_PORT,
  devClusterDir,
  FUNCTIONS_PORT,
  functionsLogFile,
  functionsPidFile,
  functionsUrl,
} from "./config.ts";
import { bin, displayPath, local, root } from "./paths.ts";
import { exists, must } from "./proc.ts";
import { pushMigrations } from "./supabase.ts";
import { dim, step, UserError } from "./log.ts";

export const devCluster = () => new Cluster({ dir: devClusterDir, port: DEV_DB_PORT });

/** Starts (creating on first use) the development cluster and brings its database up to date. */
export async function upDatabase(cluster = devCluster()): Promise<{ applied: string[]; created: boolean }> {
  await step(
    "Checking Debian packages (PostgreSQL 15, pgTAP, plpgsql_check, pg_prove)",
    () => ensurePackages(console.log),
  );
  const created = !(await cluster.initialized());
  if (created) {
    await step(`Creating a PostgreSQL 15 cluster in ${dim(displayPath(cluster.dir))}`, async () => {
      await cluster.init();
      // pg_cron loads at server start: set it up before the first one, so that npm start does not
      // have to restart the new server to load it.
      await ensureCronPackage(console.log);
      await preloadCron(cluster, PRELOADED_LIBRARIES);
    });
  }
  // A Debian upgrade under a running server leaves it unable to load its own libraries
  // (plpgsql.so: "undefined symbol") in new connections: restart it on the new binaries.
  const outdated = await cluster.outdatedBy();
  if (outdated) await step(`Restarting PostgreSQL: ${outdated} (the data stays)`, () => cluster.restart());
  await step(`Starting PostgreSQL on port ${cluster.port}`, () => cluster.start());
  if (!(await isBootstrapped(cluster))) {
    await step("Bootstrapping the Supabase platform (roles, auth, storage, extensions)", () => cluster.bootstrap());
  }
  const applied = await step(
    "Applying migrations and seed with `supabase db push`",
    () => pushMigrations(cluster.url()),
  );
  for (const m of applied) console.log(dim(`    applied ${m}`));
  return { applied, created };
}

/**
 * The bootstrap runs once per database: re-running it would put back the legacy default
 * privileges that our first migration removed, which a real project never does.
 */
export async function isBootstrapped(cluster: Cluster): Promise<boolean> {
  const result = await cluster.psql(
    { command: "select to_regclass('auth.users') is not null" },
    "supabase_admin",
    "postgres",
    "check bootstrap",
  );
  return result.stdout.includes("t");
}

/** Fresh database on the running development cluster: bootstrap, migrations, seed. */
export async function resetDatabase(cluster = devCluster()): Promise<string[]> {
  await step("Recreating the database", () => cluster.freshDatabase());
  return await step("Applying migrations and seed with `supabase db push`", () => pushMigrations(cluster.url()));
}

export async function requireRunningDatabase(cluster = devCluster()): Promise<Cluster> {
  if (!(await cluster.running())) throw new UserError("the local database is not running", "run `npm start` first");
  return cluster;
}

// ---------------------------------------------------------------------------
// Functions server
// ---------------------------------------------------------------------------

async function readPid(): Promise<number | null> {
  try {
    const pid = Number((await Deno.readTextFile(functionsPidFile)).trim());
    return Number.isInteger(pid) && pid > 0 && (await exists(`/proc/${pid}`)) ? pid : null;
  } catch {
    return null;
  }
}

export async function stopFunctions(): Promise<boolean> {
  const pid = await readPid();
  await Deno.remove(functionsPidFile).catch(() => {});
  if (!pid) return false;
  try {
    Deno.kill(-pid, "SIGTERM"); // the server leads its own process group (setsid)
  } catch {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* already gone */ }
  }
  for (let i = 0; i < 50 && (await exists(`/proc/${pid}`)); i++) await delay(100);
  return true;
}

/** (Re)starts the server that serves every function at /functions/v1/<name>, detached from this command. */
export async function startFunctions(env: Record<string, string>): Promise<void> {
  await stopFunctions();
  if (portInUse(FUNCTIONS_PORT)) {
    throw new UserError(
      `port ${FUNCTIONS_PORT} (functions) is taken by another process`,
      `stop it (\`ss -ltnp 'sport = :${FUNCTIONS_PORT}'\` shows which; \`npx supabase stop\` if it is a Docker stack) or set LEDGERBASE_FUNCTIONS_PORT`,
    );
  }
  await Deno.mkdir(local, { recursive: true });
  const command = [
    bin("deno"),
    "run",
    "-A",
    "--quiet",
    "--watch=supabase/functions/",
    join(root, "scripts", "functions-server.ts"),
  ]
    .map(shellQuote).join(" ");
  const result = await must("start the functions server", "sh", [
    "-c",
    `setsid ${command} >> ${shellQuote(functionsLogFile)} 2>&1 < /dev/null & echo $!`,
  ], { cwd: root, env: { ...env, FUNCTIONS_PORT: String(FUNCTIONS_PORT) } });
  await Deno.writeTextFile(functionsPidFile, result.stdout.trim());
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${FUNCTIONS_PORT}/health`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch { /* not up yet */ }
    if (!(await readPid())) break;
    await delay(200);
  }
  const log = await Deno.readTextFile(functionsLogFile).catch(() => "");
  throw new UserError(
    `the functions server did not start:\n${log.split("\n").slice(-20).join("\n")}`,
    `see ${functionsLogFile}`,
  );
}

export { functionsUrl };

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
