// A private PostgreSQL 15 cluster in a folder of its own (paths.ts clusterHome), run by the
// `postgres` OS user when we are root.
import { dirname, join } from "node:path";
import { UserError } from "./log.ts";
import { exists, isRoot, must, run } from "./proc.ts";
import { platformDir } from "./paths.ts";

const PG_VERSION = "15";
export const pgBin = Deno.env.get("PG_BIN") ?? `/usr/lib/postgresql/${PG_VERSION}/bin`;
const pgShare = `/usr/share/postgresql/${PG_VERSION}`;
/** The libraries every cluster loads at server start (pg_cron is added by lib/cron.ts). */
export const PRELOADED_LIBRARIES = ["pg_stat_statements"];

/** The Debian packages we need, each with a file that proves it is installed. */
const packages: Array<{ name: string; probe: string }> = [
  { name: `postgresql-${PG_VERSION}`, probe: join(pgBin, "initdb") },
  { name: `postgresql-${PG_VERSION}-pgtap`, probe: join(pgShare, "extension", "pgtap.control") },
  { name: `postgresql-${PG_VERSION}-plpgsql-check`, probe: join(pgShare, "extension", "plpgsql_check.control") },
  { name: "libtap-parser-sourcehandler-pgtap-perl", probe: "/usr/bin/pg_prove" },
];

/** Installs missing Debian packages when root; otherwise says exactly what to run. */
export async function ensurePackages(log: (line: string) => void = () => {}): Promise<void> {
  const missing: string[] = [];
  for (const p of packages) if (!(await exists(p.probe))) missing.push(p.name);
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y ${missing.join(" ")}`;
  if (!isRoot()) {
    throw new UserError(
      `missing Debian packages: ${missing.join(", ")}`,
      `run as root: sudo sh -c '${command}'  (then run this command again)`,
    );
  }
  log(`installing ${missing.join(", ")} with apt-get (once per machine)`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await must("apt-get update", "apt-get", ["update", "-qq"], { env });
  await must("apt-get install", "apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env });
}

export interface ClusterOptions {
  dir: string;
  port: number;
  /** Throw-away clusters trade durability for speed. */
  ephemeral?: boolean;
}

export class Cluster {
  constructor(readonly options: ClusterOptions) {}

  get dir() {
    return this.options.dir;
  }
  get port() {
    return this.options.port;
  }

  /** A connection URL over TCP, as the Supabase CLI and the edge functions use it. */
  url(user = "postgres", database = "postgres"): string {
    return `postgresql://${user}:postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Runs a server binary as the `postgres` OS user when we are root (initdb refuses root). */
  private async pg(what: string, binary: string, args: string[]) {
    const path = join(pgBin, binary);
    return isRoot()
      ? await must(what, "runuser", ["-u", "postgres", "--", path, ...args])
      : await must(what, path, args);
  }

  async initialized(): Promise<boolean> {
    return await exists(join(this.dir, "PG_VERSION"));
  }

  async running(): Promise<boolean> {
    let pid: string;
    try {
      pid = (await Deno.readTextFile(join(this.dir, "postmaster.pid"))).split("\n")[0].trim();
    } catch {
      return false;
    }
    return /^\d+$/.test(pid) && (await exists(`/proc/${pid}`));
  }

  async init(): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    if (isRoot()) {
      // Folders we create on the way must let the postgres OS user through, whatever the umask.
      for (let dir = dirname(this.dir); dir.startsWith("/var/lib/ledgerbase"); dir = dirname(dir)) {
        await Deno.chmod(dir, 0o755);
      }
      await must("chown", "chown", ["-R", "postgres:postgres", this.dir]);
      await assertReachable(this.dir);
    }
    await this.pg("initdb", "initdb", [
      "-D",
      this.dir,
      "-U",
      "supabase_admin",
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C.UTF-8",
      ...(this.options.ephemeral ? ["--no-sync"] : []),
    ]);
    const settings = [
      `port = ${this.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${this.dir}'`,
      `shared_preload_libraries = '${PRELOADED_LIBRARIES.join(", ")}'`,
      `max_connections = 200`,
      `timezone = 'UTC'`,
      ...(this.options.ephemeral ? [`fsync = off`, `synchronous_commit = off`, `full_page_writes = off`] : []),
    ];
    await Deno.writeTextFile(join(this.dir, "postgresql.auto.conf"), settings.join("\n") + "\n", { append: true });
  }

  async start(): Promise<void> {
    if (await this.running()) return;
    if (portInUse(this.port)) {
      throw new UserError(
        `port ${this.port} is taken by another process`,
        `stop whatever listens there (\`ss -ltnp 'sport = :${this.port}'\` shows it; \`npx supabase stop\` if it is a Docker stack), then run this command again`,
      );
    }
    await this.pg("pg_ctl start", "pg_ctl", [
      "start",
      "-D",
      this.dir,
      "-l",
      join(this.dir, "server.log"),
      "-w",
      "-t",
      "60",
    ]);
  }

  /** Why the running server should be restarted on the installed binaries, or null (also when it is not running). */
  async outdatedBy(): Promise<string | null> {
    let pidFile: string;
    try {
      pidFile = await Deno.readTextFile(join(this.dir, "postmaster.pid"));
    } catch {
      return null;
    }
    if (!(await this.running())) return null;
    const startedAt = new Date(Number(pidFile.split("\n")[2]) * 1000);
    const installed = await run(join(pgBin, "postgres"), ["--version"]);
    const running = await run(join(pgBin, "psql"), [
      "-X",
      "-Atq",
      "-d",
      this.url("supabase_admin"),
      "-c",
      "show server_version",
    ]);
    const replacedAt: Array<Date | null> = [];
    for (const file of serverFiles) replacedAt.push(await Deno.stat(file).then((s) => s.ctime, () => null));
    return restartReason({
      startedAt,
      runningVersion: running.code === 0 ? running.stdout.trim() : null,
      installedVersion: installed.code === 0 ? installed.stdout.replace(/^postgres \(PostgreSQL\) /, "").trim() : null,
      replacedAt,
    });
  }

  async restart(): Promise<void> {
    await this.pg("pg_ctl restart", "pg_ctl", [
      "restart",
      "-D",
      this.dir,
      "-m",
      "fast",
      "-l",
      join(this.dir, "server.log"),
      "-w",
      "-t",
      "60",
    ]);
  }

  async stop(): Promise<void> {
    if (!(await this.running())) return;
    await this.pg("pg_ctl stop", "pg_ctl", ["stop", "-D", this.dir, "-m", "fast", "-w"]);
  }

  async destroy(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    // A clone's folder under /var/lib/ledgerbase goes too once none of its clusters is left.
    if (dirname(this.dir).startsWith("/var/lib/ledgerbase/")) await Deno.remove(dirname(this.dir)).catch(() => {});
  }

  /** Runs SQL through psql, stopping at the first error. */
  async psql(sql: { file?: string; command?: string }, user = "postgres", database = "postgres", what = "psql") {
    const args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", this.url(user, database)];
    if (sql.file) args.push("-f", sql.file);
    if (sql.command) args.push("-c", sql.command);
    return await must(what, join(pgBin, "psql"), args);
  }

  /** Drops and recreates the project database, then applies the platform bootstrap. */
  async freshDatabase(database = "postgres"): Promise<void> {
    await this.psql(
      { command: `drop database if exists ${database} with (force)` },
      "supabase_admin",
      "template1",
      "drop database",
    );
    await this.psql({ command: `create database ${database}` }, "supabase_admin", "template1", "create database");
    await this.bootstrap(database);
  }

  /** Gives the database what a Supabase project has (roles, auth, storage, extensions). */
  async bootstrap(database = "postgres"): Promise<void> {
    await this.psql({ file: join(platformDir, "bootstrap.sql") }, "supabase_admin", database, "platform bootstrap");
  }
}

