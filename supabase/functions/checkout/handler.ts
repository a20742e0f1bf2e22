/**
 * POST /functions/v1/checkout — a Stripe Checkout Session for a plan or a credit pack.
 *
 *   body {account_id?, plan? | credit_pack?, quantity?, success_url, cancel_url}
 *   200 {id, url}; 400 invalid; 401 no/expired JWT; 403 no billing.manage; 404 unknown or
 *   inactive item; 409 already subscribed (use the portal); 429 rate limited; 502 Stripe.
 *
 * Thin: verify the JWT, validate with zod, refuse redirects outside SITE_URL /
 * ALLOWED_REDIRECT_URLS, then `public.begin_checkout` as the user (permission, catalog,
 * already-subscribed, rate limit, and the account's customer row reserved). If the account
 * has no Stripe customer yet, one is created with the idempotency key the SQL derived from
 * the account id, so concurrent checkouts get the same customer, and recorded with
 * `private.attach_billing_customer` (the first one recorded wins). The session carries
 * client_reference_id = account id and metadata {account_id, kind, item, quantity}; a
 * subscription carries metadata.account_id too. The session is recorded with
 * `private.record_checkout_session` before its URL is returned: the webhook trusts only
 * recorded sessions (a Payment Link can name any account in client_reference_id). With
 * STRIPE_ALLOW_PROMOTION_CODES=true the session accepts Stripe promotion codes (default off).
 */
import { z } from "zod";
import { asUser } from "../_shared/as_user.ts";
import { getDb, type Sql } from "../_shared/db.ts";
import { type EnvSource, optionalEnv, processEnv } from "../_shared/env.ts";
import { type AppError, appError, err, ok, type Result } from "../_shared/errors.ts";
import { fromPostgresError, json } from "../_shared/http.ts";
import { type JwtVerifier } from "../_shared/jwt.ts";
import { readUserRequest } from "../_shared/user_request.ts";
import { isAllowedRedirect, redirectBases, type StripeClient, stripeError, stripeFromEnv } from "../_shared/stripe.ts";

const catalogKey = z.string().regex(/^[a-z][a-z0-9_]{1,39}$/, "a catalog key");

/** The request body. */
export const CheckoutBody = z.strictObject({
  account_id: z.uuid().optional(),
  plan: catalogKey.optional(),
  credit_pack: catalogKey.optional(),
  quantity: z.number().int().min(1).max(100).optional(),
  success_url: z.url().max(2048),
  cancel_url: z.url().max(2048),
}).refine((body) => (body.plan === undefined) !== (body.credit_pack === undefined), {
  message: "give exactly one of plan and credit_pack",
});
export type CheckoutBody = z.infer<typeof CheckoutBody>;

/** What public.begin_checkout returns. */
const Prepared = z.object({
  account_id: z.string(),
  kind: z.enum(["plan", "credit_pack"]),
  item: z.string(),
  quantity: z.number().int(),
  mode: z.enum(["subscription", "payment"]),
  stripe_price_id: z.string(),
  trial_days: z.number().int(),
  stripe_customer_id: z.string().nullable(),
  customer_idempotency_key: z.string(),
  email: z.string().nullable(),
});
type Prepared = z.infer<typeof Prepared>;

export interface CheckoutDeps {
  env?: EnvSource;
  /** Database client (default: the isolate's, from SUPABASE_DB_URL). */
  sql?: Sql;
  /** Stripe client (default: from STRIPE_SECRET_KEY / STRIPE_API_BASE). */
  stripe?: StripeClient;
  verifier?: JwtVerifier;
  log?: (error: unknown) => void;
}

/** The account's Stripe customer: the one on record, or a new one (idempotent per account). */
async function ensureCustomer(
  prepared: Prepared,
  stripe: StripeClient,
  sql: Sql,
  log: (error: unknown) => void,
): Promise<{ ok: true; id: string } | { ok: false; error: AppError }> {
  if (prepared.stripe_customer_id !== null) return { ok: true, id: prepared.stripe_customer_id };
  let created: { id: string };
  try {
    created = await stripe.customers.create(
      { ...(prepared.email ? { email: prepared.email } : {}), metadata: { account_id: prepared.account_id } },
      { idempotencyKey: prepared.customer_idempotency_key },
    );
  } catch (e) {
    return { ok: false, error: stripeError(e, log) };
  }
  try {
    const [row] = await sql<{ id: string }[]>`
      select private.attach_billing_customer(${prepared.account_id}::uuid, ${created.id}, ${prepared.email}) as id`;
    return { ok: true, id: row.id };
  } catch (e) {
    return { ok: false, error: fromPostgresError(e, { log }) };
  }
}

