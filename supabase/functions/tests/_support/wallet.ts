/**
 * Test support for the credit engine: direct database clients, fresh users
 * (the signup trigger creates profile, personal account, wallet and the
 * 50-credit signup bonus), test-only billable actions, SQL error capture and
 * the wallet invariants (docs/credits.md#invariants) read back from the database.
 *
 * Everything here talks to Postgres as `postgres` (the trusted server path of
 * the credit functions); `asUserTx` switches a transaction to a signed-in user
 * the way PostgREST and the edge functions do.
 */
import postgres from "postgres";
import { sslFor } from "../../_shared/db.ts";
import { assert, assertEquals } from "./assert.ts";
import { TEST_DB_URL, userClaims } from "./tokens.ts";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

/** A client on the test database. `max: 1` gives one dedicated connection. */
export function connect(max = 1): Sql {
  const ssl = sslFor(TEST_DB_URL);
  return postgres(TEST_DB_URL, {
    max,
    prepare: false,
    idle_timeout: 10,
    connect_timeout: 30,
    onnotice: () => {},
    connection: { application_name: "ledgerbase-credits-test" },
    ...(ssl === undefined ? {} : { ssl }),
  });
}

/** `n` single-connection clients, each already connected (so work starts together). */
export async function openClients(n: number): Promise<Sql[]> {
  const clients = Array.from({ length: n }, () => connect(1));
  await Promise.all(clients.map((c) => c`select 1`));
  return clients;
}

export async function closeAll(clients: Sql[]): Promise<void> {
  await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
}

/** What a failed SQL call reported: SQLSTATE, message, detail. */
export interface SqlFailure {
  ok: false;
  code: string;
  message: string;
  detail?: string;
}
export type SqlOutcome<T> = { ok: true; value: T } | SqlFailure;

/** Runs `fn`, turning a Postgres error into a value (other errors are rethrown). */
export async function attempt<T>(fn: () => Promise<T>): Promise<SqlOutcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof postgres.PostgresError) {
      return { ok: false, code: e.code, message: e.message, detail: e.detail };
    }
    throw e;
  }
}

/**
 * Creates `n` users through auth.users (the signup trigger runs) and returns
 * their ids; each id is also the id of the user's personal account.
 */
export async function createUsers(sql: Sql, n: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                            confirmation_token, recovery_token, email_change_token_new, email_change,
                            raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
    select '00000000-0000-0000-0000-000000000000', u.id, 'authenticated', 'authenticated',
           'credits-' || u.id || '@example.test', '', now(), '', '', '', '',
           '{"provider": "email", "providers": ["email"]}'::jsonb, '{}'::jsonb, now(), now(), false
    from (select gen_random_uuid() as id from generate_series(1, ${n}::int)) u
    returning id`;
  return rows.map((r) => r.id);
}

export async function createUser(sql: Sql): Promise<string> {
  const [id] = await createUsers(sql, 1);
  return id;
}

/** Creates (or resets) a test-only billable action. */
export async function ensureAction(sql: Sql, key: string, credits: number, unitSize = 1): Promise<void> {
  await sql`
    insert into public.billable_actions (key, name, category, credits, unit_size, active)
    values (${key}, ${"Test " + key}, 'test', ${credits}, ${unitSize}, true)
    on conflict (key) do update set credits = excluded.credits, unit_size = excluded.unit_size, active = true`;
}

/**
 * Raises every rate-limit policy far out of the way (as bench/setup.sql does)
 * and returns a function that restores the previous values, so other test
 * files still see the real policies.
 *
 * The burst window is capacity / refill = 1000 s. A window of 1 s (capacity =
 * refill = 1e6) is not enough: check_rate_limit reads the clock before it waits
 * for the bucket's row lock, so a call queued for more than the window behind
 * 100+ calls on the same account is refused (PT429) although the bucket has room.
 */
export async function raiseRateLimits(sql: Sql): Promise<() => Promise<void>> {
  const saved = await sql<{ name: string; capacity: number; refill: string }[]>`
    select name, capacity, refill_per_second::text as refill from private.rate_limit_policies`;
  await sql`update private.rate_limit_policies set capacity = 1000000000, refill_per_second = 1000000`;
  return async () => {
    await sql`
      update private.rate_limit_policies p set capacity = s.capacity, refill_per_second = s.refill::numeric
      from json_to_recordset(${JSON.stringify(saved)}::text::json) as s(name text, capacity int, refill text)
      where p.name = s.name`;
  };
}

/**
 * The setup of an engine race: an admin client, rate limits raised out of the way and the
 * test actions (key: credits per unit); the limits are restored and the client closed at
 * the end, whatever happens.
 */
export async function withEngineSetup(
  actions: Record<string, number>,
  fn: (admin: Sql) => Promise<void>,
): Promise<void> {
  const admin = connect(2);
  try {
    const restore = await raiseRateLimits(admin);
    try {
      for (const [key, credits] of Object.entries(actions)) await ensureAction(admin, key, credits);
      await fn(admin);
    } finally {
      await restore();
    }
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Grants credits through the credit engine (as billing, referrals or staff would). */
export async function grant(
  sql: Sql | Tx,
  accountId: string,
  amount: number,
  source: string,
  expiresAt: string | null = null,
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    select private.grant_credits(${accountId}::uuid, ${amount}::bigint, ${source}, ${expiresAt}::timestamptz) as id`;
  return row.id;
}

