/**
 * Metering for a customer's server, authenticated by an API key (docs/functions.md#usage):
 *
 *   POST /functions/v1/usage          {action, quantity?, idempotency_key?, metadata?}
 *                                     → consume_credits for the key's account (scope credits.consume)
 *   GET  /functions/v1/usage/balance  → {account_id, balance, held, available} (scope credits.read)
 *   GET  /functions/v1/usage/events   → {account_id, events} newest first, ?limit=1..100 (scope usage.read)
 *
 * `Authorization: Bearer lb_<prefix>_<secret>`. Each request is one call of one SQL
 * function in one transaction (private.consume_with_api_key and friends), run over the
 * function's direct connection: it checks the key, its scope and everything
 * consume_credits checks. Errors follow docs/errors.md: 401 invalid_api_key for any bad key,
 * 403 insufficient_scope, 400 invalid_input, 402 insufficient_credits, 404 not_found,
 * 409 idempotency_conflict, 429 rate_limited / quota_exceeded with Retry-After (every call
 * takes a cell from the key's own bucket, then metering one from the account's).
 * An `Idempotency-Key` header may stand in for `idempotency_key`.
 */
import { MAX_JSON_BODY_BYTES, readBodyText } from "../_shared/body.ts";
import { getDb } from "../_shared/db.ts";
import { type AppError, appError, err, ok, type Result } from "../_shared/errors.ts";
import { appErrorResponse, corsHeaders, fromPostgresError, json, preflight } from "../_shared/http.ts";
import { eventsQuery, type UsageRequest, usageRequest } from "./schema.ts";

/** The shape create_api_key hands out; anything else is refused without a database call. */
const API_KEY = /^lb_[0-9a-f]{12}_[0-9a-f]{64}$/;

/** Request bodies above this are refused while they stream (metadata is capped at 16 kB by the database). */
export const MAX_BODY_BYTES = MAX_JSON_BODY_BYTES;

type Route = "consume" | "balance" | "events";

/** The route for a path seen by the function (`/usage/...`, or with the `/functions/v1` prefix). */
export function routeOf(pathname: string): Route | undefined {
  const match = /(?:^|\/)usage(?:\/(balance|events))?\/?$/.exec(pathname);
  if (match === null) return undefined;
  return match[1] === undefined ? "consume" : (match[1] as Route);
}

const ALLOWED_METHODS: Record<Route, string> = { consume: "POST", balance: "GET", events: "GET" };

const invalidKey = (): AppError =>
  appError("invalid_api_key", "A valid API key is required: Authorization: Bearer lb_...", 401);

/** The API key of `Authorization: Bearer lb_...`, or invalid_api_key. */
export function apiKeyOf(request: Request): Result<string> {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(request.headers.get("authorization") ?? "");
  if (match === null || !API_KEY.test(match[1])) return err(invalidKey());
  return ok(match[1]);
}

function invalidInput(message: string, detail?: string): AppError {
  return appError("invalid_input", message, 400, { detail });
}

/** The validated body of a metering request, with the Idempotency-Key header folded in. */
export async function parseUsageRequest(request: Request): Promise<Result<UsageRequest>> {
  const body = await readBodyText(request, MAX_BODY_BYTES);
  if (!body.ok) return body;
  const text = body.value;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return err(invalidInput("The body must be a JSON object: {action, quantity?, idempotency_key?, metadata?}."));
  }
  const parsed = usageRequest.safeParse(raw);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
    return err(invalidInput("The body is not a valid usage request.", detail));
  }
  const header = request.headers.get("idempotency-key")?.trim();
  if (header) {
    if (parsed.data.idempotency_key !== undefined && parsed.data.idempotency_key !== header) {
      return err(invalidInput("The Idempotency-Key header and the body's idempotency_key differ."));
    }
    if (header.length > 255) return err(invalidInput("The Idempotency-Key header is longer than 255 characters."));
    return ok({ ...parsed.data, idempotency_key: header });
  }
  return ok(parsed.data);
}

/** Runs one SQL function; database errors become AppErrors per docs/errors.md#sqlstate-to-http. */
async function call(run: (sql: ReturnType<typeof getDb>) => Promise<unknown>): Promise<Result<unknown>> {
  try {
    return ok(await run(getDb()));
  } catch (e) {
    const error = fromPostgresError(e, { role: "service_role" });
    // Every refused key looks the same, whether refused here or by the database.
    return err(error.code === "invalid_api_key" ? invalidKey() : error);
  }
}

async function consume(key: string, body: UsageRequest): Promise<Result<unknown>> {
  return await call(async (sql) => {
    const [row] = await sql`
      select private.consume_with_api_key(
        ${key}::text, ${body.action}::text, ${body.quantity ?? 1}::integer,
        ${body.idempotency_key ?? null}::text, ${JSON.stringify(body.metadata ?? {})}::text::jsonb) as result`;
    return row.result;
  });
}

async function balance(key: string): Promise<Result<unknown>> {
  return await call(async (sql) => {
    const [row] = await sql`select private.balance_with_api_key(${key}::text) as result`;
    return row.result;
  });
}

async function events(key: string, limit: number): Promise<Result<unknown>> {
  return await call(async (sql) => {
    const [row] = await sql`select private.usage_with_api_key(${key}::text, ${limit}::integer) as result`;
    return row.result;
  });
}

async function serve(request: Request, route: Route): Promise<Result<unknown>> {
  const key = apiKeyOf(request);
  if (!key.ok) return key;
  if (route === "consume") {
    const body = await parseUsageRequest(request);
    if (!body.ok) return body;
    return await consume(key.value, body.value);
  }
  if (route === "balance") return await balance(key.value);
  const query = eventsQuery.safeParse(Object.fromEntries(new URL(request.url).searchParams));
  if (!query.success) return err(invalidInput("limit must be an integer from 1 to 100."));
  return await events(key.value, query.data.limit);
}

/** The usage function. */
export async function handler(request: Request): Promise<Response> {
  const pre = preflight(request);
  if (pre) return pre;
  const cors = corsHeaders(request);
  const route = routeOf(new URL(request.url).pathname);
  if (route === undefined) {
    return appErrorResponse(
      appError("not_found", "No such route: use /usage, /usage/balance or /usage/events.", 404),
      cors,
    );
  }
  if (request.method !== ALLOWED_METHODS[route]) {
    return appErrorResponse(
      appError("method_not_allowed", `Use ${ALLOWED_METHODS[route]} for this route.`, 405),
      { ...cors, allow: `${ALLOWED_METHODS[route]}, OPTIONS` },
    );
  }
  const result = await serve(request, route);
  if (result.ok) return json(result.value, 200, cors);
  const headers: Record<string, string> = { ...cors };
  if (result.error.status === 401) headers["www-authenticate"] = 'Bearer realm="ledgerbase", error="invalid_token"';
  return appErrorResponse(result.error, headers);
}
