/**
 * Story: an account asks "how much did we use, by what, per hour, day or month"
 * (docs/analytics.md#usage_summary) while its servers keep consuming and the folder keeps folding.
 *
 * usage_summary answers from the hourly rollup plus the events not folded yet. It
 * must always equal a plain `group by` over usage_events:
 *   1. a property test: random events (actions of two categories, users, API keys,
 *      times on and around hour, day and month boundaries), folded at random points
 *      or not at all, asked with random ranges, buckets and groupings;
 *   2. a transaction that wrote an event before a fold and commits after it: its
 *      event is folded by a later fold, once (the watermark is the oldest running
 *      transaction, not a time);
 *   3. 12 connections consuming while a folder folds: at every moment the summary
 *      equals the group by (both read in one statement, one snapshot), and after a
 *      last fold the rollup alone holds every event, none twice, none lost.
 * Events are written as postgres (the trusted server path); business time is the
 * events' created_at.
 */
import fc from "fast-check";
import { assert, assertEquals } from "../../functions/tests/_support/assert.ts";
import {
  closeAll,
  connect,
  createUsers,
  grant,
  openClients,
  raiseRateLimits,
  rng,
  runOnClients,
  type Sql,
  testSeed,
} from "../../functions/tests/_support/wallet.ts";

/** Test actions and their categories: two share a category. */
const ACTIONS: [string, string][] = [["ua_alpha", "ua_one"], ["ua_beta", "ua_one"], ["ua_gamma", "ua_two"]];
const BUCKETS = ["hour", "day", "month"] as const;
const GROUPINGS = ["action", "category", "api_key", "user"] as const;
/** 31 Jan 2031 22:00 UTC: times around it cross hours, a day and a month. */
const BASE = Date.UTC(2031, 0, 31, 22, 0, 0);
const MINUTE = 60_000;

async function ensureActions(sql: Sql): Promise<void> {
  for (const [key, category] of ACTIONS) {
    await sql`
      insert into public.billable_actions (key, name, category, credits, unit_size, active)
      values (${key}, ${"Test " + key}, ${category}, 1, 1, true)
      on conflict (key) do update set category = excluded.category, active = true`;
  }
}

async function fold(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: string }[]>`select private.fold_usage_events()::text as n`;
  return Number(row.n);
}

/**
 * The summary and the plain group by over usage_events, read in ONE statement (one
 * snapshot), each as sorted "bucket|key|quantity|credits|events" lines.
 */
async function summaryAndGroupBy(
  sql: Sql,
  accountId: string,
  since: string,
  until: string,
  bucket: string,
  groupBy: string,
): Promise<{ summary: string[]; groupBy: string[] }> {
  const [row] = await sql<{ summary: string[] | null; raw: string[] | null }[]>`
    select
      (select array_agg(to_char(s.bucket_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || '|' || coalesce(s.key, '-')
                        || '|' || s.quantity || '|' || s.credits || '|' || s.events)
       from public.usage_summary(${accountId}::uuid, ${since}::timestamptz, ${until}::timestamptz, ${bucket}, ${groupBy}) s)
        as summary,
      (select array_agg(l.line) from (
       select to_char(g.b at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || '|' || coalesce(g.k, '-') || '|'
              || sum(g.quantity) || '|' || sum(g.credits_charged) || '|' || count(*) as line
       from (select date_trunc(${bucket}, e.created_at, 'UTC') as b,
                    case ${groupBy} when 'action' then e.action when 'category' then a.category
                                    when 'api_key' then e.api_key_id::text else e.user_id::text end as k,
                    e.quantity, e.credits_charged
             from public.usage_events e left join public.billable_actions a on a.key = e.action
             where e.account_id = ${accountId}::uuid and e.created_at >= ${since}::timestamptz
               and e.created_at < ${until}::timestamptz) g
       group by g.b, g.k) l)
        as raw`;
  return { summary: (row.summary ?? []).sort(), groupBy: (row.raw ?? []).sort() };
}

/** The account's rollup totals and its raw totals (events, quantity, credits). */
async function rollupVersusRaw(sql: Sql, accountIds: string[]): Promise<{ rollup: string; raw: string }> {
  const [row] = await sql<{ rollup: string; raw: string }[]>`
    select
      (select coalesce(string_agg(x.account_id || ':' || x.n || '/' || x.q || '/' || x.c, ' ' order by x.account_id), '')
       from (select r.account_id::text, sum(r.events) as n, sum(r.quantity) as q, sum(r.credits) as c
             from private.usage_rollup r where r.account_id = any (${accountIds}::uuid[]) group by 1) x) as rollup,
      (select coalesce(string_agg(x.account_id || ':' || x.n || '/' || x.q || '/' || x.c, ' ' order by x.account_id), '')
       from (select e.account_id::text, count(*) as n, sum(e.quantity) as q, sum(e.credits_charged) as c
             from public.usage_events e where e.account_id = any (${accountIds}::uuid[]) group by 1) x) as raw`;
  return row;
}

