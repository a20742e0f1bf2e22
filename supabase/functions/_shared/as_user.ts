/**
 * Runs SQL the way PostgREST runs a request: in one transaction, first
 *
 *   select set_config('search_path', 'public, extensions', true),
 *          set_config('role', <anon | authenticated | service_role>, true),
 *          set_config('request.jwt.claims', <all claims as JSON>, true),
 *          set_config('request.method', ..., true), set_config('request.path', ..., true),
 *          set_config('request.headers', <JSON, lower-cased keys>, true),
 *          set_config('request.cookies', <JSON>, true)
 *
 * then the caller's queries. Every setting is transaction-local, so nothing
 * leaks to the next user of the pooled connection, and RLS, `auth.uid()`,
 * `auth.role()` and `auth.jwt()` see exactly what they see behind PostgREST.
 *
 * Only the three API roles can be assumed; any other role is refused before a
 * query runs. The role is bound as a parameter, never spliced into SQL.
 */
import { type AppError, appError, err, ok, type Result } from "./errors.ts";
import { getDb, type Sql, type TransactionSql } from "./db.ts";
import { fromPostgresError } from "./http.ts";
import { type DbRole, isDbRole, type VerifiedJwt } from "./jwt.ts";

/** What PostgREST exposes of the HTTP request in `request.*` settings. */
export interface RequestContext {
  readonly method: string;
  readonly path: string;
  /** Lower-cased names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly cookies: Readonly<Record<string, string>>;
}

/** The role and claims a transaction runs with. */
export interface DbSession {
  readonly role: DbRole;
  readonly claims: Readonly<Record<string, unknown>>;
}

export interface RunOptions {
  /** The request being served: fills `request.method/path/headers/cookies`. */
  request?: Request | RequestContext;
  /** The client to use; default the isolate's `getDb()`. */
  sql?: Sql;
  /** Logger for unexpected (500) errors; default console.error. */
  log?: (error: unknown) => void;
}

const EMPTY_CONTEXT: RequestContext = { method: "", path: "", headers: {}, cookies: {} };

function parseCookies(header: string | null): Record<string, string> {
  const cookies: Record<string, string> = {};
  if (!header) return cookies;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const raw = part.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
    try {
      cookies[name] = decodeURIComponent(raw);
    } catch {
      cookies[name] = raw;
    }
  }
  return cookies;
}

/** The `request.*` settings PostgREST would derive from `request`. */
export function requestContext(request: Request): RequestContext {
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => {
    headers[name.toLowerCase()] = value;
  });
  return {
    method: request.method,
    path: new URL(request.url).pathname,
    headers,
    cookies: parseCookies(request.headers.get("cookie")),
  };
}

/** The session for a verified token: its role and every claim. */
export function sessionFromJwt(jwt: VerifiedJwt): DbSession {
  return { role: jwt.role, claims: { ...jwt.claims, role: jwt.role } };
}

/**
 * Low level: runs `fn` in a transaction as `session`. Throws what the queries
 * throw (a postgres.js error), and a TypeError for a role outside the API roles.
 */
export async function runAs<T>(
  session: DbSession,
  fn: (tx: TransactionSql) => Promise<T>,
  options: RunOptions = {},
): Promise<T> {
  if (!isDbRole(session.role)) throw new TypeError(`refusing to assume role ${JSON.stringify(session.role)}`);
  const context = options.request === undefined
    ? EMPTY_CONTEXT
    : options.request instanceof Request
    ? requestContext(options.request)
    : options.request;
  const claims = JSON.stringify({ ...session.claims, role: session.role });
  const sql = options.sql ?? getDb();
  const result = await sql.begin(async (tx) => {
    await tx`
      select set_config('search_path', 'public, extensions', true),
             set_config('role', ${session.role}, true),
             set_config('request.jwt.claims', ${claims}, true),
             set_config('request.method', ${context.method}, true),
             set_config('request.path', ${context.path}, true),
             set_config('request.headers', ${JSON.stringify(context.headers)}, true),
             set_config('request.cookies', ${JSON.stringify(context.cookies)}, true)`;
    return await fn(tx);
  });
  return result as T;
}

async function attempt<T>(
  session: DbSession,
  fn: (tx: TransactionSql) => Promise<T>,
  options: RunOptions,
): Promise<Result<T>> {
  if (!isDbRole(session.role)) {
    return err(appError("invalid_role", "Only the anon, authenticated and service_role roles can be assumed.", 403));
  }
  try {
    return ok(await runAs(session, fn, options));
  } catch (e) {
    const mapped: AppError = fromPostgresError(e, { role: session.role, log: options.log });
    return err(mapped);
  }
}

/** Runs `fn` as the verified user (or whatever role the token carries); errors mapped per docs/errors.md#sqlstate-to-http. */
export function asUser<T>(
  jwt: VerifiedJwt,
  fn: (tx: TransactionSql) => Promise<T>,
  options: RunOptions = {},
): Promise<Result<T>> {
  return attempt(sessionFromJwt(jwt), fn, options);
}

/** Runs `fn` as `anon` with claims `{"role":"anon"}`, as PostgREST does for a request without a user. */
export function asAnon<T>(fn: (tx: TransactionSql) => Promise<T>, options: RunOptions = {}): Promise<Result<T>> {
  return attempt({ role: "anon", claims: { role: "anon" } }, fn, options);
}

/** Runs `fn` as `service_role` (bypasses RLS; grants still apply). */
export function asServiceRole<T>(fn: (tx: TransactionSql) => Promise<T>, options: RunOptions = {}): Promise<Result<T>> {
  return attempt({ role: "service_role", claims: { role: "service_role" } }, fn, options);
}
