/**
 * The world of the Stripe webhook stories: a database connection, a catalog of our own, and
 * `deliver`, which signs an event as Stripe does and hands it to the real handler. Sessions
 * are recorded first, as our checkout function records each one before Stripe can complete it.
 */
import { createWebhookHandler } from "../../../stripe-webhook/handler.ts";
import type { Sql } from "../../../_shared/db.ts";
import { assertEquals } from "../assert.ts";
import {
  connect,
  createCatalog,
  createUser,
  paymentsOf,
  recordCheckoutSessions,
  type TestCatalog,
  testEnv,
} from "./billing_db.ts";
import { customer, stripeEvent, type StripeEventJson, uid, webhookRequest } from "./events.ts";

export interface World {
  sql: Sql;
  catalog: TestCatalog;
  deliver: (
    event: StripeEventJson,
  ) => Promise<{ status: number; body: { received?: boolean; status?: string; error?: { code: string } } }>;
}

export async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const sql = connect();
  const handler = createWebhookHandler({ env: testEnv(), sql, log: () => {} });
  try {
    const catalog = await createCatalog(sql);
    await fn({
      sql,
      catalog,
      deliver: async (event) => {
        await recordCheckoutSessions(sql, [event]);
        const response = await handler(await webhookRequest(event));
        return { status: response.status, body: await response.json() };
      },
    });
  } finally {
    await sql.end();
  }
}

/** A user whose account is linked to a fresh Stripe customer id. */
export async function customerFor(world: World): Promise<{ account: string; customer: string }> {
  const account = await createUser(world.sql);
  const cus = `cus_${uid()}`;
  const linked = await world.deliver(stripeEvent("customer.created", customer({ id: cus, accountId: account })));
  assertEquals(linked.body.status, "processed");
  return { account, customer: cus };
}

/** A customer buying the catalog's credit pack: the fields of its checkout sessions, and the payment of a session. */
export async function packBuyer(world: World) {
  const { account, customer } = await customerFor(world);
  const { pack } = world.catalog;
  return {
    account,
    customer,
    pack,
    base: { accountId: account, customer, mode: "payment" as const, item: pack.key },
    paymentOf: async (sessionId: unknown) =>
      (await paymentsOf(world.sql, account)).find((p) => p.stripe_checkout_session_id === sessionId),
  };
}

/** A customer subscribed to the catalog's basic plan: the fields of its invoices, and the payment of an invoice. */
export async function subscriber(world: World) {
  const { account, customer } = await customerFor(world);
  const { basic } = world.catalog;
  const sub = `sub_${uid()}`;
  return {
    account,
    customer,
    basic,
    sub,
    base: { customer, subscription: sub, accountId: account, priceId: basic.priceId },
    paymentOf: async (invoiceId: unknown) =>
      (await paymentsOf(world.sql, account)).find((p) => p.stripe_invoice_id === invoiceId),
  };
}
