/**
 * Story: Olga's team is on the Pro plan, whose "render" action may run past the wallet: up to
 * 100 credits of overage a billing period, reported to the Stripe meter "ledgerbase_overage"
 * and billed on the next invoice. Proved: a render half covered by credits charges what the
 * wallet has and records the rest on its usage event; the meter event carries the usage event
 * id as its identifier, the customer and the value; a replayed render reports nothing new; a
 * Stripe outage is retried and a lost answer does not bill twice (the fake keeps one event
 * per identifier, as Stripe does); past the cap, PT402 insufficient_credits with the cap.
 */
import { dispatch } from "../dispatch/handler.ts";
import { createStripe } from "../_shared/stripe.ts";
import type { Sql } from "../_shared/db.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import {
  balance,
  connect,
  createCatalog,
  createTeam,
  createUser,
  type TestCatalog,
} from "./_support/stripe/billing_db.ts";
import { subscription, uid } from "./_support/stripe/events.ts";
import { type FakeStripe, startFakeStripe } from "./_support/stripe/fake_stripe.ts";

const silent = () => {};
const METER = "ledgerbase_overage";

interface World {
  sql: Sql;
  fake: FakeStripe;
  catalog: TestCatalog;
  /** Lets pending meter jobs come due and runs them. */
  runMeter: () => Promise<{ claimed: number; succeeded: number; retrying: number }>;
}

async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const sql = connect(4);
  const fake = await startFakeStripe();
  const stripe = createStripe("sk_test_ledgerbase_fake", new URL(fake.url));
  try {
    const catalog = await createCatalog(sql);
    await fn({
      sql,
      fake,
      catalog,
      runMeter: async () => {
        await sql`update private.jobs set run_at = now() where kind = 'overage.meter_event' and status = 'pending'`;
        return await dispatch(sql, { kinds: ["overage.meter_event"], stripe, log: silent });
      },
    });
  } finally {
    await fake.close();
    await sql.end();
  }
}

interface Team {
  team: string;
  customer: string;
  action: string;
}

/** Olga's team on Pro with 50 credits; "render" costs 10 credits a unit and may run 100 credits past the wallet. */
async function olgasTeam(world: World): Promise<Team> {
  const action = `t_render_${uid().slice(0, 8).toLowerCase()}`;
  await world
    .sql`insert into public.billable_actions (key, name, category, credits) values (${action}, 'Render', 'render', 10)`;
  const limits = { overage: { actions: [action], max_units_per_period: 100, stripe_meter_event_name: METER } };
  await world.sql`update public.plans set limits = ${
    JSON.stringify(limits)
  }::text::jsonb where key = ${world.catalog.pro.key}`;
  const owner = await createUser(world.sql);
  const team = await createTeam(world.sql, owner);
  const customer = `cus_${uid()}`;
  await world.sql`select private.attach_billing_customer(${team}::uuid, ${customer}, null)`;
  const sub = subscription({
    id: `sub_${uid()}`,
    customer,
    accountId: team,
    priceId: world.catalog.pro.priceId,
    status: "active",
  });
  await world.sql`select private.handle_stripe_event(${
    JSON.stringify({
      id: `evt_${uid()}`,
      object: "event",
      type: "customer.subscription.created",
      created: Math.floor(Date.now() / 1000),
      data: { object: sub },
    })
  }::text::jsonb)`;
  await world.sql`select private.grant_credits(${team}::uuid, 50, 'admin')`;
  return { team, customer, action };
}

interface Consumption {
  usage_event_id: string;
  credits_charged: number;
  available: number;
  replayed: boolean;
  overage_units?: number;
}

async function render(sql: Sql, t: Team, units: number, key: string): Promise<Consumption> {
  const [row] = await sql`select public.consume_credits(${t.team}::uuid, ${t.action}, ${units}::integer, ${key}) as r`;
  return row.r as Consumption;
}

async function meterJobs(sql: Sql, t: Team): Promise<number> {
  const [row] =
    await sql`select count(*)::int as n from private.jobs j join public.usage_overages o on o.usage_event_id::text = j.payload ->> 'usage_event_id'
                          where j.kind = 'overage.meter_event' and o.account_id = ${t.team}`;
  return row.n;
}

const meterRequests = (fake: FakeStripe, identifier: string) =>
  fake.requestsTo("/v1/billing/meter_events").filter((r) => r.params.identifier === identifier);

