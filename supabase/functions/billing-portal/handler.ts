/**
 * POST /functions/v1/billing-portal — a Stripe billing portal session for an account.
 *
 *   body {account_id?, return_url}  (account defaults to the caller's personal account)
 *   200 {url}; 400 invalid or a return_url outside SITE_URL / ALLOWED_REDIRECT_URLS; 401;
 *   403 without billing.manage; 404 when the account has no Stripe customer; 502 Stripe.
 *
 * Thin: verify the JWT, validate with zod, `public.billing_portal_customer` as the user,
 * then Stripe.
 */
import { z } from "zod";
import { asUser } from "../_shared/as_user.ts";
import { getDb, type Sql } from "../_shared/db.ts";
import { type EnvSource, processEnv } from "../_shared/env.ts";
import { type AppError, appError } from "../_shared/errors.ts";
import { appErrorResponse, corsHeaders, errorResponse, fromPostgresError, json, preflight } from "../_shared/http.ts";
import { authenticate, type JwtVerifier, verifierFromEnv } from "../_shared/jwt.ts";
import { isAllowedRedirect, redirectBases, type StripeClient, stripeError, stripeFromEnv } from "../_shared/stripe.ts";

/** The request body. */
export const PortalBody = z.strictObject({
  account_id: z.uuid().optional(),
  return_url: z.url().max(2048),
});
export type PortalBody = z.infer<typeof PortalBody>;

export interface PortalDeps {
  env?: EnvSource;
  sql?: Sql;
  stripe?: StripeClient;
  verifier?: JwtVerifier;
  log?: (error: unknown) => void;
}

/** A handler with its dependencies (tests inject env, database and Stripe clients). */
export function createBillingPortalHandler(deps: PortalDeps = {}): (request: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const log = deps.log ?? console.error;
  return async (request) => {
    const pre = preflight(request);
    if (pre) return pre;
    const cors = corsHeaders(request);
    const fail = (error: AppError) => appErrorResponse(error, cors);
    if (request.method !== "POST") return errorResponse("method_not_allowed", "Use POST.", 405, cors);

    let verifier = deps.verifier;
    if (verifier === undefined) {
      const configured = verifierFromEnv(env);
      if (!configured.ok) return fail(configured.error);
      verifier = configured.value;
    }
    const jwt = await authenticate(request, { verifier });
    if (!jwt.ok) return fail(jwt.error);

    let raw: unknown;
    try {
      raw = await request.json();
    } catch {
      return fail(appError("invalid_input", "The body must be JSON.", 400));
    }
    const parsed = PortalBody.safeParse(raw);
    if (!parsed.success) {
      return fail(appError("invalid_input", "Invalid billing portal request.", 400, {
        detail: parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "),
      }));
    }
    const body = parsed.data;
    if (!isAllowedRedirect(body.return_url, redirectBases(env))) {
      return fail(appError("invalid_redirect", "return_url must be under SITE_URL or ALLOWED_REDIRECT_URLS.", 400));
    }

    const stripe = deps.stripe === undefined ? stripeFromEnv(env) : { ok: true as const, value: deps.stripe };
    if (!stripe.ok) return fail(stripe.error);
    let sql: Sql;
    try {
      sql = deps.sql ?? getDb(env);
    } catch (e) {
      return fail(fromPostgresError(e, { log }));
    }

    const accountId = body.account_id ?? jwt.value.userId as string;
    const customer = await asUser(jwt.value, async (tx) => {
      const [row] = await tx<{ customer: string }[]>`select public.billing_portal_customer(${accountId}::uuid) as customer`;
      return row.customer;
    }, { sql, request, log });
    if (!customer.ok) return fail(customer.error);

    try {
      const session = await stripe.value.billingPortal.sessions.create({ customer: customer.value, return_url: body.return_url });
      return json({ url: session.url }, 200, cors);
    } catch (e) {
      return fail(stripeError(e, log));
    }
  };
}

/** The deployed handler: settings from the environment. */
export const handler = createBillingPortalHandler();