// ---------------------------------------------------------------------------
// 1. The property
// ---------------------------------------------------------------------------
const iso = (ms: number) => new Date(ms).toISOString();
/** Quarter hours from 22:00 to 02:00, nudged onto, just before or just after the boundary. */
const arbTime = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 16 }), fc.constantFrom(0, -1, 1, 7.5 * MINUTE, -0.001))
    .map(([q, nudge]) => BASE + q * 15 * MINUTE + nudge),
  // and now and then another month entirely
  fc.constantFrom(Date.UTC(2031, 2, 15, 12, 0, 0), Date.UTC(2030, 11, 31, 23, 59, 59, 999)),
);
const arbEvent = fc.record({
  action: fc.integer({ min: 0, max: ACTIONS.length - 1 }),
  user: fc.integer({ min: 0, max: 2 }), // 2: no user
  apiKey: fc.integer({ min: 0, max: 2 }), // 2: no key
  at: arbTime,
  quantity: fc.integer({ min: 1, max: 1000 }),
  credits: fc.integer({ min: 0, max: 50 }),
});
const arbCase = fc.record({
  events: fc.array(arbEvent, { minLength: 1, maxLength: 25 }),
  /** After how many events a fold runs (up to 3 folds). */
  folds: fc.uniqueArray(fc.integer({ min: 0, max: 12 }), { maxLength: 3 }),
  range: fc.oneof(
    fc.constant<[number, number]>([Date.UTC(2030, 0, 1), Date.UTC(2032, 0, 1)]),
    fc.tuple(arbTime, arbTime).filter(([a, b]) => a !== b).map(([a, b]) =>
      [Math.min(a, b), Math.max(a, b)] as [number, number]
    ),
  ),
  bucket: fc.constantFrom(...BUCKETS),
  groupBy: fc.constantFrom(...GROUPINGS),
});

Deno.test("usage_summary equals a group by over the raw events, folded or not, for random usage", async () => {
  const sql = connect(1);
  const coverage = { folded: 0, unfolded: 0, both: 0 };
  try {
    await ensureActions(sql);
    const apiKeys = [crypto.randomUUID(), crypto.randomUUID(), null];
    await fc.assert(
      fc.asyncProperty(arbCase, async (c) => {
        const [accountId, otherUser] = await createUsers(sql, 2);
        const users = [accountId, otherUser, null];
        const foldAfter = new Set(c.folds);
        for (let i = 0; i <= c.events.length; i++) {
          if (foldAfter.has(i)) await fold(sql);
          const e = c.events[i];
          if (!e) continue;
          // One committed transaction per event, as consumption writes them.
          await sql`
            insert into public.usage_events (account_id, user_id, action, quantity, credits_charged, api_key_id, created_at)
            values (${accountId}::uuid, ${users[e.user]}::uuid, ${ACTIONS[e.action][0]}, ${e.quantity}, ${e.credits},
                    ${apiKeys[e.apiKey]}::uuid, ${iso(e.at)}::timestamptz)`;
        }
        const [counts] = await sql<{ folded: number; total: number }[]>`
          select coalesce((select sum(r.events) from private.usage_rollup r where r.account_id = ${accountId}::uuid), 0)::int as folded,
                 (select count(*) from public.usage_events e where e.account_id = ${accountId}::uuid)::int as total`;
        if (counts.folded > 0 && counts.folded < counts.total) coverage.both++;
        else if (counts.folded > 0) coverage.folded++;
        else coverage.unfolded++;

        const got = await summaryAndGroupBy(sql, accountId, iso(c.range[0]), iso(c.range[1]), c.bucket, c.groupBy);
        assertEquals(
          got.summary,
          got.groupBy,
          `usage_summary(${c.bucket}, ${c.groupBy}) over ${iso(c.range[0])}..${iso(c.range[1])}`,
        );
      }),
      { numRuns: 40 },
    );
    console.log(`accounts all folded ${coverage.folded}, partly ${coverage.both}, not at all ${coverage.unfolded}`);
    assert(
      coverage.both > 0 && coverage.folded > 0 && coverage.unfolded > 0,
      "the runs reached folded, partly folded and unfolded accounts",
    );
  } finally {
    await sql.end({ timeout: 5 });
  }
});

