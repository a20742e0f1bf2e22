/**
 * Story: Priya's team is on the per-seat Pro plan. Her team grows from one member to 21 in a
 * burst, shrinks, invites, and someone edits the quantity in the Stripe dashboard. Proved:
 * each burst makes one seats.sync job and one subscription item update carrying the latest
 * count and the plan's proration behaviour; a Stripe outage is retried with the same key;
 * customer.subscription.updated records Stripe's quantity and a drift is corrected; on a
 * prepaid-seat plan, an invitation beyond the seats paid for is refused with
 * member_limit_reached and a hint that says how to add seats.
 */
import postgres from "postgres";
import { createWebhookHandler } from "../stripe-webhook/handler.ts";
import { dispatch } from "../dispatch/handler.ts";
import { createStripe } from "../_shared/stripe.ts";
import type { Sql } from "../_shared/db.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { asUserTx } from "./_support/wallet.ts";
import {
  connect,
  createCatalog,
  createTeam,
  createUser,
  type TestCatalog,
  testEnv,
} from "./_support/stripe/billing_db.ts";
import { type Json, stripeEvent, subscription, uid, webhookRequest } from "./_support/stripe/events.ts";
import { type FakeStripe, startFakeStripe } from "./_support/stripe/fake_stripe.ts";

const silent = () => {};

interface World {
  sql: Sql;
  fake: FakeStripe;
  catalog: TestCatalog;
  /** Lets the pending seat syncs come due (their debounce over) and runs them. */
  runSyncs: () => Promise<{ claimed: number; succeeded: number; retrying: number }>;
  deliver: (type: string, object: Json) => Promise<void>;
}

async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const sql = connect(4);
  const fake = await startFakeStripe();
  const stripe = createStripe("sk_test_ledgerbase_fake", new URL(fake.url));
  const webhook = createWebhookHandler({ env: testEnv(), sql, log: silent });
  try {
    const catalog = await createCatalog(sql);
    await fn({
      sql,
      fake,
      catalog,
      runSyncs: async () => {
        await sql`update private.jobs set run_at = now() where kind = 'seats.sync' and status = 'pending'`;
        return await dispatch(sql, { kinds: ["seats.sync"], stripe, log: silent });
      },
      deliver: async (type, object) => {
        const event = stripeEvent(type, object);
        const response = await webhook(await webhookRequest(event));
        if (response.status !== 200) {
          const [row] =
            await sql`select error from public.webhook_events where provider = 'stripe' and event_id = ${event.id}`;
          throw new Error(`${type}: ${await response.text()} ${row?.error ?? ""}`);
        }
        await response.body?.cancel();
      },
    });
  } finally {
    await fake.close();
    await sql.end();
  }
}

interface Team {
  owner: string;
  team: string;
  subscriptionId: string;
  itemId: string;
  customer: string;
}

/** Priya's team, subscribed to the Pro plan priced with `seatPricing`, `quantity` seats. */
async function priyasTeam(world: World, seatPricing: Json, quantity = 1): Promise<Team> {
  await world.sql`update public.plans set seat_pricing = ${
    JSON.stringify(seatPricing)
  }::text::jsonb where key = ${world.catalog.pro.key}`;
  const owner = await createUser(world.sql);
  const team = await createTeam(world.sql, owner);
  const customer = `cus_${uid()}`;
  const subscriptionId = `sub_${uid()}`;
  const sub = subscription({
    id: subscriptionId,
    customer,
    accountId: team,
    priceId: world.catalog.pro.priceId,
    status: "active",
    quantity,
  });
  const itemId = (sub.items as { data: Json[] }).data[0].id as string;
  world.fake.addSubscription(subscriptionId, [{ id: itemId, price: world.catalog.pro.priceId, quantity }]);
  await world.deliver("customer.subscription.created", sub);
  return { owner, team, subscriptionId, itemId, customer };
}

async function join(sql: Sql, team: string, n: number): Promise<string[]> {
  const users: string[] = [];
  for (let i = 0; i < n; i++) {
    const user = await createUser(sql);
    // One transaction per join, as members arrive one by one.
    await sql`insert into public.account_members (account_id, user_id, role) values (${team}, ${user}, 'member')`;
    users.push(user);
  }
  return users;
}

