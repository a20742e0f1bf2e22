/**
 * Story: a consumption queues behind a slow transaction that holds the wallet
 * (a billing grant, say). docs/credits.md#consuming: expiry and rate limits are judged by the
 * clock read once the wallet is locked, so a call that waited on the lock
 * never spends a lot that expired meanwhile.
 *
 * These tests use the real clock (no `ledgerbase.now`): a lot expires while the
 * consumption waits, and the tests check which lot paid and what the rate limit
 * remembers, never how long anything took.
 */
import { assert, assertEquals } from "../../functions/tests/_support/assert.ts";
import {
  attempt,
  checkInvariants,
  connect,
  createUser,
  ensureAction,
  grant,
  snapshots,
  type Sql,
} from "../../functions/tests/_support/wallet.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function consume(db: Sql, accountId: string, action: string) {
  const [row] = await db<{ r: { credits_charged: number; balance: number } }[]>`
    select public.consume_credits(account_id => ${accountId}::uuid, action => ${action}) as r`;
  return row.r;
}

/** Waits until the backend `pid` is queued on a lock (the wallet row). */
async function untilWaitingOnLock(admin: Sql, pid: number): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const [row] = await admin<{ waiting: boolean }[]>`
      select coalesce(wait_event_type = 'Lock', false) as waiting from pg_stat_activity where pid = ${pid}`;
    if (row?.waiting) return;
    await sleep(10);
  }
  throw new Error(`backend ${pid} never waited on a lock`);
}

/**
 * Runs `consume` on its own connection while another transaction holds the
 * wallet (it grants `holderGrant` credits, so it really changes the row), and
 * commits that transaction only at `releaseAt` (epoch ms).
 */
async function consumeBehindHolder(
  admin: Sql,
  accountId: string,
  action: string,
  releaseAt: number,
  beforeRelease: () => void,
) {
  const holder = connect(1);
  const spender = connect(1);
  try {
    const [{ pid }] = await spender<{ pid: number }[]>`select pg_backend_pid() as pid`;
    let spent: Promise<unknown> | null = null;
    await holder.begin(async (tx) => {
      await grant(tx, accountId, 5, "purchase");
      spent = attempt(() => consume(spender, accountId, action));
      await untilWaitingOnLock(admin, pid);
      beforeRelease();
      await sleep(Math.max(0, releaseAt - Date.now()));
    });
    return await spent!;
  } finally {
    await holder.end();
    await spender.end();
  }
}

Deno.test("a consumption that waited for the wallet does not spend a lot that expired while it waited", async () => {
  const admin = connect(2);
  try {
    await ensureAction(admin, "test_clock3", 3);
    const account = await createUser(admin); // 50 signup_bonus credits, never expiring
    // 10 promo credits that expire in 3 s: the soonest-expiring lot, drawn first while it lasts.
    const expiresAt = Date.now() + 3000;
    await grant(admin, account, 10, "promo", new Date(expiresAt).toISOString());

    let queuedBeforeExpiry = false;
    const outcome = await consumeBehindHolder(admin, account, "test_clock3", expiresAt + 500, () => {
      queuedBeforeExpiry = Date.now() < expiresAt;
    });
    // The scenario happened: the call was queued on the wallet before the promo expired.
    assert(queuedBeforeExpiry, "the consumption was queued on the wallet before the promo lot expired");
    assert((outcome as { ok: boolean }).ok, `the consumption succeeded: ${JSON.stringify(outcome)}`);

    // It got the lock after the expiry: the promo lot is expired (10 credits gone, an
    // expire entry), and the 3 credits came out of the never-expiring signup bonus.
    const lots = await admin<{ source: string; remaining: number }[]>`
      select source, remaining::int as remaining from public.credit_grants where account_id = ${account} order by source`;
    assertEquals([...lots], [
      { source: "promo", remaining: 0 },
      { source: "purchase", remaining: 5 },
      { source: "signup_bonus", remaining: 47 },
    ]);
    const entries = await admin<{ reason: string; delta: number }[]>`
      select reason, delta::int as delta from public.credit_ledger where account_id = ${account} order by id`;
    assertEquals(entries.map((e) => `${e.reason} ${e.delta}`), [
      "signup_bonus 50",
      "promo 10",
      "purchase 5",
      "expire -10",
      "consume -3",
    ]);
    const [after] = await snapshots(admin, [account]);
    checkInvariants(after);
    assertEquals(after.balance, 52);
  } finally {
    await admin.end({ timeout: 5 });
  }
});

Deno.test("a consumption that waited for the wallet is rate-limited from the time it got the lock", async () => {
  const admin = connect(2);
  const [saved] = await admin<{ capacity: number; refill: string; scope: string }[]>`
    select capacity, refill_per_second::text as refill, scope from private.rate_limit_policies where name = 'consume_credits'`;
  try {
    // One call per second per account, a burst of one.
    await admin`update private.rate_limit_policies set capacity = 1, refill_per_second = 1, scope = 'account'
                where name = 'consume_credits'`;
    await ensureAction(admin, "test_clock1", 1);
    const account = await createUser(admin);

    // The first call queues for 2 s behind the holder, so it is admitted when it gets the
    // lock (T); the bucket is then empty until T + 1 s.
    const first = await consumeBehindHolder(admin, account, "test_clock1", Date.now() + 2000, () => {});
    assert((first as { ok: boolean }).ok, `the first call succeeded: ${JSON.stringify(first)}`);
    // A second call right after it is within the same second: refused.
    const second = await attempt(() => consume(admin, account, "test_clock1"));
    assertEquals(second.ok ? "ok" : `${second.code} ${second.message}`, "PT429 rate_limited");
    // A second later there is room again.
    await sleep(1100);
    const third = await attempt(() => consume(admin, account, "test_clock1"));
    assert(third.ok, `a call a second later is admitted: ${JSON.stringify(third)}`);
  } finally {
    await admin`update private.rate_limit_policies
                set capacity = ${saved.capacity}, refill_per_second = ${saved.refill}::numeric, scope = ${saved.scope}
                where name = 'consume_credits'`;
    await admin.end({ timeout: 5 });
  }
});
