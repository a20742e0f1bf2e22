/**
 * Story: many servers and browsers spend the same credits at the same time.
 * docs/credits.md#invariants: no overdraft under any concurrency; balance = sum of ledger
 * deltas = sum of unexpired remaining; idempotent retries charge once; holds
 * never reserve more than the balance; private.expire_credit_grants() is
 * idempotent and safe to run concurrently; nobody spends an expired credit.
 *
 * Every test uses 32 dedicated connections (single-connection postgres.js
 * clients that all connect before the work starts), fresh users with random
 * ids, and checks outcomes and invariants, never timings. Calls go through the
 * trusted server path (a direct connection as postgres) unless a test says it
 * runs them as the signed-in user (role authenticated + JWT claims in the
 * transaction, so the permission check runs).
 */
import type { CaptureCreditsResult, ReserveCreditsResult } from "../../../types/index.ts";
import { assert, assertEquals } from "../../functions/tests/_support/assert.ts";
import {
  asUserTx,
  attempt,
  atTime,
  checkInvariants,
  closeAll,
  connect,
  createUser,
  createUsers,
  grant,
  openClients,
  rng,
  runOnClients,
  shuffle,
  snapshots,
  type Sql,
  type SqlOutcome,
  testSeed,
  type Tx,
  withEngineSetup,
} from "../../functions/tests/_support/wallet.ts";

const CONNECTIONS = 32;

interface ConsumeResult {
  usage_event_id: string;
  credits_charged: number;
  balance: number;
  available: number;
  replayed: boolean;
}

async function consume(
  db: Sql | Tx,
  accountId: string,
  action: string,
  quantity = 1,
  idempotencyKey: string | null = null,
  metadata: Record<string, unknown> = {},
): Promise<ConsumeResult> {
  const [row] = await db<{ r: ConsumeResult }[]>`
    select public.consume_credits(account_id => ${accountId}::uuid, action => ${action}, quantity => ${quantity}::int,
                                  idempotency_key => ${idempotencyKey}, metadata => ${
    JSON.stringify(metadata)
  }::text::jsonb) as r`;
  return row.r;
}

/** Shared setup (withEngineSetup) with this file's test actions. */
function withSetup(fn: (admin: Sql) => Promise<void>): Promise<void> {
  return withEngineSetup({ test_cost7: 7, test_cost3: 3, test_unit5: 5 }, fn);
}

function isInsufficient(outcome: SqlOutcome<unknown>, cost: number): boolean {
  if (outcome.ok || outcome.code !== "PT402" || outcome.message !== "insufficient_credits") return false;
  const detail = JSON.parse(outcome.detail ?? "{}");
  return detail.required === cost && detail.available < cost;
}

Deno.test("32 connections on one wallet of 500: exactly floor(500/7) calls of 7 succeed, no overdraft", async () => {
  await withSetup(async (admin) => {
    const account = await createUser(admin); // 50 signup_bonus credits, never expiring
    await grant(admin, account, 450, "purchase");
    const [before] = await snapshots(admin, [account]);
    assertEquals([before.balance, before.available], [500, 500]);

    const clients = await openClients(CONNECTIONS);
    let outcomes: SqlOutcome<ConsumeResult>[];
    try {
      const tasks = Array.from(
        { length: 4 * CONNECTIONS },
        (_, i) => (c: Sql) => attempt(() => consume(c, account, "test_cost7", 1, null, { call: i })),
      );
      outcomes = await runOnClients(clients, tasks);
    } finally {
      await closeAll(clients);
    }

    const successes = outcomes.filter((o) => o.ok).map((o) => o.value);
    const failures = outcomes.filter((o) => !o.ok);
    assertEquals(successes.length, Math.floor(500 / 7)); // 71
    assertEquals(failures.length, 4 * CONNECTIONS - 71);
    for (const f of failures) assert(isInsufficient(f, 7), `unexpected failure ${JSON.stringify(f)}`);
    // Serialized: each success saw a distinct balance, 500 - 7k for k = 1..71, never negative.
    assertEquals(
      successes.map((s) => s.balance).sort((a, b) => b - a),
      Array.from({ length: 71 }, (_, k) => 500 - 7 * (k + 1)),
    );
    for (const s of successes) {
      assertEquals([s.credits_charged, s.replayed, s.available], [7, false, s.balance]);
    }

    const [after] = await snapshots(admin, [account]);
    checkInvariants(after);
    assertEquals(after.balance, 500 - 71 * 7);
    assert(after.min_balance_after !== null && after.min_balance_after >= 0, "the balance was never negative");
    assertEquals([after.usage_count, after.usage_charged], [71, 71 * 7]);
    // Draw-down order held under contention: the promotional signup bonus went first, then the purchase.
    const lots = await admin<{ source: string; remaining: number }[]>`
      select source, remaining::int as remaining from public.credit_grants where account_id = ${account} order by source`;
    assertEquals([...lots], [{ source: "purchase", remaining: 3 }, { source: "signup_bonus", remaining: 0 }]);
  });
});