/**
 * Runs `fn` in a transaction as the signed-in user `userId` (role authenticated
 * and the JWT claims, transaction-local), optionally at business time `now`.
 */
export async function asUserTx<T>(
  sql: Sql,
  userId: string,
  fn: (tx: Tx) => Promise<T>,
  now: string | null = null,
): Promise<T> {
  const claims = JSON.stringify(userClaims(userId));
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true),
                    set_config('ledgerbase.now', ${now ?? ""}, true)`;
    return await fn(tx);
  }) as T;
}

/** Runs `fn` in a transaction on the trusted path, at business time `now`. */
export async function atTime<T>(sql: Sql, now: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('ledgerbase.now', ${now}, true)`;
    return await fn(tx);
  }) as T;
}

/** A wallet as the database stores it, with the sums the invariants compare it to. */
export interface WalletSnapshot {
  account_id: string;
  balance: number;
  held: number;
  available: number;
  ledger_sum: number;
  ledger_count: number;
  /** remaining of every lot not expired at `at` (debt lots included: they never expire). */
  unexpired_remaining: number;
  /** remaining > 0 left in lots already expired at `at` (must be 0 after a sweep). */
  expired_remaining: number;
  open_holds: number;
  open_hold_amount: number;
  usage_count: number;
  usage_charged: number;
  /** ledger rows whose balance_after does not continue the previous row's. */
  chain_breaks: number;
  min_balance_after: number | null;
  /** Spending rows (consume, capture) that left available below zero. */
  negative_spend_rows: number;
}

/**
 * Reads the wallets of `accountIds` with their sums, in one statement (one
 * snapshot). `at` is the business time for "unexpired" (default: now).
 */
