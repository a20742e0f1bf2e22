/**
 * Typed settings for the edge functions, read from the environment
 * (`supabase/functions/.env` locally, project secrets when hosted).
 *
 * Hosted Supabase reserves secret names starting with `SUPABASE_` for the
 * platform (it injects SUPABASE_URL and SUPABASE_DB_URL itself), so the HS256
 * JWT secret is `JWT_SECRET`. Without it, tokens are verified with the
 * project's JWKS at `${SUPABASE_URL}/auth/v1/.well-known/jwks.json`.
 *
 * Every reader takes an optional `EnvSource` so tests can pass a Map instead
 * of mutating the process environment.
 */
import { type AppError, appError, err, ok, type Result } from "./errors.ts";

/** Anything with `get(name)`: `Deno.env`, a `Map`, a test stub. */
export interface EnvSource {
  get(name: string): string | undefined;
}

/** Minimum HS256 secret length; Supabase's own default is 32+ characters. */
export const MIN_JWT_SECRET_LENGTH = 32;

export const JWKS_PATH = "/auth/v1/.well-known/jwks.json";

/** The process environment (needs `--allow-env`, always granted on Supabase). */
export const processEnv: EnvSource = { get: (name) => Deno.env.get(name) };

function missing(name: string, why: string): AppError {
  return appError(
    "config_missing",
    `Missing required setting ${name}: ${why}. Set it in supabase/functions/.env locally ` +
      `or as a project secret when deployed.`,
    500,
  );
}

function invalid(name: string, why: string): AppError {
  return appError("config_invalid", `Invalid setting ${name}: ${why}.`, 500);
}

/** A trimmed value, or undefined when unset or blank. */
export function optionalEnv(name: string, env: EnvSource = processEnv): string | undefined {
  const value = env.get(name)?.trim();
  return value ? value : undefined;
}

/** A required value, or a `config_missing` error naming the setting. */
export function requireEnv(name: string, env: EnvSource = processEnv): Result<string> {
  const value = optionalEnv(name, env);
  return value === undefined ? err(missing(name, "it is not set")) : ok(value);
}

/** A comma-separated list, trimmed, blanks dropped; empty when unset. */
export function listEnv(name: string, env: EnvSource = processEnv): string[] {
  return (optionalEnv(name, env) ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

/** A URL setting with an http(s) scheme (postgres URLs go through `dbUrl`). */
export function urlEnv(name: string, env: EnvSource = processEnv): Result<URL> {
  const raw = requireEnv(name, env);
  if (!raw.ok) return raw;
  try {
    const url = new URL(raw.value);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return err(invalid(name, `expected an http(s) URL, got ${url.protocol}`));
    }
    return ok(url);
  } catch {
    return err(invalid(name, "not a URL"));
  }
}

/** SUPABASE_DB_URL: the direct (or transaction-pooler) Postgres URL. */
export function dbUrl(env: EnvSource = processEnv): Result<string> {
  const raw = requireEnv("SUPABASE_DB_URL", env);
  if (!raw.ok) return raw;
  try {
    const url = new URL(raw.value);
    if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
      return err(invalid("SUPABASE_DB_URL", `expected postgresql://, got ${url.protocol}//`));
    }
  } catch {
    return err(invalid("SUPABASE_DB_URL", "not a URL"));
  }
  return ok(raw.value);
}

/** SUPABASE_URL: the project's API URL (e.g. http://127.0.0.1:54321). */
export function supabaseUrl(env: EnvSource = processEnv): Result<URL> {
  return urlEnv("SUPABASE_URL", env);
}

/** How user JWTs are verified: a shared HS256 secret, or the project's JWKS. */
export type JwtVerification =
  | { readonly kind: "hs256"; readonly secret: string }
  | { readonly kind: "jwks"; readonly jwksUrl: URL };

/** JWT_SECRET when set (HS256), else the JWKS under SUPABASE_URL. */
export function jwtVerification(env: EnvSource = processEnv): Result<JwtVerification> {
  const secret = optionalEnv("JWT_SECRET", env);
  if (secret !== undefined) {
    if (secret.length < MIN_JWT_SECRET_LENGTH) {
      return err(invalid("JWT_SECRET", `it must be at least ${MIN_JWT_SECRET_LENGTH} characters long`));
    }
    return ok({ kind: "hs256", secret });
  }
  if (optionalEnv("SUPABASE_URL", env) === undefined) {
    return err(missing("JWT_SECRET or SUPABASE_URL", "one is needed to verify user JWTs (HS256 secret or JWKS)"));
  }
  const base = supabaseUrl(env);
  if (!base.ok) return base;
  return ok({ kind: "jwks", jwksUrl: new URL(base.value.pathname.replace(/\/+$/, "") + JWKS_PATH, base.value) });
}

/** The path of Supabase Auth under the project URL; user tokens carry `iss` = `<project URL>/auth/v1`. */
export const AUTH_PATH = "/auth/v1";

/**
 * The `iss` user tokens must carry, when known: JWT_ISSUER if set (self-hosting, or
 * `supabase functions serve`, where SUPABASE_URL is the internal http://kong:8000), else
 * `<SUPABASE_URL>/auth/v1` (hosted projects: custom domains do not change it). Undefined
 * when neither is set: the issuer is then not checked.
 */
export function jwtIssuer(env: EnvSource = processEnv): Result<string | undefined> {
  const explicit = optionalEnv("JWT_ISSUER", env);
  if (explicit !== undefined) return ok(explicit);
  if (optionalEnv("SUPABASE_URL", env) === undefined) return ok(undefined);
  const base = supabaseUrl(env);
  if (!base.ok) return base;
  return ok(base.value.origin + base.value.pathname.replace(/\/+$/, "") + AUTH_PATH);
}

/** ALLOWED_ORIGINS: `*` for any origin, else a list of exact origins. */
export type AllowedOrigins =
  | { readonly any: true }
  | { readonly any: false; readonly origins: ReadonlySet<string> };

/** Normalizes `https://App.example.com/` to `https://app.example.com`; undefined if not an origin. */
export function normalizeOrigin(value: string): string | undefined {
  try {
    const url = new URL(value);
    if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/**
 * Parses ALLOWED_ORIGINS. Unset means no cross-origin browser access (server to
 * server calls carry no Origin and are unaffected). Entries that are not
 * http(s) origins are ignored.
 */
export function allowedOrigins(env: EnvSource = processEnv): AllowedOrigins {
  const entries = listEnv("ALLOWED_ORIGINS", env);
  if (entries.includes("*")) return { any: true };
  const origins = new Set<string>();
  for (const entry of entries) {
    const origin = normalizeOrigin(entry);
    if (origin !== undefined) origins.add(origin);
  }
  return { any: false, origins };
}
