/**
 * One postgres.js client per isolate, created on first use from SUPABASE_DB_URL.
 *
 * - `prepare: false`: works through Supabase's transaction pooler (Supavisor
 *   port 6543), where a prepared statement may land on another backend.
 * - Small pool: an isolate serves few concurrent requests; the database has
 *   many isolates.
 * - TLS: off for loopback hosts (the local cluster has none); an `sslmode` in
 *   the URL wins; other hosts use `prefer` (TLS when the server offers it,
 *   which hosted Supabase does).
 */
import postgres from "postgres";
import { dbUrl, type EnvSource, optionalEnv, processEnv } from "./env.ts";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

/** Thrown by `getDb()` when SUPABASE_DB_URL is missing or malformed: a deployment error. */
export class ConfigError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "ConfigError";
    this.code = code;
  }
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** The TLS mode for a database URL (see module comment). */
export function sslFor(url: string): false | "prefer" | undefined {
  const parsed = new URL(url);
  if (parsed.searchParams.has("sslmode") || parsed.searchParams.has("ssl")) return undefined;
  return LOOPBACK.has(parsed.hostname) ? false : "prefer";
}

export interface DbOptions {
  /** Pool size; default DB_POOL_MAX or 3. */
  max?: number;
  /** Seconds before an idle connection closes; default 20. */
  idleTimeout?: number;
}

/** A new client; prefer `getDb()` in functions. */
export function createDb(url: string, options: DbOptions = {}): Sql {
  const ssl = sslFor(url);
  return postgres(url, {
    max: options.max ?? 3,
    prepare: false,
    idle_timeout: options.idleTimeout ?? 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: "ledgerbase-edge" },
    ...(ssl === undefined ? {} : { ssl }),
  });
}

let client: Sql | undefined;

/** The isolate's shared client. Throws `ConfigError` when SUPABASE_DB_URL is unusable. */
export function getDb(env: EnvSource = processEnv): Sql {
  if (client !== undefined) return client;
  const url = dbUrl(env);
  if (!url.ok) throw new ConfigError(url.error.code, url.error.message);
  const max = Number(optionalEnv("DB_POOL_MAX", env) ?? "3");
  client = createDb(url.value, { max: Number.isInteger(max) && max > 0 ? max : 3 });
  return client;
}

/** Closes the shared client (tests, shutdown). The next `getDb()` opens a new one. */
export async function closeDb(): Promise<void> {
  const current = client;
  client = undefined;
  if (current !== undefined) await current.end({ timeout: 5 });
}
