// pg_cron on the local cluster: installed from Debian (postgresql-15-cron) when root, loaded
// at server start (shared_preload_libraries, cron.database_name), created by supabase_admin
// as on Supabase, and given the SQL sweepers listed in private.sweepers.
import { join } from "node:path";
import { UserError } from "./log.ts";
import { type Cluster, pgBin } from "./postgres.ts";
import { exists, isRoot, must } from "./proc.ts";

export const CRON_PACKAGE = "postgresql-15-cron";
const CRON_CONTROL = "/usr/share/postgresql/15/extension/pg_cron.control";

/** Installs postgresql-15-cron when root; otherwise says exactly what to run. */
export async function ensureCronPackage(log: (line: string) => void = () => {}): Promise<void> {
  if (await exists(CRON_CONTROL)) return;
  const command = `apt-get update && apt-get install -y ${CRON_PACKAGE}`;
  if (!isRoot()) {
    throw new UserError(
      `missing Debian package: ${CRON_PACKAGE}`,
      `run as root: sudo sh -c '${command}'  (then run this command again)`,
    );
  }
  log(`installing ${CRON_PACKAGE} with apt-get (once per machine)`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await must("apt-get update", "apt-get", ["update", "-qq"], { env });
  await must("apt-get install", "apt-get", ["install", "-y", "-qq", "--no-install-recommends", CRON_PACKAGE], { env });
}

/** One value from SQL, unaligned and without headers. */
async function query(cluster: Cluster, sql: string, user = "supabase_admin"): Promise<string> {
  const result = await must("psql", join(pgBin, "psql"), [
    "-X",
    "-q",
    "-tA",
    "-v",
    "ON_ERROR_STOP=1",
    "-d",
    cluster.url(user),
    "-c",
    sql,
  ]);
  return result.stdout.trim();
}

/** Adds pg_cron to shared_preload_libraries (restarting the server once) and sets its database. */
export async function ensureCronLoaded(cluster: Cluster): Promise<boolean> {
  const preload = await query(cluster, "show shared_preload_libraries");
  const libraries = preload.split(",").map((s) => s.trim()).filter(Boolean);
  if (libraries.includes("pg_cron")) return false;
  await preloadCron(cluster, libraries);
  await cluster.stop();
  await cluster.start();
  return true;
}

/**
 * Writes the settings that load pg_cron at the next server start, after `libraries` (those the
 * cluster preloads already). Written to the cluster's auto.conf as initdb's settings are: ALTER
 * SYSTEM refuses the cron.* settings until the library is loaded, and they only take effect at
 * server start. `npm test` calls it before its cluster's first start, so no restart.
 */
export async function preloadCron(cluster: Cluster, libraries: string[]): Promise<void> {
  const settings = [
    `shared_preload_libraries = '${[...libraries, "pg_cron"].join(", ")}'`,
    `cron.database_name = 'postgres'`,
    // Jobs run in background workers: no connection, so no password or socket to configure.
    `cron.use_background_workers = on`,
    `max_worker_processes = 20`,
  ];
  await Deno.writeTextFile(join(cluster.dir, "postgresql.auto.conf"), settings.join("\n") + "\n", { append: true });
}

/** What supabase_admin runs to enable pg_cron as on Supabase, where postgres manages its own cron jobs. */
export const CRON_SETUP_SQL = "create extension if not exists pg_cron; " +
  "grant usage on schema cron to postgres; grant all on all tables in schema cron to postgres";

export interface CronStatus {
  scheduled: string[];
  waiting: string[];
}

/** Creates the extension as on Supabase and schedules the SQL sweepers (private.schedule_sweepers()). */
export async function scheduleSweepers(cluster: Cluster): Promise<CronStatus> {
  await query(cluster, CRON_SETUP_SQL);
  const rows = (await query(
    cluster,
    "select job_name || '|' || schedule || '|' || scheduled from private.schedule_sweepers()",
    "postgres",
  ))
    .split("\n").filter(Boolean).map((line) => line.split("|"));
  return {
    scheduled: rows.filter((r) => r[2] === "true").map((r) => `${r[0].replace(/^ledgerbase-/, "")} (${r[1]})`),
    waiting: rows.filter((r) => r[2] !== "true").map((r) => r[0].replace(/^ledgerbase-/, "")),
  };
}

/** Everything `npm start` needs from pg_cron; returns a line for the status table. */
export async function startCron(cluster: Cluster, log: (line: string) => void = () => {}): Promise<string> {
  await ensureCronPackage(log);
  if (await ensureCronLoaded(cluster)) log("restarted PostgreSQL to load pg_cron");
  const status = await scheduleSweepers(cluster);
  const waiting = status.waiting.length ? `; waiting for ${status.waiting.join(", ")}` : "";
  return `${status.scheduled.length} sweepers scheduled: ${status.scheduled.join(", ")}${waiting}`;
}
