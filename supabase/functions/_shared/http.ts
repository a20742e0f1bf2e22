/**
 * HTTP plumbing shared by the edge functions: JSON responses, the error
 * envelope `{"error": {"code", "message", "detail"?, "hint"?}}`, CORS for the
 * origins in ALLOWED_ORIGINS, and the Postgres error → HTTP mapping of docs/errors.md
 * (PostgREST's rules: SQLSTATE PTxyz → status xyz).
 */
import { type AppError, appError } from "./errors.ts";
import { type AllowedOrigins, allowedOrigins, normalizeOrigin } from "./env.ts";
import type { DbRole } from "./jwt.ts";

const JSON_TYPE = "application/json; charset=utf-8";

/** A JSON response. */
export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  const merged = new Headers(headers);
  merged.set("content-type", JSON_TYPE);
  return new Response(JSON.stringify(body), { status, headers: merged });
}

export interface ErrorBody {
  error: { code: string; message: string; detail?: string; hint?: string };
}

/** `{"error": {"code", "message"}}` with the given status (detail/hint when given). */
export function errorResponse(
  code: string,
  message: string,
  status = 400,
  extraHeaders: HeadersInit = {},
  extra: { detail?: string; hint?: string } = {},
): Response {
  const body: ErrorBody = { error: { code, message } };
  if (extra.detail) body.error.detail = extra.detail;
  if (extra.hint) body.error.hint = extra.hint;
  return json(body, status, extraHeaders);
}

/** An AppError as a response; sets `Retry-After` when the error carries one. */
export function appErrorResponse(error: AppError, extraHeaders: HeadersInit = {}): Response {
  const headers = new Headers(extraHeaders);
  if (error.retryAfter !== undefined) headers.set("retry-after", String(error.retryAfter));
  return errorResponse(error.code, error.message, error.status, headers, { detail: error.detail, hint: error.hint });
}

// ---------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------

export const CORS_ALLOW_HEADERS = "authorization, x-client-info, apikey, content-type, idempotency-key, x-region";
export const CORS_ALLOW_METHODS = "GET, POST, OPTIONS";

/** Whether a request's Origin may read our responses. */
export function isAllowedOrigin(origin: string | null, allowed: AllowedOrigins = allowedOrigins()): boolean {
  if (origin === null) return false;
  const normalized = normalizeOrigin(origin);
  if (normalized === undefined) return false; // "null" (sandboxed iframes, file://) and junk
  return allowed.any || allowed.origins.has(normalized);
}

/**
 * CORS headers for a response to `request`: the Origin is echoed only when
 * allowed. `Vary: Origin` is always present so caches never serve one
 * origin's answer to another.
 */
export function corsHeaders(request: Request, allowed: AllowedOrigins = allowedOrigins()): Record<string, string> {
  const origin = request.headers.get("origin");
  if (!isAllowedOrigin(origin, allowed)) return { vary: "Origin" };
  return {
    "access-control-allow-origin": origin as string,
    "access-control-allow-headers": CORS_ALLOW_HEADERS,
    "access-control-allow-methods": CORS_ALLOW_METHODS,
    "access-control-expose-headers": "retry-after",
    "access-control-max-age": "86400",
    vary: "Origin",
  };
}

/**
 * The answer to a CORS preflight, or null when `request` is not one (so a
 * handler starts with `const pre = preflight(req); if (pre) return pre;`).
 * Disallowed origins get 403 `origin_not_allowed`.
 */
export function preflight(request: Request, allowed: AllowedOrigins = allowedOrigins()): Response | null {
  if (request.method !== "OPTIONS") return null;
  const headers = corsHeaders(request, allowed);
  if (!("access-control-allow-origin" in headers)) {
    return errorResponse("origin_not_allowed", "This origin may not call this function.", 403, headers);
  }
  return new Response(null, { status: 204, headers });
}

// ---------------------------------------------------------------------------
// Postgres errors
// ---------------------------------------------------------------------------

/** The fields of a postgres.js `PostgresError` we read. */
export interface PgErrorFields {
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** True for errors the server raised (postgres.js `PostgresError`: a 5-char SQLSTATE). */
export function isPostgresError(e: unknown): e is PgErrorFields {
  if (typeof e !== "object" || e === null) return false;
  const { code, message, name } = e as Record<string, unknown>;
  return name === "PostgresError" && typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) &&
    typeof message === "string";
}

const STABLE_CODE = /^[a-z][a-z0-9_]*$/;

/** Human messages for the stable codes of docs/errors.md#stable-codes. */
const MESSAGES: Record<string, string> = {
  insufficient_credits: "Not enough credits available for this action.",
  quota_exceeded: "The plan's quota for this period is used up.",
  rate_limited: "Too many requests; retry later.",
  idempotency_conflict: "This idempotency key was already used with other parameters.",
  not_found: "Not found.",
  gone: "This resource has expired.",
  invalid_input: "Invalid input.",
};

const STATUS_CODES: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  402: "payment_required",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  410: "gone",
  422: "unprocessable",
  429: "rate_limited",
};

