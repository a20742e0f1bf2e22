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
import { appError } from "../_shared/errors.ts";
import { fromPostgresError, json } from "../_shared/http.ts";
import { type JwtVerifier } from "../_shared/jwt.ts";
import { readUserRequest } from "../_shared/user_request.ts";
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
    const start = await readUserRequest(request, PortalBody, "billing portal request", {
      env,
      verifier: deps.verifier,
    });
    if (start instanceof Response) return start;
    const { jwt, body, cors, fail } = start;
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

    const accountId = body.account_id ?? jwt.userId as string;
    const customer = await asUser(jwt, async (tx) => {
      const [row] = await tx<
        { customer: string }[]
      >`select public.billing_portal_customer(${accountId}::uuid) as customer`;
      return row.customer;
    }, { sql, request, log });
    if (!customer.ok) return fail(customer.error);

    try {
      const session = await stripe.value.billingPortal.sessions.create({
        customer: customer.value,
        return_url: body.return_url,
      });
      return json({ url: session.url }, 200, cors);
    } catch (e) {
      return fail(stripeError(e, log));
    }
  };
}

/** The deployed handler: settings from the environment. */
export const handler = createBillingPortalHandler();
