/**
 * The webhook figure of docs/performance.md#targets, for `npm run bench`:
 *
 *   import { runWebhookBench } from "../supabase/functions/stripe-webhook/bench.ts";
 *   const figure = await runWebhookBench({ dbUrl, events: 2000, concurrency: 8 });
 *   // {full: {events, seconds, perSecond}, baseline: {...}, ratio, floor}   target: ratio >= 0.35
 *
 * Both sides receive the same kind of request: a signed `invoice.paid` delivery (a paid
 * subscription invoice, distinct account and invoice each time).
 *   baseline  verifies the signature (constructEventAsync) and inserts the raw event into a table
 *   full      the stripe-webhook handler: signature, envelope, private.receive_stripe_event —
 *             event ledger, payment, plan credits granted (wallet, grant, ledger), audit log
 * and, for information, a third side run last:
 *   floor     verifies the signature and parses the event as the handler does, then writes the
 *             rows the full side writes per event (event ledger, payment, lot, ledger entry,
 *             wallet, audit entry) in ONE statement with no rule: each row a copy of the one the
 *             full side wrote last, the tables' own triggers switched off meanwhile. What the
 *             writes alone allow on this machine.
 * Run against a database with the migrations applied (the bench database); it creates a plan
 * `bench_webhook`, `accounts` users, and a scratch table it drops again.
 */
import { createDb, type Sql } from "../_shared/db.ts";
import { constructEvent, signPayload } from "../_shared/stripe.ts";
import { createWebhookHandler, StripeEventEnvelope } from "./handler.ts";

export interface WebhookBenchOptions {
  /** Postgres URL of the bench database (connects as its owner). */
  dbUrl: string;
  /** Deliveries per side (default 2000). */
  events?: number;
  /** Concurrent deliveries (default 8). */
  concurrency?: number;
  /** Accounts the invoices are spread over (default 200). */
  accounts?: number;
}

export interface Throughput {
  events: number;
  seconds: number;
  perSecond: number;
}

export interface WebhookBenchResult {
  full: Throughput;
  baseline: Throughput;
  /** full.perSecond / baseline.perSecond */
  ratio: number;
  /** The rows alone, no rule (information). */
  floor: Throughput;
}

const SECRET = "whsec_bench_ledgerbase";
const PRICE = "price_bench_webhook";

/** A paid subscription invoice for `account`, as Stripe (API basil+) sends it. */
export function benchInvoicePaid(n: number, account: string, run: string): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const id = `${run}x${n}`;
  return {
    id: `evt_bench_${id}`,
    object: "event",
    type: "invoice.paid",
    created: now,
    api_version: "2026-10-28.endive",
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: {
      object: {
        id: `in_bench_${id}`,
        object: "invoice",
        customer: `cus_bench_${id}`,
        status: "paid",
        currency: "usd",
        amount_paid: 1000,
        amount_due: 1000,
        subtotal: 1000,
        total: 1000,
        billing_reason: "subscription_cycle",
        hosted_invoice_url: null,
        invoice_pdf: null,
        livemode: false,
        status_transitions: { paid_at: now },
        parent: {
          type: "subscription_details",
          subscription_details: { subscription: `sub_bench_${id}`, metadata: { account_id: account } },
        },
        lines: {
          object: "list",
          data: [{
            id: `il_bench_${id}`,
            object: "line_item",
            amount: 1000,
            currency: "usd",
            quantity: 1,
            period: { start: now - 86_400, end: now + 29 * 86_400 },
            pricing: { type: "price_details", price_details: { price: PRICE, product: "prod_bench_webhook" } },
          }],
        },
      },
    },
  };
}

async function signedRequest(event: Record<string, unknown>): Promise<Request> {
  const payload = JSON.stringify(event);
  return new Request("http://127.0.0.1/stripe-webhook", {
    method: "POST",
    headers: { "content-type": "application/json", "stripe-signature": await signPayload(payload, SECRET) },
    body: payload,
  });
}

async function measure(
  requests: Request[],
  concurrency: number,
  deliver: (r: Request) => Promise<Response>,
): Promise<Throughput> {
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < requests.length) {
      const response = await deliver(requests[next++]);
      if (response.status !== 200) throw new Error(`webhook bench: HTTP ${response.status} ${await response.text()}`);
      await response.body?.cancel();
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  return { events: requests.length, seconds, perSecond: requests.length / seconds };
}

async function setup(sql: Sql, accounts: number): Promise<string[]> {
  await sql`insert into public.plans (key, name, tier, price_cents, stripe_price_id, included_credits)
            values ('bench_webhook', 'Bench', 1, 1000, ${PRICE}, 100)
            on conflict (key) do update set stripe_price_id = excluded.stripe_price_id, price_cents = 1000, active = true`;
  const ids = Array.from({ length: accounts }, () => crypto.randomUUID());
  await sql`insert into auth.users (instance_id, id, aud, role, email, encrypted_password, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
            select '00000000-0000-0000-0000-000000000000', id, 'authenticated', 'authenticated', 'bench-' || id || '@bench.test', '',
                   '{}'::jsonb, '{}'::jsonb, now(), now()
            from unnest(${ids}::uuid[]) id`;
  await sql`create table if not exists private.bench_webhook_baseline (event_id text primary key, payload jsonb not null)`;
  await sql`alter table private.bench_webhook_baseline enable row level security`;
  return ids;
}