/** Files a running server loads from disk later: when one is replaced, new connections may fail. */
const serverFiles = [join(pgBin, "postgres"), `/usr/lib/postgresql/${PG_VERSION}/lib/plpgsql.so`];

/**
 * Whether a running server must be restarted on the installed binaries: the version it reports
 * differs from the installed one (`postgres --version`), or a file it loads was replaced (its
 * ctime: dpkg keeps the packaged mtime) after the server started. Null when it need not.
 */
export function restartReason(o: {
  startedAt: Date;
  runningVersion: string | null;
  installedVersion: string | null;
  replacedAt: Array<Date | null>;
}): string | null {
  const version = (v: string | null) => v?.match(/^\d+(\.\d+)*(\s+\(.*\))?/)?.[0].trim() ?? null;
  const running = version(o.runningVersion), installed = version(o.installedVersion);
  if (running && installed && running !== installed) {
    const [r, i] = [running, installed].map((v) => v.split(" ")[0]);
    return r !== i
      ? `PostgreSQL ${r} is running, ${i} is installed`
      : `PostgreSQL ${running} is running, ${installed} is installed`;
  }
  if (!Number.isNaN(o.startedAt.getTime())) {
    const replaced = o.replacedAt.filter((d): d is Date => d !== null && d.getTime() > o.startedAt.getTime());
    if (replaced.length) return "its binaries were replaced after it started";
  }
  return null;
}

/** As root the server runs as the postgres OS user: stop at once, with the fix, if it cannot reach its folder. */
async function assertReachable(dir: string): Promise<void> {
  const probe = await run("runuser", ["-u", "postgres", "--", "test", "-w", dir, "-a", "-x", dir]);
  if (probe.code === 0) return;
  let blocking = dir;
  for (let d = dirname(dir); d !== "/"; d = dirname(d)) {
    if ((await run("runuser", ["-u", "postgres", "--", "test", "-x", d])).code !== 0) blocking = d;
  }
  throw new UserError(
    `the postgres OS user, which runs the server, cannot enter ${blocking}`,
    `let it through with \`chmod o+x ${blocking}\` (or set LEDGERBASE_DATA_DIR to a folder it can reach), then run this command again`,
  );
}

export function portInUse(port: number): boolean {
  try {
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    listener.close();
    return false;
  } catch {
    return true;
  }
}

/** The first free TCP port at or after `from`. */
export function freePort(from: number): number {
  for (let port = from; port < from + 200; port++) if (!portInUse(port)) return port;
  throw new UserError(`no free TCP port found in ${from}–${from + 199}`);
}