async function pendingSyncs(sql: Sql, t: Team): Promise<number> {
  const [row] =
    await sql`select count(*)::int as n from private.jobs j join public.subscriptions s on s.id::text = j.payload ->> 'subscription_id'
                          where j.kind = 'seats.sync' and j.status = 'pending' and s.stripe_subscription_id = ${t.subscriptionId}`;
  return row.n;
}

const updatesOf = (fake: FakeStripe, t: Team) => fake.requestsTo(`/v1/subscription_items/${t.itemId}`);

Deno.test("a burst of 20 joins makes one job and one quantity update with the latest count and the plan's proration", async () => {
  await withWorld(async (world) => {
    const t = await priyasTeam(world, { per_seat: true, proration_behavior: "always_invoice" });
    await join(world.sql, t.team, 20);
    assertEquals(await pendingSyncs(world.sql, t), 1, "the burst is coalesced into one job");

    const summary = await world.runSyncs();
    assertEquals([summary.claimed, summary.succeeded], [1, 1], JSON.stringify(summary));
    const updates = updatesOf(world.fake, t);
    assertEquals(updates.length, 1, "one Stripe update for 20 joins");
    assertEquals([updates[0].params.quantity, updates[0].params.proration_behavior], ["21", "always_invoice"]);
    assert(updates[0].idempotencyKey?.startsWith("seats.sync:") && updates[0].idempotencyKey.endsWith(":21"));
    assertEquals(world.fake.itemQuantity(t.itemId), 21);

    // Stripe confirms: the recorded quantity follows, and nothing more is queued.
    const sub = subscription({
      id: t.subscriptionId,
      customer: t.customer,
      accountId: t.team,
      priceId: world.catalog.pro.priceId,
      status: "active",
      quantity: 21,
    });
    await world.deliver("customer.subscription.updated", sub);
    const [row] = await world
      .sql`select quantity from public.subscriptions where stripe_subscription_id = ${t.subscriptionId}`;
    assertEquals(row.quantity, 21);
    assertEquals(await pendingSyncs(world.sql, t), 0);
  });
});

Deno.test("removals and invitations counted by the plan make one update; a job running while members change leaves one more", async () => {
  await withWorld(async (world) => {
    const t = await priyasTeam(world, { per_seat: true, count_pending_invitations: true }, 4);
    const [a, b] = await join(world.sql, t.team, 3); // 4 members: as paid
    // The job queued by the first join reads the count when it runs: 4, as recorded, so no call.
    await world.runSyncs();
    assertEquals(updatesOf(world.fake, t).length, 0, "the count equals the quantity: nothing sent");

    await world.sql`delete from public.account_members where account_id = ${t.team} and user_id in (${a}, ${b})`;
    await asUserTx(
      world.sql,
      t.owner,
      (tx) => tx`select public.invite_member(${t.team}::uuid, ${`new-${uid()}@example.com`}, 'member')`,
    );
    assertEquals(await pendingSyncs(world.sql, t), 1);
    await world.runSyncs();
    assertEquals(updatesOf(world.fake, t).map((r) => [r.params.quantity, r.params.proration_behavior]), [[
      "3",
      "create_prorations",
    ]]);

    // A join lands while the job is running (claimed, not pending): a second job follows it.
    world.fake.onAnswer = async (request) => {
      if (request.path.startsWith("/v1/subscription_items/")) {
        world.fake.onAnswer = null;
        await join(world.sql, t.team, 1);
      }
    };
    await world.sql`delete from public.account_invitations where account_id = ${t.team}`;
    await world.runSyncs();
    assertEquals(await pendingSyncs(world.sql, t), 1, "the change during the run is not lost");
    await world.runSyncs();
    assertEquals(updatesOf(world.fake, t).map((r) => r.params.quantity), ["3", "2", "3"]);
    assertEquals(world.fake.itemQuantity(t.itemId), 3);
  });
});

