/**
 * Database fixtures for the billing tests: users (the signup trigger gives each a personal
 * account and 50 credits), a catalog of their own (keys and Stripe ids unique to the test, so
 * stories never touch the demo catalog or each other), and the state a story asserts on.
 */
import { createDb, type Sql } from "../../../_shared/db.ts";
import { STRIPE_API_VERSION } from "../../../_shared/stripe.ts";
import { TEST_DB_URL, TEST_JWT_SECRET } from "../tokens.ts";
import { uid, WEBHOOK_SECRET } from "./events.ts";

export { STRIPE_API_VERSION };

export function connect(max = 4): Sql {
  return createDb(TEST_DB_URL, { max });
}

/** The settings the functions read, for a handler under test. */
export function testEnv(extra: Record<string, string> = {}): Map<string, string> {
  return new Map(Object.entries({
    SUPABASE_DB_URL: TEST_DB_URL,
    JWT_SECRET: TEST_JWT_SECRET,
    SITE_URL: "http://localhost:3000",
    ALLOWED_REDIRECT_URLS: "http://localhost:3000,https://app.example.com/billing",
    ALLOWED_ORIGINS: "http://localhost:3000",
    STRIPE_SECRET_KEY: "sk_test_ledgerbase_fake",
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    ...extra,
  }));
}

/** A new user (and so a personal account with the same id). */
export async function createUser(sql: Sql, metadata: Record<string, unknown> = {}): Promise<string> {
  const id = crypto.randomUUID();
  await sql`
    insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                            confirmation_token, recovery_token, email_change_token_new, email_change,
                            raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
    values ('00000000-0000-0000-0000-000000000000', ${id}, 'authenticated', 'authenticated',
            ${`billing-${id.slice(0, 8)}@test.ledgerbase.dev`}, '', now(), '', '', '', '',
            '{"provider": "email", "providers": ["email"]}'::jsonb, ${
    sql.json(metadata as never)
  }, now(), now(), false)`;
  return id;
}

/** A team account owned by `owner`, with `members` as [userId, role]. */
export async function createTeam(sql: Sql, owner: string, members: [string, string][] = []): Promise<string> {
  const id = crypto.randomUUID();
  await sql`insert into public.accounts (id, kind, name, slug, primary_owner, created_by)
            values (${id}, 'team', 'Billing team', ${`bt-${uid()}`}, ${owner}, ${owner})`;
  await sql`insert into public.account_members (account_id, user_id, role) values (${id}, ${owner}, 'owner')`;
  for (const [user, role] of members) {
    await sql`insert into public.account_members (account_id, user_id, role) values (${id}, ${user}, ${role})`;
  }
  await sql`insert into public.credit_balances (account_id) values (${id}) on conflict do nothing`;
  return id;
}

export interface TestCatalog {
  basic: { key: string; priceId: string; productId: string; price: number; credits: number };
  pro: { key: string; priceId: string; productId: string; price: number; credits: number };
  pack: { key: string; priceId: string; productId: string; price: number; credits: number };
  retiredPack: { key: string; priceId: string };
}

/** Two plans and two packs (one retired) with their own keys and Stripe ids. */
export async function createCatalog(sql: Sql): Promise<TestCatalog> {
  const s = uid().slice(0, 10).toLowerCase();
  const catalog: TestCatalog = {
    basic: { key: `t6${s}_basic`, priceId: `price_${s}basic`, productId: `prod_${s}basic`, price: 1000, credits: 100 },
    pro: { key: `t6${s}_pro`, priceId: `price_${s}pro`, productId: `prod_${s}pro`, price: 2900, credits: 1000 },
    pack: { key: `t6${s}_pack`, priceId: `price_${s}pack`, productId: `prod_${s}pack`, price: 1000, credits: 250 },
    retiredPack: { key: `t6${s}_old`, priceId: `price_${s}old` },
  };
  await sql`
    insert into public.plans (key, name, tier, price_cents, stripe_price_id, stripe_product_id, included_credits, trial_days, limits)
    values (${catalog.basic.key}, 'Basic', 1, ${catalog.basic.price}, ${catalog.basic.priceId}, ${catalog.basic.productId}, ${catalog.basic.credits}, 7,
            '{"quotas": {"api_call": 5000}, "rate_limits": {"consume_credits": {"capacity": 300, "refill_per_second": 30}}}'),
           (${catalog.pro.key}, 'Pro', 2, ${catalog.pro.price}, ${catalog.pro.priceId}, ${catalog.pro.productId}, ${catalog.pro.credits}, 0,
            '{"quotas": {"api_call": 50000}}')`;
  await sql`
    insert into public.credit_packs (key, name, credits, price_cents, stripe_price_id, stripe_product_id, active)
    values (${catalog.pack.key}, '250 credits', ${catalog.pack.credits}, ${catalog.pack.price}, ${catalog.pack.priceId}, ${catalog.pack.productId}, true),
           (${catalog.retiredPack.key}, 'Old pack', 10, 100, ${catalog.retiredPack.priceId}, null, false)`;
  return catalog;
}