/** `code` and `message` for a business error whose message may be a stable code. */
function coded(pgMessage: string, fallbackCode: string): { code: string; message: string } {
  if (STABLE_CODE.test(pgMessage)) return { code: pgMessage, message: MESSAGES[pgMessage] ?? pgMessage };
  return { code: fallbackCode, message: pgMessage };
}

/**
 * Seconds to wait, read from a HINT such as `retry after 12 seconds`,
 * `retry_after=1.5`, `{"retry_after": 3}`, `wait 30s`, or a reset time
 * (`resets at 2026-12-01T00:00:00Z`, counted from `now`). Whole seconds,
 * at least 1; undefined when the hint holds none.
 */
export function retryAfterSeconds(hint: string | undefined | null, now: Date = new Date()): number | undefined {
  if (!hint) return undefined;
  const explicit = /retry[-_ ]?after\W{0,4}(\d+(?:\.\d+)?)/i.exec(hint);
  if (explicit) return wholeSeconds(Number(explicit[1]));
  const timestamp = /\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?/.exec(hint);
  if (timestamp) {
    const at = Date.parse(isoTimestamp(timestamp[0]));
    if (!Number.isNaN(at)) return wholeSeconds(Math.max(0, (at - now.getTime()) / 1000));
  }
  const seconds = /(\d+(?:\.\d+)?)\s*(?:s|secs?|seconds?)\b/i.exec(hint);
  if (seconds) return wholeSeconds(Number(seconds[1]));
  return undefined;
}

/** Whole seconds for Retry-After: rounded up, at least 1. */
function wholeSeconds(seconds: number): number | undefined {
  return Number.isFinite(seconds) && seconds >= 0 ? Math.max(1, Math.ceil(seconds)) : undefined;
}

/** Postgres prints `2026-12-01 00:00:00+00`; JavaScript wants `2026-12-01T00:00:00+00:00` (UTC when no offset). */
function isoTimestamp(text: string): string {
  const iso = text.replace(" ", "T");
  const offset = /([+-])(\d{2}):?(\d{2})?$/.exec(iso.slice(16));
  if (offset) {
    return iso.slice(0, 16) + iso.slice(16, 16 + offset.index) + `${offset[1]}${offset[2]}:${offset[3] ?? "00"}`;
  }
  return iso.endsWith("Z") ? iso : `${iso}Z`;
}

export interface FromPostgresErrorOptions {
  /** The role the SQL ran as: 42501 is 401 for anon, 403 otherwise. */
  role?: DbRole;
  /** Where unexpected errors are logged (they are never sent to the client). Default console.error. */
  log?: (error: unknown) => void;
}

/**
 * Maps a postgres.js error (or anything thrown) to an AppError, per docs/errors.md#sqlstate-to-http:
 *
 * | SQLSTATE | status | code |
 * |---|---|---|
 * | PTxyz | xyz | the message (e.g. insufficient_credits) |
 * | 42501 | 401 anon / 403 | permission_denied |
 * | 22023 | 400 | the message if a code, else invalid_input |
 * | other 22xxx, 23502, 23514 | 400 | invalid_input |
 * | 23505 | 409 | conflict |
 * | 23503 | 409 | conflict |
 * | P0001 | 400 | the message if a code, else bad_request |
 * | anything else | 500 | internal_error (logged, not leaked) |
 *
 * Business errors keep their DETAIL and HINT; PT429 gets `retryAfter` from the hint.
 * Constraint violations do not echo DETAIL (it may quote other users' values).
 */
export function fromPostgresError(e: unknown, options: FromPostgresErrorOptions = {}): AppError {
  const internal = () => {
    (options.log ?? console.error)(e);
    return appError("internal_error", "An unexpected error occurred.", 500);
  };
  if (!isPostgresError(e)) return internal();
  const extra = { detail: e.detail, hint: e.hint };
  const sqlstate = e.code;

  const pt = /^PT([45]\d\d)$/.exec(sqlstate); // 4xx/5xx only: other statuses cannot carry an error
  if (pt) {
    const status = Number(pt[1]);
    const { code, message } = coded(e.message, STATUS_CODES[status] ?? `http_${status}`);
    const retryAfter = status === 429 || status === 503 ? retryAfterSeconds(e.hint) : undefined;
    return appError(code, message, status, { ...extra, retryAfter });
  }
  if (sqlstate === "42501") {
    return appError("permission_denied", e.message, options.role === "anon" ? 401 : 403, extra);
  }
  if (sqlstate === "22023") {
    const { code, message } = coded(e.message, "invalid_input");
    return appError(code, message, 400, extra);
  }
  if (sqlstate === "P0001") {
    const { code, message } = coded(e.message, "bad_request");
    return appError(code, message, 400, extra);
  }
  if (sqlstate === "23505" || sqlstate === "23503") {
    return appError("conflict", "The request conflicts with existing data.", 409);
  }
  if (sqlstate.startsWith("22") || sqlstate === "23502" || sqlstate === "23514") {
    return appError("invalid_input", MESSAGES.invalid_input, 400);
  }
  return internal();
}
