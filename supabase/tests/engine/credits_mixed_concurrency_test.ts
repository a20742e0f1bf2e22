/**
 * Story: a busy product on a real clock. Servers consume, jobs reserve and then
 * capture or release, billing grants credits (some of which expire within the
 * second), and the expiry job runs, all at once on 32 connections — on one
 * wallet, and spread over many. docs/credits.md#invariants: no overdraft under any concurrency;
 * balance = sum of ledger deltas = sum of unexpired remaining; held = open holds
 * <= balance; nobody spends an expired credit; a capture never exceeds its hold.
 *
 * Calls go through the trusted server path. The outcomes are random (which call
 * wins a race); the tests check only what must hold whatever the interleaving.
 */
import { assert, assertEquals } from "../../functions/tests/_support/assert.ts";
import {
  attempt,
  checkInvariants,
  closeAll,
  createUsers,
  openClients,
  rng,
  runOnClients,
  snapshots,
  type Sql,
  testSeed,
  withEngineSetup,
} from "../../functions/tests/_support/wallet.ts";

const CONNECTIONS = 32;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Op = "consume" | "hold-capture" | "hold-release" | "grant" | "expire";
interface Done {
  op: Op;
  account: string;
  ok: boolean;
  code?: string;
  /** credits charged by a consume or a capture that succeeded */
  charged: number;
}

const EXPECTED_REFUSALS = new Set(["PT402"]);

async function one(c: Sql, op: Op, account: string, random: () => number): Promise<Done> {
  const done = (ok: boolean, charged = 0, code?: string): Done => ({ op, account, ok, charged, code });
  switch (op) {
    case "consume": {
      const o = await attempt(async () =>
        (await c<{ r: { credits_charged: number } }[]>`
          select public.consume_credits(${account}::uuid, 'mix_cost3', 1) as r`)[0].r
      );
      return o.ok ? done(true, o.value.credits_charged) : done(false, 0, o.code);
    }
    case "hold-capture":
    case "hold-release": {
      const held = await attempt(async () =>
        (await c<{ r: { hold_id: string } }[]>`
          select public.reserve_credits(${account}::uuid, 'mix_unit5', 2) as r`)[0].r
      );
      if (!held.ok) return done(false, 0, held.code);
      await sleep(random() * 20);
      if (op === "hold-release") {
        const o = await attempt(() => c`select public.release_credits(${held.value.hold_id}::uuid)`);
        return o.ok ? done(true) : done(false, 0, o.code);
      }
      const units = 1 + Math.floor(random() * 2);
      const o = await attempt(async () =>
        (await c<{ r: { credits_charged: number } }[]>`
          select public.capture_credits(${held.value.hold_id}::uuid, ${units}::int) as r`)[0].r
      );
      // A capture is gone (PT410) only if the credits behind it expired and the hold shrank away.
      return o.ok ? done(true, o.value.credits_charged) : done(false, 0, o.code);
    }
    case "grant": {
      // Half of the grants expire within the run (the clock is the database's).
      const seconds = random() < 0.5 ? 0.05 + random() * 0.6 : null;
      await c`
        select private.grant_credits(${account}::uuid, ${5 + Math.floor(random() * 20)}::bigint,
                                     ${random() < 0.5 ? "promo" : "purchase"},
                                     clock_timestamp() + make_interval(secs => ${seconds}::float8))`;
      return done(true);
    }
    case "expire": {
      await c`select private.expire_credit_grants()`;
      return done(true);
    }
  }
}

function pick(random: () => number): Op {
  const x = random();
  return x < 0.45 ? "consume" : x < 0.6 ? "hold-capture" : x < 0.7 ? "hold-release" : x < 0.9 ? "grant" : "expire";
}

async function mixedRun(label: string, accounts: number, tasks: number) {
  await withEngineSetup({ mix_cost3: 3, mix_unit5: 5 }, async (admin) => {
    const random = rng(testSeed(label));
    const ids = await createUsers(admin, accounts); // 50 never-expiring credits each
    // Lots that expire while the run goes on, on every wallet.
    await admin`
      select private.grant_credits(a.id, 30, 'promo', clock_timestamp() + make_interval(secs => s.seconds))
      from unnest(${ids}::uuid[]) as a(id), unnest(array[0.1, 0.3, 0.7]::float8[]) as s(seconds)`;
    const clients = await openClients(CONNECTIONS);
    let results: Done[];
    try {
      results = await runOnClients(
        clients,
        Array.from({ length: tasks }, () => {
          const op = pick(random);
          const account = ids[Math.floor(random() * ids.length)];
          const r = rng(Math.floor(random() * 2 ** 31));
          return (c: Sql) => one(c, op, account, r);
        }),
      );
    } finally {
      await closeAll(clients);
    }

    // Every refusal is one the rules allow: too few credits, or a hold whose credits expired under it.
    for (const r of results.filter((r) => !r.ok)) {
      assert(
        EXPECTED_REFUSALS.has(r.code ?? "") || (r.op === "hold-capture" && r.code === "PT410"),
        `${label}: unexpected refusal ${JSON.stringify(r)}`,
      );
    }
    assert(results.some((r) => r.op === "consume" && r.ok), `${label}: some consumption succeeded`);
    assert(results.some((r) => r.op === "hold-capture" && r.ok), `${label}: some capture succeeded`);

    // Let the last lots expire, sweep once, and check every wallet.
    await sleep(800);
    await admin`select private.expire_credit_grants()`;
    const after = await snapshots(admin, ids);
    for (const w of after) {
      checkInvariants(w, `${label} ${w.account_id}`);
      assert(w.min_balance_after === null || w.min_balance_after >= 0, `${label}: never below zero`);
      // Every charge that succeeded is one usage event, and nothing else charged.
      const mine = results.filter((r) => r.account === w.account_id && r.ok && r.charged > 0);
      assertEquals(w.usage_charged, mine.reduce((s, r) => s + r.charged, 0), `${label}: charges = usage events`);
    }
    // No capture charged more than its hold: 2 units of 5 credits at most.
    const [{ over }] = await admin<{ over: number }[]>`
      select count(*)::int as over from public.credit_holds
      where account_id = any(${ids}::uuid[]) and status = 'captured' and credits_charged > 10`;
    assertEquals(over, 0);
    // Expired lots: each was expired once, for what was left in it, and nothing remains in them.
    const [{ twice }] = await admin<{ twice: number }[]>`
      select count(*)::int as twice from (
        select grant_id from public.credit_ledger
        where account_id = any(${ids}::uuid[]) and reason = 'expire' group by grant_id having count(*) > 1) x`;
    assertEquals(twice, 0, "no lot expired twice");
  });
}

Deno.test("32 connections on ONE wallet: consume, reserve/capture/release, grants and expiry at once keep every invariant", async () => {
  await mixedRun("mixed one wallet", 1, 400);
});

Deno.test("32 connections over 40 wallets: consume, reserve/capture/release, grants and expiry at once keep every invariant", async () => {
  await mixedRun("mixed many wallets", 40, 600);
});