export async function balance(sql: Sql, accountId: string): Promise<{ balance: number; available: number }> {
  const [row] = await sql<{ balance: string; available: string }[]>`
    select balance, available from public.credit_balances where account_id = ${accountId}`;
  return { balance: Number(row.balance), available: Number(row.available) };
}

export async function webhookEvent(sql: Sql, eventId: string) {
  const [row] = await sql<{ status: string; attempts: number; error: string | null; type: string }[]>`
    select status, attempts, error, type from public.webhook_events where provider = 'stripe' and event_id = ${eventId}`;
  return row;
}

export async function paymentsOf(sql: Sql, accountId: string) {
  return await sql<{
    id: string;
    kind: string;
    item_key: string | null;
    status: string;
    settlement: string;
    amount: string;
    amount_refunded: string;
    credits_due: string;
    credits_granted: string;
    credits_clawed_back: string;
    dispute_status: string | null;
    flagged_reason: string | null;
    stripe_checkout_session_id: string | null;
    stripe_invoice_id: string | null;
    stripe_charge_id: string | null;
    period_end: Date | null;
    grant_id: string | null;
  }[]>`select * from public.payments where account_id = ${accountId} order by coalesce(stripe_checkout_session_id, stripe_invoice_id)`;
}

export async function subscriptionOf(sql: Sql, stripeSubscriptionId: string) {
  const [row] = await sql<{
    account_id: string;
    plan_key: string | null;
    status: string;
    quantity: number;
    current_period_start: Date | null;
    current_period_end: Date | null;
    cancel_at_period_end: boolean;
    trial_end: Date | null;
    last_event_id: string;
  }[]>`select * from public.subscriptions where stripe_subscription_id = ${stripeSubscriptionId}`;
  return row;
}

export async function accountPlan(sql: Sql, accountId: string) {
  const [row] = await sql<
    { plan_key: string; limits: Record<string, unknown>; period_start: Date; period_end: Date }[]
  >`
    select * from private.account_plan(${accountId})`;
  return row;
}

/** Notifications the account's members received, newest first. */
export async function notificationsOf(sql: Sql, userId: string) {
  return await sql<{ type: string; title: string; data: Record<string, unknown> }[]>`
    select type, title, data from public.notifications where user_id = ${userId} order by created_at desc`;
}

export async function auditActions(sql: Sql, accountId: string): Promise<string[]> {
  const rows = await sql<
    { action: string }[]
  >`select action from public.audit_log where account_id = ${accountId} order by id`;
  return rows.map((r) => r.action);
}

/**
 * Records the Checkout Sessions of these events the way the checkout function does when it
 * creates them (private.record_checkout_session), before Stripe sends anything about them:
 * the webhook trusts recorded sessions only. Sessions that name no account are left out.
 */
export async function recordCheckoutSessions(
  sql: Sql,
  events: { type: string; data: { object: Record<string, unknown> } }[],
): Promise<void> {
  for (const event of events) {
    if (!event.type.startsWith("checkout.session.")) continue;
    const s = event.data.object as {
      id: string;
      client_reference_id?: string | null;
      customer?: string | null;
      mode?: string;
      metadata?: Record<string, string>;
    };
    if (!s.client_reference_id) continue;
    await sql`select private.record_checkout_session(${s.id}, ${s.client_reference_id}::uuid, ${s.customer ?? null},
                                                     ${s.mode === "payment" ? "credit_pack" : "plan"}, ${
      s.metadata?.item ?? ""
    },
                                                     ${Number(s.metadata?.quantity ?? "1")}::int)`;
  }
}