Deno.test("an invitation is not a seat until accepted (when the plan says so); accepting it is", async () => {
  await withWorld(async (world) => {
    const t = await priyasTeam(world, { per_seat: true });
    const invitee = await createUser(world.sql);
    const [{ email }] = await world.sql`select email from auth.users where id = ${invitee}`;
    const [{ invitation }] = await asUserTx(
      world.sql,
      t.owner,
      (tx) => tx`select public.invite_member(${t.team}::uuid, ${email}, 'member') as invitation`,
    );
    assertEquals(await pendingSyncs(world.sql, t), 0, "a pending invitation is not billable on this plan");
    await asUserTx(world.sql, invitee, (tx) => tx`select public.accept_invitation(${invitation.token})`);
    assertEquals(await pendingSyncs(world.sql, t), 1, "the new member is");
    await world.runSyncs();
    assertEquals(updatesOf(world.fake, t).map((r) => r.params.quantity), ["2"]);
  });
});

Deno.test("a Stripe outage is retried, with the same idempotency key for the same count", async () => {
  await withWorld(async (world) => {
    const t = await priyasTeam(world, { per_seat: true });
    await join(world.sql, t.team, 2);
    // Every try of the first call fails (the library's own retries included).
    world.fake.failNext(3, 500, { type: "api_error", message: "An unknown error occurred" });
    const first = await world.runSyncs();
    assertEquals([first.succeeded, first.retrying], [0, 1], "the attempt failed and waits for its retry");
    assertEquals(world.fake.itemQuantity(t.itemId), 1);

    const second = await world.runSyncs();
    assertEquals(second.succeeded, 1);
    assertEquals(world.fake.itemQuantity(t.itemId), 3);
    const [job] = await world.sql`select attempts, last_error from private.jobs j
                                  where j.kind = 'seats.sync' and j.status = 'succeeded' and j.idempotency_key like 'seats.sync:%'
                                  order by j.id desc limit 1`;
    assertEquals(job.attempts, 2);
    assert(String(job.last_error).length > 0, "the outage is on record");
  });
});

Deno.test("customer.subscription.updated records Stripe's quantity and a drift from the team is corrected", async () => {
  await withWorld(async (world) => {
    const t = await priyasTeam(world, { per_seat: true, proration_behavior: "none" }, 3);
    await join(world.sql, t.team, 2); // 3 members, 3 seats
    await world.runSyncs();
    assertEquals([await pendingSyncs(world.sql, t), updatesOf(world.fake, t).length], [0, 0], "in step");

    // Someone sets 5 seats in the Stripe dashboard.
    world.fake.addSubscription(t.subscriptionId, [{ id: t.itemId, price: world.catalog.pro.priceId, quantity: 5 }]);
    await world.deliver(
      "customer.subscription.updated",
      subscription({
        id: t.subscriptionId,
        customer: t.customer,
        accountId: t.team,
        priceId: world.catalog.pro.priceId,
        status: "active",
        quantity: 5,
      }),
    );
    const [row] = await world
      .sql`select quantity from public.subscriptions where stripe_subscription_id = ${t.subscriptionId}`;
    assertEquals(row.quantity, 5, "recorded as Stripe has it");
    assertEquals(await pendingSyncs(world.sql, t), 1, "the drift queues a sync");
    await world.runSyncs();
    assertEquals(updatesOf(world.fake, t).map((r) => [r.params.quantity, r.params.proration_behavior]), [[
      "3",
      "none",
    ]]);
  });
});

Deno.test("prepaid seats: an invitation beyond the seats paid for is refused with a hint to add seats", async () => {
  await withWorld(async (world) => {
    const t = await priyasTeam(world, { per_seat: true, prepaid: true }, 3);
    await join(world.sql, t.team, 1); // 2 of 3 seats taken
    const invite = (email: string) =>
      asUserTx(world.sql, t.owner, (tx) => tx`select public.invite_member(${t.team}::uuid, ${email}, 'member')`);
    await invite(`third-${uid()}@example.com`); // the third seat (pending invitations count when inviting)
    try {
      await invite(`fourth-${uid()}@example.com`);
      throw new Error("the fourth invitation went through");
    } catch (e) {
      assert(e instanceof postgres.PostgresError, String(e));
      assertEquals([e.code, e.message], ["PT409", "member_limit_reached"]);
      assert(e.detail?.includes("3 seat(s) are paid for"), e.detail);
      assert(e.hint?.includes("add seats"), e.hint);
    }
    // Prepaid seats never sync down to the members: the quantity is what was bought.
    assertEquals(await pendingSyncs(world.sql, t), 0);
  });
});