export async function snapshots(sql: Sql, accountIds: string[], at: string | null = null): Promise<WalletSnapshot[]> {
  const rows = await sql<WalletSnapshot[]>`
    with ids as (
      select a.id_text::uuid as id from json_array_elements_text(${
    JSON.stringify(accountIds)
  }::text::json) as a(id_text)
    ), t as (
      select coalesce(${at}::timestamptz, clock_timestamp()) as at
    ), chain as (
      select l.account_id, l.delta, l.balance_after, l.available_after, l.reason,
             lag(l.balance_after) over (partition by l.account_id order by l.id) as prev
      from public.credit_ledger l where l.account_id in (select id from ids)
    )
    select w.account_id::text,
           w.balance::float8 as balance, w.held::float8 as held, w.available::float8 as available,
           (select coalesce(sum(l.delta), 0)::float8 from public.credit_ledger l where l.account_id = w.account_id) as ledger_sum,
           (select count(*)::float8 from public.credit_ledger l where l.account_id = w.account_id) as ledger_count,
           (select coalesce(sum(g.remaining), 0)::float8 from public.credit_grants g, t
             where g.account_id = w.account_id and (g.expires_at is null or g.expires_at > t.at)) as unexpired_remaining,
           (select coalesce(sum(g.remaining), 0)::float8 from public.credit_grants g, t
             where g.account_id = w.account_id and g.remaining > 0 and g.expires_at <= t.at) as expired_remaining,
           (select count(*)::float8 from public.credit_holds h where h.account_id = w.account_id and h.status = 'held') as open_holds,
           (select coalesce(sum(h.amount), 0)::float8 from public.credit_holds h
             where h.account_id = w.account_id and h.status = 'held') as open_hold_amount,
           (select count(*)::float8 from public.usage_events e where e.account_id = w.account_id) as usage_count,
           (select coalesce(sum(e.credits_charged), 0)::float8 from public.usage_events e where e.account_id = w.account_id) as usage_charged,
           (select count(*)::float8 from chain c where c.account_id = w.account_id
             and c.balance_after <> coalesce(c.prev, 0) + c.delta) as chain_breaks,
           (select min(c.balance_after)::float8 from chain c where c.account_id = w.account_id) as min_balance_after,
           (select count(*)::float8 from chain c where c.account_id = w.account_id
             and c.reason in ('consume', 'capture') and c.available_after < 0) as negative_spend_rows
    from public.credit_balances w
    where w.account_id in (select id from ids)
    order by w.account_id`;
  assertEquals(rows.length, new Set(accountIds).size, "every account has a wallet");
  return rows;
}

/**
 * The invariants of docs/credits.md#invariants for one wallet: balance = sum of ledger deltas =
 * sum of unexpired remaining; held = open holds, 0 <= held <= max(balance, 0);
 * available = balance - held, >= 0 unless in debt; the ledger is a gap-free
 * chain of balance_after values; no spend left available negative.
 */
export function checkInvariants(w: WalletSnapshot, label = w.account_id): void {
  assertEquals(w.ledger_sum, w.balance, `${label}: balance = sum of ledger deltas`);
  assertEquals(w.unexpired_remaining, w.balance, `${label}: balance = sum of unexpired remaining`);
  assertEquals(w.expired_remaining, 0, `${label}: no expired lot still holds credits`);
  assertEquals(w.open_hold_amount, w.held, `${label}: held = sum of open holds`);
  assert(w.held >= 0, `${label}: held ${w.held} >= 0`);
  assert(w.held <= Math.max(w.balance, 0), `${label}: held ${w.held} <= max(balance ${w.balance}, 0)`);
  assertEquals(w.available, w.balance - w.held, `${label}: available = balance - held`);
  if (w.balance >= 0) assert(w.available >= 0, `${label}: available ${w.available} >= 0`);
  assertEquals(w.chain_breaks, 0, `${label}: ledger balance_after chain`);
  assertEquals(w.negative_spend_rows, 0, `${label}: no spend left available negative`);
}

/** Work distributed over dedicated clients: each client takes the next task when free. */
export async function runOnClients<T>(
  clients: Sql[],
  tasks: ((client: Sql) => Promise<T>)[],
): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(clients.map(async (client) => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i](client);
    }
  }));
  return results;
}

/** A small seeded PRNG (mulberry32) so random workloads can be replayed from their seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** A seed from the environment (TEST_SEED) or a fresh one, printed so a failure can be replayed. */
export function testSeed(name: string): number {
  const fromEnv = Deno.env.get("TEST_SEED");
  const seed = fromEnv !== undefined ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
  console.log(`${name}: seed ${seed} (replay with TEST_SEED=${seed})`);
  return seed;
}