Deno.test("a lot granted while a consumption waits for the wallet is drawn first when it expires first", async () => {
  // The consumption's statement starts before the grant commits and then waits for the
  // wallet lock the grant holds. Once it has the lock it must see the new lot: the draw-down
  // order (soonest expiry first) is decided after the wallet is locked, not before.
  await withSetup(async (admin) => {
    const account = await createUser(admin); // 50 signup_bonus credits, never expiring
    const granter = connect(1);
    const spender = connect(1);
    try {
      const [{ pid }] = await spender<{ pid: number }[]>`select pg_backend_pid() as pid`;
      let spent: Promise<ConsumeResult> | null = null;
      await granter.begin(async (tx) => {
        await grant(tx, account, 10, "promo", new Date(Date.now() + 86_400_000).toISOString());
        spent = consume(spender, account, "test_cost3");
        // Wait until the consumption is queued on the wallet row lock held by this transaction.
        for (let i = 0; i < 500; i++) {
          const [row] = await admin<{ waiting: boolean }[]>`
            select coalesce(wait_event_type = 'Lock', false) as waiting from pg_stat_activity where pid = ${pid}`;
          if (row?.waiting) break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      });
      const result = await spent!;
      assertEquals([result.credits_charged, result.balance], [3, 57]);
    } finally {
      await granter.end();
      await spender.end();
    }
    const lots = await admin<{ source: string; remaining: number }[]>`
      select source, remaining::int as remaining from public.credit_grants where account_id = ${account} order by source`;
    assertEquals([...lots], [{ source: "promo", remaining: 7 }, { source: "signup_bonus", remaining: 50 }]);
    const [after] = await snapshots(admin, [account]);
    checkInvariants(after);
  });
});

Deno.test("random consumption over 200 wallets on 32 connections: no overdraft anywhere, invariants per account", async () => {
  await withSetup(async (admin) => {
    const random = rng(testSeed("many wallets"));
    const accounts = await createUsers(admin, 200);
    const plan = accounts.map((id, i) => ({
      id,
      topUp: Math.floor(random() * 4) === 0 ? 0 : 1 + Math.floor(random() * 150),
      action: i % 2 === 0 ? "test_cost7" : "test_cost3",
      cost: i % 2 === 0 ? 7 : 3,
      calls: Math.floor(random() * 26),
      // Every third account is driven by its signed-in owner (permission checks run).
      asUser: i % 3 === 0,
    }));
    await admin`
      select private.grant_credits(p.id, p.amt, 'purchase')
      from json_to_recordset(${
      JSON.stringify(plan.filter((p) => p.topUp > 0).map((p) => ({ id: p.id, amt: p.topUp })))
    }::text::json)
        as p(id uuid, amt bigint)`;

    const tasks = shuffle(
      plan.flatMap((p) => Array.from({ length: p.calls }, (_, n) => ({ p, n }))),
      random,
    ).map(({ p, n }) => async (c: Sql) => ({
      account: p.id,
      outcome: await attempt(() =>
        p.asUser
          ? asUserTx(c, p.id, (tx) => consume(tx, p.id, p.action, 1, null, { n }))
          : consume(c, p.id, p.action, 1, null, { n })
      ),
    }));
    const clients = await openClients(CONNECTIONS);
    let results: { account: string; outcome: SqlOutcome<ConsumeResult> }[];
    try {
      results = await runOnClients(clients, tasks);
    } finally {
      await closeAll(clients);
    }

    const wallets = new Map((await snapshots(admin, accounts)).map((w) => [w.account_id, w]));
    const actors = new Map(
      (await admin<{ account_id: string; roles: string[]; users: string[] }[]>`
        select e.account_id::text, array_agg(distinct l.actor_role) as roles,
               array_agg(distinct coalesce(e.user_id::text, '-')) as users
        from public.usage_events e join public.credit_ledger l on l.usage_event_id = e.id
        where e.account_id in (select x::uuid from json_array_elements_text(${JSON.stringify(accounts)}::text::json) x)
        group by 1`).map((r) => [r.account_id, r]),
    );
    for (const p of plan) {
      const mine = results.filter((r) => r.account === p.id);
      const ok = mine.filter((r) => r.outcome.ok).length;
      const initial = 50 + p.topUp;
      // One price per wallet, so the number of successes is determined: min(calls, floor(initial / cost)).
      assertEquals(ok, Math.min(p.calls, Math.floor(initial / p.cost)), `successes on ${p.id}`);
      for (const r of mine) {
        if (!r.outcome.ok) assert(isInsufficient(r.outcome, p.cost), `unexpected failure ${JSON.stringify(r.outcome)}`);
        else assert(r.outcome.value.balance >= 0 && r.outcome.value.available >= 0, "no overdraft");
      }
      const w = wallets.get(p.id)!;
      checkInvariants(w);
      assertEquals(w.balance, initial - ok * p.cost);
      assertEquals([w.usage_count, w.usage_charged], [ok, ok * p.cost]);
      assert(w.min_balance_after !== null && w.min_balance_after >= 0, `${p.id}: never negative`);
      if (ok > 0) {
        // The user path records the user; the server path records no user and the system actor.
        const a = actors.get(p.id)!;
        assertEquals(a.roles, [p.asUser ? "authenticated" : "system"]);
        assertEquals(a.users, [p.asUser ? p.id : "-"]);
      }
    }
  });
});

Deno.test("32 concurrent identical idempotent calls by the signed-in owner charge exactly once", async () => {
  await withSetup(async (admin) => {
    const owner = await createUser(admin); // 50 credits
    const stranger = await createUser(admin);
    const key = `job-${crypto.randomUUID()}`;
    const metadata = { model: "thumb-v2", output: "s3://bucket/out.png" };

    const clients = await openClients(CONNECTIONS);
    let same: SqlOutcome<ConsumeResult>[];
    let conflicting: SqlOutcome<ConsumeResult>[];
    let denied: SqlOutcome<ConsumeResult>;
    try {
      same = await runOnClients(
        clients,
        clients.map(() => (c: Sql) =>
          attempt(() => asUserTx(c, owner, (tx) => consume(tx, owner, "test_cost7", 3, key, metadata)))
        ),
      );
      // The same key with other parameters, concurrently: a conflict every time, never a charge.
      conflicting = await runOnClients(
        clients,
        clients.slice(0, 16).map((_, i) => (c: Sql) =>
          attempt(() =>
            asUserTx(c, owner, (tx) => consume(tx, owner, "test_cost7", i % 2 === 0 ? 2 : 3, key, { other: i }))
          )
        ),
      );
      // Someone without credits.consume on the account is refused before anything happens.
      denied = await attempt(() => asUserTx(clients[0], stranger, (tx) => consume(tx, owner, "test_cost7", 1, null)));
    } finally {
      await closeAll(clients);
    }

    assert(same.every((o) => o.ok), `every identical call succeeds: ${JSON.stringify(same.find((o) => !o.ok))}`);
    const results = same.map((o) => (o as { ok: true; value: ConsumeResult }).value);
    assertEquals(results.filter((r) => !r.replayed).length, 1, "exactly one original");
    assertEquals(new Set(results.map((r) => r.usage_event_id)).size, 1, "one usage event for all");
    for (const r of results) {
      assertEquals([r.credits_charged, r.balance, r.available], [21, 29, 29]);
    }
    for (const o of conflicting) {
      assert(!o.ok && o.code === "PT409" && o.message === "idempotency_conflict", `conflict: ${JSON.stringify(o)}`);
    }
    assert(!denied.ok && denied.code === "42501", `stranger refused: ${JSON.stringify(denied)}`);

    const [w] = await snapshots(admin, [owner]);
    checkInvariants(w);
    assertEquals([w.balance, w.usage_count, w.usage_charged], [29, 1, 21]);
    const [event] = await admin<
      { id: string; user_id: string; quantity: number; entries: number; metadata: unknown }[]
    >`
      select e.id::text, e.user_id::text, e.quantity, e.metadata,
             (select count(*)::int from public.credit_ledger l where l.usage_event_id = e.id) as entries
      from public.usage_events e where e.account_id = ${owner} and e.idempotency_key = ${key}`;
    assertEquals({ ...event }, { id: results[0].usage_event_id, user_id: owner, quantity: 3, metadata, entries: 1 });
    const [strangerWallet] = await snapshots(admin, [stranger]);
    assertEquals([strangerWallet.balance, strangerWallet.usage_count], [50, 0]);
  });
});

type HoldResult = Pick<ReserveCreditsResult, "hold_id" | "amount" | "available">;
type CaptureResult = CaptureCreditsResult;

Deno.test("concurrent holds on one wallet: 20 holds of 75 on 500 grant exactly 6; capture/release races keep held <= balance", async () => {
  await withSetup(async (admin) => {
    const account = await createUser(admin);
    await grant(admin, account, 450, "purchase");

    const clients = await openClients(CONNECTIONS);
    let reserves: SqlOutcome<HoldResult>[];
    let mix: { kind: string; hold?: string; quantity?: number; outcome: SqlOutcome<unknown> }[];
    const observed: { balance: number; held: number; available: number }[] = [];
    try {
      // 15 units of 5 credits = 75 per hold.
      reserves = await runOnClients(
        clients,
        Array.from({ length: 20 }, () => (c: Sql) =>
          attempt(async () => {
            const [row] = await c<{ r: HoldResult }[]>`
              select public.reserve_credits(account_id => ${account}::uuid, action => 'test_unit5', quantity => 15) as r`;
            return row.r;
          })),
      );
      const holds = reserves.filter((o) => o.ok).map((o) => o.value);
      assertEquals(holds.length, 6, "exactly floor(500 / 75) holds");
      for (const f of reserves.filter((o) => !o.ok)) assert(isInsufficient(f, 75), `unexpected ${JSON.stringify(f)}`);
      assertEquals(holds.map((h) => h.available).sort((a, b) => b - a), [425, 350, 275, 200, 125, 50]);

      // Race, per hold: two identical captures and a release; plus consumers of 7 on the free 50.
      // Capture quantities: less than reserved (10 units = 50), or all of it (15 units = 75).
      const tasks: ((c: Sql) => Promise<(typeof mix)[number]>)[] = [];
      holds.forEach((h, i) => {
        const quantity = i % 2 === 0 ? 10 : 15;
        for (const kind of ["capture", "capture", "release"]) {
          tasks.push(async (c) => ({
            kind,
            hold: h.hold_id,
            quantity,
            outcome: await attempt(async () => {
              const [row] = kind === "capture"
                ? await c`select public.capture_credits(hold_id => ${h.hold_id}::uuid, quantity => ${quantity}::int) as r`
                : await c`select public.release_credits(hold_id => ${h.hold_id}::uuid) as r`;
              return row.r;
            }),
          }));
        }
      });
      for (let i = 0; i < 30; i++) {
        tasks.push(async (c) => ({ kind: "consume", outcome: await attempt(() => consume(c, account, "test_cost7")) }));
      }
      // An observer polls the wallet while the race runs.
      let running = true;
      const observer = (async () => {
        while (running) {
          const [w] = await clients[CONNECTIONS - 1]<{ balance: number; held: number; available: number }[]>`
            select balance::int, held::int, available::int from public.credit_balances where account_id = ${account}`;
          observed.push(w);
        }
      })();
      try {
        mix = await runOnClients(clients.slice(0, CONNECTIONS - 1), shuffle(tasks, rng(7)));
      } finally {
        running = false;
        await observer;
      }
    } finally {
      await closeAll(clients);
    }

    assert(observed.length > 0);
    for (const o of observed) {
      assert(o.held >= 0 && o.held <= o.balance && o.available >= 0, `observed ${JSON.stringify(o)}`);
    }

    let charged = 0;
    const holdStates = new Map(
      (await admin<{ id: string; status: string; credits_charged: number | null; usage_event_id: string | null }[]>`
        select id::text, status, credits_charged::int, usage_event_id::text
        from public.credit_holds where account_id = ${account}`).map((h) => [h.id, h]),
    );
    assertEquals(holdStates.size, 6, "failed reservations left no hold behind");
    for (const [id, state] of holdStates) {
      const ops = mix.filter((m) => m.hold === id);
      const captures = ops.filter((m) => m.kind === "capture");
      const release = ops.find((m) => m.kind === "release")!;
      assert(release.outcome.ok, `release never fails: ${JSON.stringify(release.outcome)}`);
      const released = (release.outcome.value as { released: number }).released;
      if (state.status === "captured") {
        const expected = captures[0].quantity === 10 ? 50 : 75;
        assertEquals(state.credits_charged, expected);
        charged += expected;
        assertEquals(released, 0, "a captured hold releases nothing");
        const originals = captures.filter((m) => m.outcome.ok && !(m.outcome.value as CaptureResult).replayed);
        assertEquals(originals.length, 1, "one capture charged");
        const first = originals[0].outcome as { ok: true; value: CaptureResult };
        assertEquals([first.value.credits_charged, first.value.released], [expected, 75 - expected]);
        for (const m of captures) {
          assert(m.outcome.ok, `the other capture replays: ${JSON.stringify(m.outcome)}`);
          assertEquals((m.outcome.value as CaptureResult).usage_event_id, state.usage_event_id);
        }
      } else {
        assertEquals(state.status, "released");
        assertEquals(released, 75);
        for (const m of captures) {
          assert(
            !m.outcome.ok && m.outcome.code === "PT410",
            `capture after release is gone: ${JSON.stringify(m.outcome)}`,
          );
        }
      }
    }
    const consumes = mix.filter((m) => m.kind === "consume");
    const consumed = consumes.filter((m) => m.outcome.ok).length;
    for (const m of consumes) {
      if (m.outcome.ok) assert((m.outcome.value as ConsumeResult).available >= 0);
      else assert(isInsufficient(m.outcome, 7), `unexpected ${JSON.stringify(m.outcome)}`);
    }
    // Consumers could only ever spend what was not held: at least the free 50 (7 calls), at most all of it.
    assert(consumed >= 7 && consumed <= 30, `consumed ${consumed}`);

    const [w] = await snapshots(admin, [account]);
    checkInvariants(w);
    assertEquals([w.held, w.open_holds], [0, 0]);
    assertEquals(w.balance, 500 - charged - 7 * consumed);
    assertEquals(w.usage_count, consumed + [...holdStates.values()].filter((h) => h.status === "captured").length);
    assert(w.min_balance_after !== null && w.min_balance_after >= 0);
  });
});

Deno.test("private.expire_credit_grants() from several connections while consumption runs: idempotent, no expired credit spent", async () => {
  await withSetup(async (admin) => {
    // Business time: lots expire at E. Phase 1 runs at E - 10 s, phase 2 at E + 1 s.
    const e = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3_600_000);
    const E = e.toISOString();
    const before = new Date(e.getTime() - 10_000).toISOString();
    const after = new Date(e.getTime() + 1_000).toISOString();

    // Group A: 50 never-expiring (signup bonus) + 100 promo expiring at E; consumed during the sweeps.
    const groupA = await createUsers(admin, 24);
    // Group B: + 60 subscription expiring at E (paid: drawn after promo on the tie) + 25 purchase never expiring,
    // and two holds; only swept (no consumers), so the shrink of its holds is fully determined.
    const groupB = await createUsers(admin, 8);
    const lots = new Map<string, { promo: string; subscription?: string }>();
    for (const id of groupA) lots.set(id, { promo: await grant(admin, id, 100, "promo", E) });
    for (const id of groupB) {
      lots.set(id, {
        promo: await grant(admin, id, 100, "promo", E),
        subscription: await grant(admin, id, 60, "subscription", E),
      });
      await grant(admin, id, 25, "purchase");
    }

    const clients = await openClients(CONNECTIONS);
    const holds = new Map<string, { short: string; long: string }>();
    let phase2: { kind: string; account?: string; outcome: SqlOutcome<unknown> }[];
    try {
      // Phase 1 (E - 10 s): 5 calls of 7 per account draw the soonest-expiring promo lot: 100 -> 65.
      await runOnClients(
        clients,
        [...groupA, ...groupB].flatMap((id) =>
          Array.from({ length: 5 }, () => (c: Sql) => atTime(c, before, (tx) => consume(tx, id, "test_cost7")))
        ),
      );
      // Group B holds (E - 10 s): 100 for an hour, then 20 expiring at E - 5 s. Held 120 of 200.
      // (The lapsed hold is the newer one, so it is the first to shrink under every reading of the rules; see
      // credits_property_test.ts for a lapsed hold older than a live one.)
      for (const id of groupB) {
        const reserve = (ttl: number, quantity: number) =>
          atTime(admin, before, async (tx) => {
            const [row] = await tx<{ r: HoldResult }[]>`
              select public.reserve_credits(account_id => ${id}::uuid, action => 'test_unit5',
                                            quantity => ${quantity}::int, ttl_seconds => ${ttl}::int) as r`;
            return row.r.hold_id;
          });
        const long = await reserve(3600, 20);
        holds.set(id, { long, short: await reserve(5, 4) });
      }

      // Phase 2 (E + 1 s): 12 sweeps start first, on 12 connections at once, then 20 calls of 7 per group A account.
      type Step = { kind: string; account?: string; outcome: SqlOutcome<unknown> };
      const sweeps = Array.from({ length: 12 }, () => async (c: Sql): Promise<Step> => ({
        kind: "sweep",
        outcome: await attempt(() =>
          atTime(c, after, async (tx) => (await tx<{ n: number }[]>`select private.expire_credit_grants() as n`)[0].n)
        ),
      }));
      const consumers = shuffle(
        groupA.flatMap((id) =>
          Array.from({ length: 20 }, () => async (c: Sql): Promise<Step> => ({
            kind: "consume",
            account: id,
            outcome: await attempt(() => atTime(c, after, (tx) => consume(tx, id, "test_cost7"))),
          }))
        ),
        rng(11),
      );
      phase2 = await runOnClients(clients, [...sweeps, ...consumers]);
    } finally {
      await closeAll(clients);
    }

    for (const s of phase2.filter((m) => m.kind === "sweep")) {
      assert(s.outcome.ok, `sweep: ${JSON.stringify(s.outcome)}`);
    }
    for (const id of groupA) {
      const mine = phase2.filter((m) => m.account === id);
      for (const m of mine) {
        if (!m.outcome.ok) assert(isInsufficient(m.outcome, 7), `unexpected ${JSON.stringify(m.outcome)}`);
      }
      // Only the 50 never-expiring credits were spendable after E: 7 calls, not 16.
      assertEquals(mine.filter((m) => m.outcome.ok).length, 7, `successes after expiry on ${id}`);
    }

    // A last sweep at E + 1 s changes nothing of ours (idempotent).
    const ours = [...groupA, ...groupB];
    const ledgerCount = async () =>
      (await admin<{ n: number }[]>`
        select count(*)::int as n from public.credit_ledger
        where account_id in (select x::uuid from json_array_elements_text(${JSON.stringify(ours)}::text::json) x)`)[0]
        .n;
    const countBefore = await ledgerCount();
    await atTime(admin, after, (tx) => tx`select private.expire_credit_grants()`);
    assertEquals(await ledgerCount(), countBefore, "a repeated sweep writes nothing");

    // Exactly one expire entry per expiring lot, for exactly what was left in it: nothing of it was spent after E.
    const expires = await admin<{ grant_id: string; entries: number; total: number }[]>`
      select grant_id::text, count(*)::int as entries, sum(delta)::int as total from public.credit_ledger
      where reason = 'expire'
        and account_id in (select x::uuid from json_array_elements_text(${JSON.stringify(ours)}::text::json) x)
      group by grant_id`;
    const byGrant = new Map(expires.map((x) => [x.grant_id, x]));
    assertEquals(expires.length, groupA.length + 2 * groupB.length);
    for (const [, l] of lots) {
      assertEquals(byGrant.get(l.promo), { grant_id: l.promo, entries: 1, total: -65 });
      if (l.subscription) {
        assertEquals(byGrant.get(l.subscription), { grant_id: l.subscription, entries: 1, total: -60 });
      }
    }

    const wallets = await snapshots(admin, ours, after);
    for (const w of wallets) checkInvariants(w);
    for (const w of wallets.filter((w) => groupA.includes(w.account_id))) {
      assertEquals([w.balance, w.held], [50 - 49, 0]);
      assertEquals(w.usage_count, 5 + 7);
    }
    // Group B: 200 - 65 - 60 = 75 left; held 120 > 75, so holds gave back 45 newest-first (the lapsed 20 -> 0,
    // then 100 -> 75), and the job released the lapsed one. Held 75, available 0.
    for (const w of wallets.filter((w) => groupB.includes(w.account_id))) {
      assertEquals([w.balance, w.held, w.available], [75, 75, 0]);
      const h = holds.get(w.account_id)!;
      const rows = await admin<{ id: string; status: string; amount: number }[]>`
        select id::text, status, amount::int from public.credit_holds where account_id = ${w.account_id}`;
      const byId = new Map(rows.map((r) => [r.id, r]));
      assertEquals({ ...byId.get(h.long) }, { id: h.long, status: "held", amount: 75 });
      assertEquals(byId.get(h.short)?.status, "expired");
    }
  });
});
