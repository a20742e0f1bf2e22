/**
 * POST /functions/v1/stripe-webhook — Stripe's event deliveries (verify_jwt = false).
 *
 *   400 {error: invalid_signature}  missing, bad or stale (> 300 s) Stripe-Signature: nothing written
 *   413 {error: payload_too_large}  a body over 1 MB, refused while it streams (never buffered whole)
 *   400 {error: malformed_event}    a signed body that is not JSON or not a Stripe event: nothing written
 *   200 {received: true, status}    status processed | duplicate | ignored
 *   500                             the database failed or processing raised: Stripe retries
 *
 * Thin: the raw body is verified with `constructEventAsync` (WebCrypto), its envelope checked
 * with zod, and the raw JSON handed to ONE SQL function, `private.receive_stripe_event`, which
 * records and applies it in one transaction (idempotent by event id). The function connects as
 * the database owner (SUPABASE_DB_URL): private functions are granted to no API role.
 */
import { z } from "zod";
import { readBodyText } from "../_shared/body.ts";
import { getDb, type Sql } from "../_shared/db.ts";
import { type EnvSource, processEnv } from "../_shared/env.ts";
import { appError } from "../_shared/errors.ts";
import { appErrorResponse, errorResponse, json } from "../_shared/http.ts";
import { constructEvent, isSignatureError, webhookSecret } from "../_shared/stripe.ts";

/** The envelope every Stripe event has; the rest is read by SQL. */
export const StripeEventEnvelope = z.object({
  id: z.string().min(1).max(255),
  object: z.literal("event"),
  type: z.string().min(1).max(255),
  created: z.number().int().nonnegative(),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

/** Stripe's events are far smaller; anything above this is refused before it is read whole. */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;

export type WebhookStatus = "processed" | "duplicate" | "ignored";

export interface WebhookDeps {
  env?: EnvSource;
  /** Database client (default: the isolate's, from SUPABASE_DB_URL). */
  sql?: Sql;
  log?: (error: unknown) => void;
}

/** A handler with its dependencies (tests inject env and database). */
export function createWebhookHandler(deps: WebhookDeps = {}): (request: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const log = deps.log ?? console.error;
  return async (request) => {
    if (request.method !== "POST") return errorResponse("method_not_allowed", "Use POST.", 405);
    const secret = webhookSecret(env);
    if (!secret.ok) return appErrorResponse(secret.error);
    const signature = request.headers.get("stripe-signature");
    if (signature === null || signature.trim() === "") {
      return errorResponse("invalid_signature", "Missing Stripe-Signature header.", 400);
    }

    // The signature covers the exact bytes: read the raw body, never a re-serialized one,
    // counted as it streams so an endless unsigned body is cut at the cap.
    const body = await readBodyText(request, MAX_WEBHOOK_BODY_BYTES);
    if (!body.ok) return appErrorResponse(body.error);
    const raw = body.value;
    // constructEventAsync verifies, then parses the body (JSON.parse): its result is the parsed
    // body, checked against the envelope without parsing it again.
    let parsed: unknown;
    try {
      parsed = await constructEvent(raw, signature, secret.value);
    } catch (e) {
      if (isSignatureError(e)) {
        return errorResponse("invalid_signature", "The Stripe signature is not valid or too old.", 400);
      }
      return errorResponse("malformed_event", "The body is not a JSON Stripe event.", 400);
    }
    if (!StripeEventEnvelope.safeParse(parsed).success) {
      return errorResponse("malformed_event", "The body is not a Stripe event (id, type, created, data.object).", 400);
    }

    let status: string;
    try {
      const sql = deps.sql ?? getDb(env);
      const [row] = await sql<{ status: string }[]>`select private.receive_stripe_event(${
        jsonbSafe(raw)
      }::text::jsonb) as status`;
      status = row.status;
    } catch (e) {
      log(e);
      return appErrorResponse(appError("internal_error", "The event could not be stored; Stripe will retry.", 500));
    }
    if (status === "failed") {
      return appErrorResponse(
        appError("processing_failed", "The event could not be processed; Stripe will retry.", 500),
      );
    }
    return json({ received: true, status });
  };
}

/**
 * The raw JSON with every `\u0000` escape replaced by `\uFFFD`: Postgres jsonb cannot hold
 * U+0000, so the cast would fail on every delivery (500 forever, nothing recorded). Runs only
 * after the signature was verified over the original bytes. An escaped backslash followed by
 * the text `u0000` (`\\u0000`) is not a NUL and is left alone: only a backslash preceded by an
 * even number of backslashes starts an escape.
 */
export function jsonbSafe(raw: string): string {
  return raw.replace(/(?<!\\)((?:\\\\)*)\\u0000/g, "$1\\uFFFD");
}

/** The deployed handler: settings from the environment. */
export const handler = createWebhookHandler();