Deno.test("a render half covered by credits charges the wallet to zero and reports the rest to the Stripe meter, once", async () => {
  await withWorld(async (world) => {
    const t = await olgasTeam(world);

    // 8 units cost 80 credits; the wallet has 50: it pays 50, the 30 left are overage.
    const first = await render(world.sql, t, 8, "render-1");
    assertEquals([first.credits_charged, first.overage_units, first.available], [80, 30, 0]);
    assertEquals(await balance(world.sql, t.team), { balance: 0, available: 0 }, "available never goes below zero");
    const [overage] = await world
      .sql`select overage_units::int, stripe_meter_event_name, reported_at from public.usage_overages
                                      where usage_event_id = ${first.usage_event_id}`;
    assertEquals(
      [overage.overage_units, overage.stripe_meter_event_name, overage.reported_at],
      [30, METER, null],
      "the uncovered credits are recorded on the usage event",
    );

    // The client retries with the same idempotency key: the first result, nothing new to report.
    const replay = await render(world.sql, t, 8, "render-1");
    assertEquals([replay.replayed, replay.usage_event_id, replay.overage_units], [true, first.usage_event_id, 30]);
    assertEquals(await meterJobs(world.sql, t), 1, "one meter job for the one usage event");

    const summary = await world.runMeter();
    assertEquals([summary.claimed, summary.succeeded], [1, 1], JSON.stringify(summary));
    const event = world.fake.meterEvents.get(first.usage_event_id);
    assert(event !== undefined, "the meter event's identifier is the usage event id");
    assertEquals([event.event_name, event.payload], [METER, { stripe_customer_id: t.customer, value: "30" }]);
    const [reported] = await world
      .sql`select reported_at from public.usage_overages where usage_event_id = ${first.usage_event_id}`;
    assert(reported.reported_at !== null, "the overage is marked reported");

    // Replaying again after the report, and dispatching again, sends nothing.
    await render(world.sql, t, 8, "render-1");
    assertEquals((await world.runMeter()).claimed, 0);
    assertEquals(meterRequests(world.fake, first.usage_event_id).length, 1, "one meter request for the render");
  });
});

Deno.test("a Stripe outage is retried and a lost answer is not billed twice: one meter event per identifier", async () => {
  await withWorld(async (world) => {
    const t = await olgasTeam(world);
    await render(world.sql, t, 5, "fill"); // the 50 credits are spent; nothing is overage
    assertEquals(await meterJobs(world.sql, t), 0, "a render the wallet covers reports nothing");

    // Stripe is down for the whole first attempt (the library's own retries included).
    const outage = await render(world.sql, t, 4, "render-outage");
    assertEquals([outage.credits_charged, outage.overage_units], [40, 40]);
    world.fake.failNext(3, 500, { type: "api_error", message: "An unknown error occurred." });
    const down = await world.runMeter();
    assertEquals([down.claimed, down.succeeded, down.retrying], [1, 0, 1], JSON.stringify(down));
    assertEquals(world.fake.meterEvents.has(outage.usage_event_id), false);
    const up = await world.runMeter();
    assertEquals([up.claimed, up.succeeded], [1, 1], JSON.stringify(up));
    assertEquals(world.fake.meterEvents.get(outage.usage_event_id)?.payload, {
      stripe_customer_id: t.customer,
      value: "40",
    });

    // Stripe records the next event but the answer is lost; whoever retries (the library, or
    // the job) is told the identifier exists, and that counts as delivered.
    const lost = await render(world.sql, t, 2, "render-lost");
    world.fake.loseNextAnswers(1);
    let run = await world.runMeter();
    if (run.retrying > 0) run = await world.runMeter();
    assertEquals(run.succeeded, 1, JSON.stringify(run));
    assertEquals(meterRequests(world.fake, lost.usage_event_id).length, 2, "the event was sent twice");
    assertEquals(
      [...world.fake.meterEvents.values()].filter((e) => e.identifier === lost.usage_event_id).length,
      1,
      "and recorded once",
    );
    const [row] = await world
      .sql`select reported_at from public.usage_overages where usage_event_id = ${lost.usage_event_id}`;
    assert(row.reported_at !== null);
  });
});

Deno.test("past the period's overage cap a render is refused with insufficient_credits and the cap", async () => {
  await withWorld(async (world) => {
    const t = await olgasTeam(world);
    await render(world.sql, t, 5, "fill");
    await render(world.sql, t, 9, "big"); // 90 of the 100 credits of overage
    let caught: { code?: string; detail?: string; hint?: string } | null = null;
    try {
      await render(world.sql, t, 2, "too-much"); // 20 more would pass the cap
    } catch (e) {
      caught = e as { code?: string; detail?: string; hint?: string };
    }
    assertEquals(caught?.code, "PT402");
    const detail = JSON.parse(caught?.detail ?? "{}");
    assertEquals([detail.required, detail.available, detail.overage_limit, detail.overage_used], [20, 0, 100, 90]);
    assert(caught?.hint?.includes("overage"), caught?.hint);
    assertEquals(await meterJobs(world.sql, t), 1, "the refused render recorded nothing");
    // One more unit still fits under the cap.
    assertEquals((await render(world.sql, t, 1, "last")).overage_units, 10);
  });
});