/** Runs both sides on the same database and returns the figure. */
export async function runWebhookBench(options: WebhookBenchOptions): Promise<WebhookBenchResult> {
  const events = options.events ?? 2000;
  const concurrency = options.concurrency ?? 8;
  const sql = createDb(options.dbUrl, { max: concurrency });
  try {
    const accounts = await setup(sql, options.accounts ?? 200);
    const run = crypto.randomUUID().slice(0, 8);
    const build = async (side: string) =>
      await Promise.all(
        Array.from({ length: events }, (_, i) =>
          signedRequest(benchInvoicePaid(i, accounts[i % accounts.length], `${run}${side}`))),
      );

    // Baseline: verify, insert the raw event.
    const baselineRequests = await build("b");
    const baseline = await measure(baselineRequests, concurrency, async (request) => {
      const raw = await request.text();
      const event = await constructEvent(raw, request.headers.get("stripe-signature") ?? "", SECRET);
      await sql`insert into private.bench_webhook_baseline (event_id, payload) values (${event.id}, ${raw}::text::jsonb)`;
      return new Response(null, { status: 200 });
    });

    // Full: the deployed handler.
    const handler = createWebhookHandler({ env: new Map([["STRIPE_WEBHOOK_SECRET", SECRET]]), sql, log: () => {} });
    const full = await measure(await build("f"), concurrency, handler);

    // Floor (information): the same verification, then the full side's rows alone.
    const floor = await measureFloor(sql, await build("w"), concurrency);
    return { full, baseline, ratio: full.perSecond / baseline.perSecond, floor };
  } finally {
    await sql`drop table if exists private.bench_webhook_baseline`.catch(() => {});
    await sql.end();
  }
}

/** What the floor reads of a bench invoice (benchInvoicePaid). */
interface FloorInvoice {
  id: string;
  parent: { subscription_details: { metadata: { account_id: string } } };
}

/** The tables whose own triggers (audit entry, outgoing events, notices) the floor switches off. */
const FLOOR_TABLES = ["public.payments", "ledger.lots", "ledger.entries", "public.audit_log"];

async function measureFloor(sql: Sql, requests: Request[], concurrency: number): Promise<Throughput> {
  await sql`create table private.bench_webhook_floor as
    select (select id from public.webhook_events order by id desc limit 1) as event,
           (select id from public.payments where stripe_invoice_id is not null order by created_at desc limit 1) as payment,
           (select id from ledger.lots where payment_id is not null order by seq desc limit 1) as lot,
           (select id from ledger.entries where payment_id is not null order by id desc limit 1) as entry,
           (select id from public.audit_log where action = 'payment.paid' order by id desc limit 1) as audit`;
  for (const t of FLOOR_TABLES) await sql.unsafe(`alter table ${t} disable trigger user`);
  try {
    return await measure(requests, concurrency, async (request) => {
      const raw = await request.text();
      const event = await constructEvent(raw, request.headers.get("stripe-signature") ?? "", SECRET);
      StripeEventEnvelope.parse(event);
      const invoice = event.data.object as unknown as FloorInvoice;
      const account = invoice.parent.subscription_details.metadata.account_id;
      const [written] = await sql<{ rows: number }[]>`
        with e as (insert into public.webhook_events overriding user value
              select r.* from public.webhook_events w,
                     jsonb_populate_record(null::public.webhook_events,
                       to_jsonb(w) - 'id' || jsonb_build_object('event_id', ${event.id}::text, 'payload', ${raw}::text::jsonb)) r
              where w.id = (select event from private.bench_webhook_floor) returning 1),
        p as (insert into public.payments
              select r.* from public.payments p,
                     jsonb_populate_record(null::public.payments,
                       to_jsonb(p) || jsonb_build_object('id', gen_random_uuid(), 'account_id', ${account}::uuid,
                                                         'stripe_invoice_id', ${invoice.id}::text)) r
              where p.id = (select payment from private.bench_webhook_floor) returning 1),
        l as (insert into ledger.lots (account_id, source, amount, remaining, expires_at, payment_id, idempotency_key, metadata, created_at)
              select ${account}::uuid, l.source, l.amount, l.remaining, l.expires_at, l.payment_id, ${invoice.id}::text, l.metadata, l.created_at
              from ledger.lots l where l.id = (select lot from private.bench_webhook_floor) returning 1),
        x as (insert into ledger.entries overriding user value
              select r.* from ledger.entries x,
                     jsonb_populate_record(null::ledger.entries,
                       to_jsonb(x) - 'id' - 'writer_xid' || jsonb_build_object('account_id', ${account}::uuid,
                                                                            'idempotency_key', ${invoice.id}::text)) r
              where x.id = (select entry from private.bench_webhook_floor) returning 1),
        b as (update public.credit_balances set balance = balance + 100 where account_id = ${account}::uuid returning 1),
        a as (insert into public.audit_log overriding user value
              select r.* from public.audit_log a,
                     jsonb_populate_record(null::public.audit_log,
                       to_jsonb(a) - 'id' - 'writer_xid' - 'position' - 'sealed_at' - 'hash' - 'prev_hash'
                       || jsonb_build_object('account_id', ${account}::uuid, 'entity_id', ${invoice.id}::text)) r
              where a.id = (select audit from private.bench_webhook_floor) returning 1)
        select ((select count(*) from e) + (select count(*) from p) + (select count(*) from l) + (select count(*) from x)
             + (select count(*) from b) + (select count(*) from a))::int as rows`;
      if (written.rows !== 6) throw new Error(`webhook bench floor: ${written.rows} rows written instead of 6`);
      return new Response(null, { status: 200 });
    });
  } finally {
    for (const t of FLOOR_TABLES) await sql.unsafe(`alter table ${t} enable trigger user`);
    await sql`drop table private.bench_webhook_floor`;
  }
}