// ---------------------------------------------------------------------------
// 2. A transaction that started before a fold and commits after it
// ---------------------------------------------------------------------------
Deno.test("an event whose transaction commits after a fold is folded by a later fold, once", async () => {
  const [writer, folder] = await openClients(2);
  try {
    await ensureActions(folder);
    const [accountId] = await createUsers(folder, 1);
    let releaseWriter = () => {};
    const held = new Promise<void>((resolve) => (releaseWriter = resolve));
    let written = () => {};
    const wrote = new Promise<void>((resolve) => (written = resolve));
    // The slow transaction writes its event (it now has the older transaction id) and waits.
    const slow = writer.begin(async (tx) => {
      await tx`insert into public.usage_events (account_id, action, quantity, credits_charged)
               values (${accountId}::uuid, 'ua_alpha', 5, 5)`;
      written();
      await held;
    });
    await wrote;
    // A later transaction's event commits first; then folds run while the slow one is open.
    await folder`insert into public.usage_events (account_id, action, quantity, credits_charged)
                 values (${accountId}::uuid, 'ua_beta', 7, 7)`;
    await fold(folder);
    await fold(folder);
    let split = await rollupVersusRaw(folder, [accountId]);
    assertEquals(split.rollup, "", "neither event is folded while an older transaction is still running");
    let now = await summaryAndGroupBy(folder, accountId, "2000-01-01", "2100-01-01", "month", "action");
    assertEquals(now.summary, now.groupBy, "and the summary still counts the committed one, from the tail");

    releaseWriter();
    await slow;
    await fold(folder);
    split = await rollupVersusRaw(folder, [accountId]);
    assertEquals(split.rollup, `${accountId}:2/12/12`, "after the slow commit, the next fold folds both events");
    assertEquals(split.rollup, split.raw, "the rollup equals the raw events");
    await fold(folder);
    assertEquals((await rollupVersusRaw(folder, [accountId])).rollup, split.raw, "folding again counts nothing twice");
    now = await summaryAndGroupBy(folder, accountId, "2000-01-01", "2100-01-01", "day", "category");
    assertEquals(now.summary, now.groupBy, "the summary equals the group by");
  } finally {
    await closeAll([writer, folder]);
  }
});

// ---------------------------------------------------------------------------
// 3. Consumption while folding
// ---------------------------------------------------------------------------
Deno.test("12 connections consume while a folder folds: the summary stays exact and the rollup ends whole", async () => {
  const seed = testSeed("usage analytics concurrency");
  const random = rng(seed);
  const admin = connect(1);
  const restore = await raiseRateLimits(admin);
  const clients = await openClients(12);
  const [folder, observer] = await openClients(2);
  try {
    await ensureActions(admin);
    const accounts = await createUsers(admin, 4);
    for (const a of accounts) await grant(admin, a, 1_000_000, "purchase");
    const apiKey = crypto.randomUUID();

    const tasks = Array.from({ length: 480 }, () => {
      const account = accounts[Math.floor(random() * accounts.length)];
      const action = ACTIONS[Math.floor(random() * ACTIONS.length)][0];
      const quantity = 1 + Math.floor(random() * 9);
      const viaKey = random() < 0.5;
      return (db: Sql) =>
        db.begin(async (tx) => {
          if (viaKey) await tx`select set_config('ledgerbase.api_key_id', ${apiKey}, true)`;
          await tx`select public.consume_credits(${account}::uuid, ${action}, ${quantity}::int)`;
        });
    });

    let consuming = true;
    let folds = 0;
    let checks = 0;
    const folding = (async () => {
      while (consuming) {
        await fold(folder);
        folds++;
      }
    })();
    const observing = (async () => {
      while (consuming) {
        const account = accounts[checks % accounts.length];
        const got = await summaryAndGroupBy(
          observer,
          account,
          "2000-01-01",
          "2100-01-01",
          "hour",
          checks % 2 ? "api_key" : "action",
        );
        assertEquals(got.summary, got.groupBy, `summary during consumption (check ${checks})`);
        checks++;
      }
    })();
    await runOnClients(clients, tasks);
    consuming = false;
    await Promise.all([folding, observing]);
    console.log(`${folds} folds and ${checks} exactness checks during 480 consumptions`);
    assert(folds >= 2 && checks >= 2, "folds and checks ran during the consumption");

    await fold(folder);
    const split = await rollupVersusRaw(folder, accounts);
    assertEquals(
      split.rollup,
      split.raw,
      "after a last fold the rollup alone holds every event: none lost, none twice",
    );
    const [total] = await folder<{ n: number }[]>`
      select count(*)::int as n from public.usage_events where account_id = any (${accounts}::uuid[])`;
    assertEquals(total.n, 480, "every consumption wrote one event");
    for (const account of accounts) {
      const got = await summaryAndGroupBy(folder, account, "2000-01-01", "2100-01-01", "day", "category");
      assertEquals(got.summary, got.groupBy, "and the summary equals the group by");
    }
  } finally {
    await restore();
    await closeAll([...clients, folder, observer]);
    await admin.end({ timeout: 5 });
  }
});