/** STRIPE_ALLOW_PROMOTION_CODES: whether sessions accept promotion codes ("true" or "false", default false). */
export function promotionCodesAllowed(env: EnvSource): Result<boolean> {
  const value = optionalEnv("STRIPE_ALLOW_PROMOTION_CODES", env)?.toLowerCase() ?? "false";
  if (value === "true" || value === "false") return ok(value === "true");
  return err(appError("config_invalid", "Invalid setting STRIPE_ALLOW_PROMOTION_CODES: expected true or false.", 500));
}

/** A handler with its dependencies (tests inject env, database and Stripe clients). */
export function createCheckoutHandler(deps: CheckoutDeps = {}): (request: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const log = deps.log ?? console.error;
  return async (request) => {
    const start = await readUserRequest(request, CheckoutBody, "checkout request", { env, verifier: deps.verifier });
    if (start instanceof Response) return start;
    const { jwt, body, cors, fail } = start;
    const bases = redirectBases(env);
    for (const field of ["success_url", "cancel_url"] as const) {
      if (!isAllowedRedirect(body[field], bases)) {
        return fail(appError("invalid_redirect", `${field} must be under SITE_URL or ALLOWED_REDIRECT_URLS.`, 400));
      }
    }

    const stripe = deps.stripe === undefined ? stripeFromEnv(env) : { ok: true as const, value: deps.stripe };
    if (!stripe.ok) return fail(stripe.error);
    const promotionCodes = promotionCodesAllowed(env);
    if (!promotionCodes.ok) return fail(promotionCodes.error);
    let sql: Sql;
    try {
      sql = deps.sql ?? getDb(env);
    } catch (e) {
      return fail(fromPostgresError(e, { log }));
    }

    // Permission, catalog, already subscribed, rate limit, customer reservation: one SQL call as the user.
    const accountId = body.account_id ?? jwt.userId as string;
    const prepared = await asUser(jwt, async (tx) => {
      const [row] = await tx<{ prepared: unknown }[]>`
        select public.begin_checkout(${accountId}::uuid, ${body.plan ?? null}, ${body.credit_pack ?? null},
                                     ${body.quantity ?? 1}) as prepared`;
      return Prepared.parse(row.prepared);
    }, { sql, request, log });
    if (!prepared.ok) return fail(prepared.error);
    const item = prepared.value;

    const customer = await ensureCustomer(item, stripe.value, sql, log);
    if (!customer.ok) return fail(customer.error);

    const metadata = { account_id: item.account_id, kind: item.kind, item: item.item, quantity: String(item.quantity) };
    let session: { id: string; url: string | null };
    try {
      session = await stripe.value.checkout.sessions.create({
        mode: item.mode,
        customer: customer.id,
        client_reference_id: item.account_id,
        line_items: [{ price: item.stripe_price_id, quantity: item.quantity }],
        success_url: body.success_url,
        cancel_url: body.cancel_url,
        metadata,
        ...(promotionCodes.value ? { allow_promotion_codes: true } : {}),
        ...(item.mode === "subscription"
          ? {
            subscription_data: {
              metadata: { account_id: item.account_id },
              ...(item.trial_days > 0 ? { trial_period_days: item.trial_days } : {}),
            },
          }
          : { payment_intent_data: { metadata } }),
      });
    } catch (e) {
      return fail(stripeError(e, log));
    }
    // Only sessions recorded here link a customer and earn credits when Stripe reports them paid.
    try {
      await sql`select private.record_checkout_session(${session.id}, ${item.account_id}::uuid, ${customer.id},
                                                       ${item.kind}, ${item.item}, ${item.quantity}::int)`;
    } catch (e) {
      return fail(fromPostgresError(e, { log }));
    }
    return json({ id: session.id, url: session.url }, 200, cors);
  };
}

/** The deployed handler: settings from the environment. */
export const handler = createCheckoutHandler();
