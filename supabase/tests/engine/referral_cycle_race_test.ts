/**
 * Story: Ana and Ben redeem each other's referral codes at the same moment, hoping both
 * get paid. docs/credits.md#referrals: no cycles, also when two users redeem each other's codes at once.
 *
 * Ana's redemption runs in an open transaction; Ben's starts while it is still open, and Ana
 * commits only once Ben's call has either finished or is waiting on a lock. Exactly one of
 * the two may succeed; the other is refused as a referral_cycle, and one reward is paid.
 */
import { assert, assertEquals } from "../../functions/tests/_support/assert.ts";
import {
  attempt,
  closeAll,
  connect,
  createUser,
  openClients,
  type Sql,
  type Tx,
} from "../../functions/tests/_support/wallet.ts";
import { userClaims } from "../../functions/tests/_support/tokens.ts";

async function actAs(tx: Tx, userId: string): Promise<void> {
  await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${
    JSON.stringify(userClaims(userId))
  }, true)`;
}

async function redeem(tx: Tx, code: string): Promise<unknown> {
  const [row] = await tx<{ r: unknown }[]>`select public.redeem_referral_code(${code}) as r`;
  return row.r;
}

async function codeOf(sql: Sql, userId: string): Promise<string> {
  const [row] = await sql<
    { code: string }[]
  >`select referral_code as code from public.profiles where id = ${userId}::uuid`;
  return row.code;
}

/** Resolves once the backend `pid` waits on a lock, or `done` settles, whichever is first. */
async function blockedOrDone(observer: Sql, pid: number, done: Promise<unknown>): Promise<void> {
  let settled = false;
  done.then(() => settled = true, () => settled = true);
  for (let i = 0; i < 400 && !settled; i++) {
    const [row] = await observer<{ waiting: boolean }[]>`
      select coalesce(bool_or(wait_event_type = 'Lock'), false) as waiting from pg_stat_activity where pid = ${pid}`;
    if (row.waiting) return;
    await new Promise((r) => setTimeout(r, 25));
  }
}

Deno.test("two users redeeming each other's codes at once: exactly one succeeds, the other is a referral_cycle", async () => {
  const observer = connect(1);
  const [anaClient, benClient] = await openClients(2);
  try {
    const ana = await createUser(observer);
    const ben = await createUser(observer);
    const anaCode = await codeOf(observer, ana);
    const benCode = await codeOf(observer, ben);
    const [{ pid: benPid }] = await benClient<{ pid: number }[]>`select pg_backend_pid() as pid`;

    let releaseAna!: () => void;
    const anaMayCommit = new Promise<void>((r) => releaseAna = r);
    let anaRedeemed!: () => void;
    const anaHasRedeemed = new Promise<void>((r) => anaRedeemed = r);

    // Ana redeems Ben's code and keeps her transaction open.
    const anaOutcome = attempt(() =>
      anaClient.begin(async (tx) => {
        await actAs(tx, ana);
        try {
          return await redeem(tx, benCode);
        } finally {
          anaRedeemed();
          await anaMayCommit;
        }
      })
    );
    await anaHasRedeemed;

    // Ben redeems Ana's code while Ana's transaction is still open.
    const benOutcome = attempt(() =>
      benClient.begin(async (tx) => {
        await actAs(tx, ben);
        return await redeem(tx, anaCode);
      })
    );
    await blockedOrDone(observer, benPid, benOutcome);
    releaseAna();

    const outcomes = [await anaOutcome, await benOutcome];
    const succeeded = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o) => !o.ok);
    assertEquals(succeeded.length, 1, `exactly one redemption succeeds: ${JSON.stringify(outcomes)}`);
    assertEquals(refused.length, 1, "the other is refused");
    const failure = refused[0];
    assert(!failure.ok);
    assertEquals([failure.code, failure.message], ["22023", "referral_cycle"], "as a referral cycle");

    const referrals = await observer<{ referrer_id: string; referee_id: string }[]>`
      select referrer_id, referee_id from public.referrals
      where referee_id in (${ana}::uuid, ${ben}::uuid)`;
    assertEquals(referrals.length, 1, "one referral is recorded");
    const rewards = await observer<{ n: number }[]>`
      select count(*)::int as n from public.credit_grants
      where source = 'referral' and account_id in (${ana}::uuid, ${ben}::uuid)`;
    assertEquals(rewards[0].n, 1, "and one reward is paid");
  } finally {
    await closeAll([anaClient, benClient, observer]);
  }
});
