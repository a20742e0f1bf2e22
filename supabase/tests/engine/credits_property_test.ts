/**
 * Story: whatever happens to a wallet — grants of every source with and without
 * expiry, consumption at various prices, holds captured for less than reserved
 * (or refused with 22023 for more), releases, time passing with and without
 * the expiry job, staff adjustments both ways, refund clawbacks into debt and idempotent replays —
 * the database does exactly what the rules of docs/credits.md#invariants say, step by step.
 *
 * A fast-check model-based test: random command sequences run against a fresh
 * account and against a TypeScript model of the wallet, and after every step
 * the two must agree on balance, held, available, every lot's remaining, the
 * debt, every hold's amount and status, which calls failed (PT402, PT409, 22023,
 * PT410) and the exact ledger entries written (reason, delta, balance_after,
 * available_after); the invariants (balance = sum of ledger = sum of lots,
 * 0 <= held <= max(balance, 0), available >= 0 unless in debt) are checked on
 * the database itself. On a counterexample fast-check shrinks it and prints the
 * command list (replay with FC_SEED / FC_PATH printed by fast-check).
 *
 * Business time is private.now(), driven by `ledgerbase.now`, set in every
 * transaction. Rules of the model (docs/credits.md#holds and the sections around it):
 * - draw-down: soonest expiry first, never-expiring last; on a tie promotional
 *   before paid (purchase, subscription); then oldest;
 * - an expired lot is never spent. Expiry is materialized (an `expire` ledger
 *   entry per lot) by the first successful change of the wallet after the
 *   expiry instant, or by private.expire_credit_grants(); until then the stored
 *   balance still counts it (the documented rules leave the timing open: we follow the DB);
 * - after credits leave without a charge (expiry, clawback), open holds shrink
 *   until held <= max(balance, 0): holds already past their ttl first (they are
 *   "released automatically"), then live holds newest-first. The database
 *   shrinks newest-first regardless of ttl; the regression tests at the end
 *   show the consequence (a live job captured for less than it used while the
 *   wallet had the credits);
 * - a clawback takes from the named lot, then in draw-down order, and the rest
 *   becomes a debt that new grants repay first;
 * - holds past their ttl stay counted in `held` until released by
 *   release_credits or by the expiry job (the DB's choice; docs/credits.md#holds says only
 *   "released automatically"); capture of such a hold is PT410 gone;
 * - a failed call changes nothing (its transaction rolls back).
 */
import fc from "fast-check";
import { assert, assertEquals } from "../../functions/tests/_support/assert.ts";
import {
  attempt,
  atTime,
  connect,
  createUser,
  ensureAction,
  raiseRateLimits,
  type Sql,
  type SqlOutcome,
  type Tx,
} from "../../functions/tests/_support/wallet.ts";

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------
const SOURCES = ["signup_bonus", "referral", "purchase", "subscription", "admin", "promo"] as const;
const PAID = new Set(["purchase", "subscription"]);
/** Test actions: [key, credits, unit_size]. */
const ACTIONS: [string, number, number][] = [
  ["prop_c1", 1, 1],
  ["prop_c4", 4, 1],
  ["prop_c9", 9, 1],
  ["prop_t3", 3, 10], // 3 credits per 10 units: ceil(q * 3 / 10)
];
/** Expiries fall on a 5-minute grid so that ties (and expiring exactly "now") happen. */
const GRID = 300_000;

interface Lot {
  id: string;
  source: string;
  paid: boolean;
  expiresAt: number | null;
  remaining: number;
  seq: number;
}
interface Hold {
  id: string;
  amount: number;
  quantity: number;
  credits: number;
  unitSize: number;
  expiresAt: number;
  status: "held" | "captured" | "released" | "expired";
  seq: number;
  charged: number | null;
  usageEventId: string | null;
}
interface Entry {
  reason: string;
  delta: number;
  balance_after: number;
  available_after: number;
}
interface ConsumeRecord {
  action: string;
  quantity: number;
  metadata: Record<string, unknown>;
  result: Record<string, unknown>;
}
interface Model {
  t: number;
  balance: number;
  lots: Lot[];
  /** remaining of the debt lot(s), <= 0. */
  debt: number;
  holds: Hold[];
  seq: number;
  consumeKeys: [string, ConsumeRecord][];
  adminKeys: [string, number][];
  clawbackKeys: [string, number][];
  /** The ledger entries the current step must write, in order. */
  entries: Entry[];
  /** Lots expired by the current step. */
  expiredNow: number;
}

/** What the runs exercised, printed at the end (a property that never reaches a rule proves nothing). */
const coverage: Record<string, number> = {};
const saw = (what: string) => void (coverage[what] = (coverage[what] ?? 0) + 1);

class Expected extends Error {
  constructor(readonly code: string) {
    super(`expected failure ${code}`);
  }
}

const cost = (quantity: number, credits: number, unitSize: number) => Math.ceil((quantity * credits) / unitSize);
const held = (m: Model) => m.holds.reduce((s, h) => s + (h.status === "held" ? h.amount : 0), 0);
const available = (m: Model) => m.balance - held(m);
const cmpId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function entry(m: Model, reason: string, delta: number): void {
  m.entries.push({ reason, delta, balance_after: m.balance, available_after: available(m) });
}

/** A wallet as the database reports it (a row or a call's result) equals the model's. */
function assertWalletResult(
  got: { balance: number; held: number; available: number },
  m: Readonly<Model>,
  label: string,
): void {
  assertEquals(
    { balance: got.balance, held: got.held, available: got.available },
    { balance: m.balance, held: held(m), available: available(m) },
    label,
  );
}

/** Open holds shrink newest-first until held <= max(balance, 0). */
function shrinkHolds(m: Model): void {
  let excess = held(m) - Math.max(m.balance, 0);
  if (excess <= 0) return;
  // Holds already past their ttl are released (docs/credits.md#holds: expired holds are released automatically): they give
  // their credits back first, so that a live hold shrinks only when the balance cannot cover it.
  const lapsed = (h: Hold) => h.expiresAt <= m.t;
  const order = (a: Hold, b: Hold) => Number(lapsed(b)) - Number(lapsed(a)) || b.seq - a.seq;
  for (const h of m.holds.filter((h) => h.status === "held" && h.amount > 0).sort(order)) {
    if (excess <= 0) break;
    const cut = Math.min(h.amount, excess);
    if (cut > 0) saw(lapsed(h) ? "lapsed hold shrunk" : "live hold shrunk");
    h.amount -= cut;
    excess -= cut;
  }
}

/** Expires the lots whose time has come (one entry each, by expiry then id), then shrinks holds. */
function materialize(m: Model): void {
  const due = m.lots
    .filter((l) => l.remaining > 0 && l.expiresAt !== null && l.expiresAt <= m.t)
    .sort((a, b) => a.expiresAt! - b.expiresAt! || cmpId(a.id, b.id));
  for (const l of due) {
    const r = l.remaining;
    l.remaining = 0;
    m.balance -= r;
    entry(m, "expire", -r);
    m.expiredNow++;
    saw("lot expired");
  }
  if (due.length > 0) shrinkHolds(m);
}

/** Draw-down order: soonest expiry (never-expiring last), promotional before paid, oldest. */
function drawDown(m: Model, amount: number): void {
  const lots = m.lots
    .filter((l) => l.remaining > 0 && (l.expiresAt === null || l.expiresAt > m.t))
    .sort((a, b) =>
      (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity) || Number(a.paid) - Number(b.paid) || a.seq - b.seq
    );
  if (lots.some((a) => lots.some((b) => a.expiresAt === b.expiresAt && a.paid !== b.paid))) saw("promo/paid tie");
  for (const l of lots) {
    if (amount <= 0) break;
    const take = Math.min(l.remaining, amount);
    l.remaining -= take;
    amount -= take;
  }
  if (amount !== 0) throw new Error(`model: draw-down short by ${amount}`);
}

function modelGrant(m: Model, id: string, amount: number, source: string, expiresAt: number | null): void {
  materialize(m);
  const repaid = Math.min(amount, -m.debt);
  if (repaid > 0) saw("debt repaid by a grant");
  m.debt += repaid;
  m.lots.push({ id, source, paid: PAID.has(source), expiresAt, remaining: amount - repaid, seq: m.seq++ });
  m.balance += amount;
  entry(m, source, amount);
}

function modelClawback(m: Model, amount: number, reason: string, fromLot: string | null): void {
  materialize(m);
  let fromLotTaken = 0;
  const lot = m.lots.find((l) => l.id === fromLot);
  if (lot && lot.remaining > 0 && (lot.expiresAt === null || lot.expiresAt > m.t)) {
    fromLotTaken = Math.min(lot.remaining, amount);
    lot.remaining -= fromLotTaken;
  }
  const positive = m.lots.reduce(
    (s, l) => s + (l.remaining > 0 && (l.expiresAt === null || l.expiresAt > m.t) ? l.remaining : 0),
    0,
  );
  const fromOthers = Math.min(amount - fromLotTaken, positive);
  drawDown(m, fromOthers);
  m.debt -= amount - fromLotTaken - fromOthers;
  if (amount - fromLotTaken - fromOthers > 0) saw("debt recorded");
  if (fromLotTaken > 0) saw("clawback from the named lot");
  m.balance -= amount;
  entry(m, reason, -amount);
  shrinkHolds(m);
}

function modelConsume(m: Model, charge: number): void {
  materialize(m);
  if (available(m) < charge) throw new Expected("PT402");
  m.balance -= charge;
  drawDown(m, charge);
  entry(m, "consume", -charge);
}

function clone(m: Model): Model {
  return structuredClone(m);
}

// ---------------------------------------------------------------------------
// The real system
// ---------------------------------------------------------------------------
interface Real {
  sql: Sql;
  account: string;
  lastLedgerId: number;
  log: string[];
}

const iso = (t: number) => new Date(t).toISOString();

/**
 * Which path the credit functions take: "common" (the one-statement charge) or "explanation"
 * (ledgerbase.explanation_path = on: lock, expire, then judge each rule in order). The
 * property runs its sequences both ways: the two paths must agree with the model, and so
 * with each other.
 */
let chargingPath: "common" | "explanation" = "common";

async function call<T>(r: Real, t: number, fn: (tx: Tx) => Promise<T>): Promise<SqlOutcome<T>> {
  return await attempt(() =>
    atTime(r.sql, iso(t), async (tx) => {
      if (chargingPath === "explanation") await tx`select set_config('ledgerbase.explanation_path', 'on', true)`;
      return await fn(tx);
    })
  );
}

/**
 * Applies a command to a copy of the model (`step` throws Expected for a
 * predicted failure) and compares it with the database's outcome; on success
 * the copy becomes the model.
 */
function settle<T>(
  m: Model,
  outcome: SqlOutcome<T>,
  step: (next: Model, value: T) => void,
  describe: string,
): { next: Model; value: T } | null {
  const next = clone(m);
  next.entries = [];
  next.expiredNow = 0;
  let expectedFailure: string | null = null;
  try {
    step(next, outcome.ok ? outcome.value : (undefined as T));
  } catch (e) {
    if (!(e instanceof Expected)) {
      // The model needed the DB's value (e.g. a new id) and the DB failed: a mismatch.
      if (!outcome.ok) {
        throw new Error(`${describe}: the database failed unexpectedly: ${JSON.stringify(outcome)}`);
      }
      throw e;
    }
    expectedFailure = e.code;
  }
  saw(expectedFailure === null ? "success" : expectedFailure);
  if (expectedFailure !== null) {
    assert(
      !outcome.ok && outcome.code === expectedFailure,
      `${describe}: model expects ${expectedFailure}, database gave ${JSON.stringify(outcome)}`,
    );
    Object.assign(m, { entries: [], expiredNow: 0 });
    return null;
  }
  assert(outcome.ok, `${describe}: model expects success, database gave ${JSON.stringify(outcome)}`);
  Object.assign(m, next);
  return { next: m, value: outcome.value };
}

interface DbState {
  balance: number;
  held: number;
  available: number;
  ledger_sum: number;
  lot_sum: number;
  lots: { id: string; source: string; remaining: number }[];
  holds: { id: string; amount: number; status: string }[];
  entries: (Entry & { id: number })[];
  expired_remaining: number;
}

async function readState(r: Real, t: number): Promise<DbState> {
  const [row] = await r.sql<{ s: DbState }[]>`
    select json_build_object(
      'balance', w.balance, 'held', w.held, 'available', w.available,
      'ledger_sum', (select coalesce(sum(l.delta), 0) from public.credit_ledger l where l.account_id = w.account_id),
      'lot_sum', (select coalesce(sum(g.remaining), 0) from public.credit_grants g where g.account_id = w.account_id),
      'lots', (select coalesce(json_agg(json_build_object('id', g.id, 'source', g.source, 'remaining', g.remaining)), '[]')
               from public.credit_grants g where g.account_id = w.account_id),
      'holds', (select coalesce(json_agg(json_build_object('id', h.id, 'amount', h.amount, 'status', h.status)), '[]')
                from public.credit_holds h where h.account_id = w.account_id),
      'entries', (select coalesce(json_agg(json_build_object('id', l.id, 'reason', l.reason, 'delta', l.delta,
                                   'balance_after', l.balance_after, 'available_after', l.available_after) order by l.id), '[]')
                  from public.credit_ledger l where l.account_id = w.account_id and l.id > ${r.lastLedgerId}),
      'expired_remaining', (select coalesce(sum(g.remaining), 0) from public.credit_grants g
                            where g.account_id = w.account_id and g.remaining > 0 and g.expires_at <= ${
    iso(t)
  }::timestamptz)
    ) as s
    from public.credit_balances w where w.account_id = ${r.account}`;
  return row.s;
}

/** After every step: the database equals the model, and the invariants hold in the database. */
async function compare(m: Model, r: Real, describe: string, swept = false): Promise<void> {
  const s = await readState(r, m.t);
  const at = `${describe} (after: ${r.log.join("; ")})`;
  // Invariants, on the database alone.
  assertEquals(s.ledger_sum, s.balance, `${at}: balance = sum of ledger deltas`);
  assertEquals(s.lot_sum, s.balance, `${at}: balance = sum of remaining`);
  assertEquals(s.available, s.balance - s.held, `${at}: available = balance - held`);
  assert(s.held >= 0 && s.held <= Math.max(s.balance, 0), `${at}: 0 <= held ${s.held} <= max(balance ${s.balance}, 0)`);
  if (s.balance >= 0) assert(s.available >= 0, `${at}: available ${s.available} >= 0 outside debt`);
  if (swept) assertEquals(s.expired_remaining, 0, `${at}: after the expiry job no expired lot holds credits`);
  // The database equals the model.
  assertWalletResult(s, m, `${at}: wallet`);
  const dbLots = Object.fromEntries(s.lots.filter((l) => l.source !== "clawback").map((l) => [l.id, l.remaining]));
  const modelLots = Object.fromEntries(m.lots.map((l) => [l.id, l.remaining]));
  assertEquals(dbLots, modelLots, `${at}: lots`);
  const dbDebt = s.lots.filter((l) => l.source === "clawback").reduce((x, l) => x + l.remaining, 0);
  assertEquals(dbDebt, m.debt, `${at}: debt`);
  const dbHolds = Object.fromEntries(s.holds.map((h) => [h.id, [h.amount, h.status]]));
  const modelHolds = Object.fromEntries(m.holds.map((h) => [h.id, [h.amount, h.status]]));
  assertEquals(dbHolds, modelHolds, `${at}: holds`);
  assertEquals(
    s.entries.map(({ id: _id, ...e }) => e),
    m.entries,
    `${at}: ledger entries written`,
  );
  if (s.entries.length > 0) r.lastLedgerId = s.entries[s.entries.length - 1].id;
  m.entries = [];
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------
type Cmd = fc.AsyncCommand<Model, Real>;

async function finish(m: Model, r: Real, describe: string, swept = false): Promise<void> {
  r.log.push(describe);
  await compare(m, r, describe, swept);
}

class Grant implements Cmd {
  constructor(readonly a: { amount: number; source: string; slot: number | null; keyed: boolean }) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const expiresAt = this.a.slot === null ? null : Math.ceil(m.t / GRID) * GRID + this.a.slot * GRID;
    const key = this.a.keyed ? `g${m.seq}` : null;
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ id: string }[]>`
        select private.grant_credits(${r.account}::uuid, ${this.a.amount}::bigint, ${this.a.source},
                                     ${expiresAt === null ? null : iso(expiresAt)}::timestamptz, ${key}) as id`)[0].id);
    settle(m, outcome, (n, id) => modelGrant(n, id, this.a.amount, this.a.source, expiresAt), this.toString());
    await finish(m, r, this.toString());
  }
  toString() {
    const a = this.a;
    return `Grant(${a.amount} ${a.source}${a.slot === null ? "" : ` expiring slot+${a.slot}`}${
      a.keyed ? " keyed" : ""
    })`;
  }
}

class Consume implements Cmd {
  constructor(readonly a: { action: number; quantity: number; keyed: boolean }) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const [action, credits, unitSize] = ACTIONS[this.a.action];
    const key = this.a.keyed ? `c${m.seq}` : null;
    const metadata = { step: m.seq, quantity: this.a.quantity };
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ r: Record<string, unknown> }[]>`
        select public.consume_credits(account_id => ${r.account}::uuid, action => ${action},
          quantity => ${this.a.quantity}::int, idempotency_key => ${key},
          metadata => ${JSON.stringify(metadata)}::text::jsonb) as r`)[0].r);
    const charge = cost(this.a.quantity, credits, unitSize);
    const done = settle(m, outcome, (n) => {
      n.seq++;
      modelConsume(n, charge);
    }, this.toString());
    if (done) {
      const v = done.value;
      assertEquals(
        { credits_charged: v.credits_charged, balance: v.balance, available: v.available, replayed: v.replayed },
        { credits_charged: charge, balance: m.balance, available: available(m), replayed: false },
        `${this}: result`,
      );
      if (key !== null) m.consumeKeys.push([key, { action, quantity: this.a.quantity, metadata, result: v }]);
    }
    await finish(m, r, this.toString());
  }
  toString() {
    return `Consume(${ACTIONS[this.a.action][0]} x${this.a.quantity}${this.a.keyed ? " keyed" : ""})`;
  }
}

class ReplayConsume implements Cmd {
  constructor(readonly a: { pick: number; conflict: boolean }) {}
  check = (m: Readonly<Model>) => m.consumeKeys.length > 0;
  async run(m: Model, r: Real) {
    const [key, rec] = m.consumeKeys[this.a.pick % m.consumeKeys.length];
    const quantity = this.a.conflict ? rec.quantity + 1 : rec.quantity;
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ r: Record<string, unknown> }[]>`
        select public.consume_credits(account_id => ${r.account}::uuid, action => ${rec.action},
          quantity => ${quantity}::int, idempotency_key => ${key},
          metadata => ${JSON.stringify(rec.metadata)}::text::jsonb) as r`)[0].r);
    const done = settle(m, outcome, () => {
      if (this.a.conflict) throw new Expected("PT409");
    }, this.toString());
    if (done) assertEquals(done.value, { ...rec.result, replayed: true }, `${this}: the original result`);
    await finish(m, r, this.toString());
  }
  toString() {
    return `ReplayConsume(#${this.a.pick}${this.a.conflict ? " with another quantity" : ""})`;
  }
}

class Reserve implements Cmd {
  constructor(readonly a: { action: number; quantity: number; ttl: number }) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const [action, credits, unitSize] = ACTIONS[this.a.action];
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ r: Record<string, unknown> }[]>`
        select public.reserve_credits(account_id => ${r.account}::uuid, action => ${action},
          quantity => ${this.a.quantity}::int, ttl_seconds => ${this.a.ttl}::int) as r`)[0].r);
    const amount = cost(this.a.quantity, credits, unitSize);
    const done = settle(m, outcome, (n, v) => {
      materialize(n);
      if (available(n) < amount) throw new Expected("PT402");
      n.holds.push({
        id: v.hold_id as string,
        amount,
        quantity: this.a.quantity,
        credits,
        unitSize,
        expiresAt: n.t + this.a.ttl * 1000,
        status: "held",
        seq: n.seq++,
        charged: null,
        usageEventId: null,
      });
    }, this.toString());
    if (done) {
      const v = done.value;
      assertEquals(
        {
          amount: v.amount,
          available: v.available,
          replayed: v.replayed,
          expires_at: Date.parse(v.expires_at as string),
        },
        { amount, available: available(m), replayed: false, expires_at: m.t + this.a.ttl * 1000 },
        `${this}: result`,
      );
    }
    await finish(m, r, this.toString());
  }
  toString() {
    return `Reserve(${ACTIONS[this.a.action][0]} x${this.a.quantity}, ttl ${this.a.ttl}s)`;
  }
}

class Capture implements Cmd {
  constructor(readonly a: { pick: number; quantity: number | null }) {}
  check = (m: Readonly<Model>) => m.holds.length > 0;
  async run(m: Model, r: Real) {
    const index = this.a.pick % m.holds.length;
    const id = m.holds[index].id;
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ r: Record<string, unknown> }[]>`
        select public.capture_credits(hold_id => ${id}::uuid, quantity => ${this.a.quantity}::int) as r`)[0].r);
    let expected: Record<string, unknown> = {};
    const done = settle(m, outcome, (n, v) => {
      const h = n.holds[index];
      // A quantity above the reserved one is refused before anything else (docs/credits.md#holds).
      if (this.a.quantity !== null && this.a.quantity > h.quantity) throw new Expected("22023");
      materialize(n);
      if (h.status === "captured") {
        expected = {
          usage_event_id: h.usageEventId,
          credits_charged: h.charged,
          released: 0,
          balance: n.balance,
          available: available(n),
          replayed: true,
        };
        return;
      }
      if (h.status !== "held" || h.expiresAt <= n.t) throw new Expected("PT410");
      const charge = Math.min(cost(this.a.quantity ?? h.quantity, h.credits, h.unitSize), h.amount);
      // Charging nothing (a hold emptied by a clawback) never fails, even in debt.
      if (charge > 0 && available(n) + h.amount < charge) throw new Expected("PT402");
      const released = h.amount - charge;
      n.balance -= charge;
      h.status = "captured";
      h.charged = charge;
      h.usageEventId = v.usage_event_id as string;
      drawDown(n, charge);
      if (charge > 0) entry(n, "capture", -charge);
      expected = {
        usage_event_id: h.usageEventId,
        credits_charged: charge,
        released,
        balance: n.balance,
        available: available(n),
        replayed: false,
      };
    }, this.toString());
    if (done) assertEquals(done.value, expected, `${this}: result`);
    await finish(m, r, this.toString());
  }
  toString() {
    return `Capture(hold #${this.a.pick}${this.a.quantity === null ? "" : ` x${this.a.quantity}`})`;
  }
}

class Release implements Cmd {
  constructor(readonly a: { pick: number }) {}
  check = (m: Readonly<Model>) => m.holds.length > 0;
  async run(m: Model, r: Real) {
    const index = this.a.pick % m.holds.length;
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ r: Record<string, unknown> }[]>`
        select public.release_credits(hold_id => ${m.holds[index].id}::uuid) as r`)[0].r);
    let released = 0;
    const done = settle(m, outcome, (n) => {
      materialize(n);
      const h = n.holds[index];
      if (h.status === "held") {
        released = h.amount;
        h.status = h.expiresAt <= n.t ? "expired" : "released";
      }
    }, this.toString());
    if (done) assertEquals(done.value, { released, available: available(m) }, `${this}: result`);
    await finish(m, r, this.toString());
  }
  toString() {
    return `Release(hold #${this.a.pick})`;
  }
}

class Advance implements Cmd {
  constructor(readonly a: { seconds: number; sweep: boolean }) {}
  check = () => true;
  async run(m: Model, r: Real) {
    m.t += this.a.seconds * 1000;
    if (this.a.sweep) {
      const outcome = await call(
        r,
        m.t,
        async (tx) => (await tx<{ n: number }[]>`select private.expire_credit_grants() as n`)[0].n,
      );
      const done = settle(m, outcome, (n) => {
        materialize(n);
        for (const h of n.holds) if (h.status === "held" && h.expiresAt <= n.t) h.status = "expired";
      }, this.toString());
      // The job is global: it may also expire other (older) test accounts' lots.
      if (done) assert(done.value >= m.expiredNow, `${this}: returned ${done.value} < ${m.expiredNow}`);
    }
    await finish(m, r, this.toString(), this.a.sweep);
  }
  toString() {
    return `Advance(${this.a.seconds}s${this.a.sweep ? " + expire_credit_grants()" : ""})`;
  }
}

class AdminAdjust implements Cmd {
  constructor(readonly a: { delta: number }) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const key = `a${m.seq}`;
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ r: Record<string, unknown> }[]>`
        select public.admin_adjust_credits(account_id => ${r.account}::uuid, delta => ${this.a.delta}::bigint,
          reason => 'property test correction', idempotency_key => ${key}) as r`)[0].r);
    const done = settle(m, outcome, (n) => {
      n.seq++;
      if (this.a.delta > 0) {
        // A never-expiring admin grant; its id is read back below.
        modelGrant(n, "pending", this.a.delta, "admin", null);
      } else {
        modelClawback(n, -this.a.delta, "admin_adjust", null);
      }
    }, this.toString());
    if (done) {
      const pending = m.lots.find((l) => l.id === "pending");
      if (pending) {
        const [g] = await r.sql<{ id: string }[]>`
          select id::text from public.credit_grants where account_id = ${r.account} and idempotency_key = ${
          "admin:" + key
        }`;
        pending.id = g.id;
      }
      m.adminKeys.push([key, this.a.delta]);
      assertEquals(done.value, { balance: m.balance, available: available(m) }, `${this}: result`);
    }
    await finish(m, r, this.toString());
  }
  toString() {
    return `AdminAdjust(${this.a.delta > 0 ? "+" : ""}${this.a.delta})`;
  }
}

class ReplayAdmin implements Cmd {
  constructor(readonly a: { pick: number; conflict: boolean }) {}
  check = (m: Readonly<Model>) => m.adminKeys.length > 0;
  async run(m: Model, r: Real) {
    const [key, original] = m.adminKeys[this.a.pick % m.adminKeys.length];
    const delta = this.a.conflict ? original * 2 : original;
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ r: Record<string, unknown> }[]>`
        select public.admin_adjust_credits(account_id => ${r.account}::uuid, delta => ${delta}::bigint,
          reason => 'property test correction', idempotency_key => ${key}) as r`)[0].r);
    // A replay returns the wallet as stored, without touching it; another delta is a conflict.
    const done = settle(m, outcome, () => {
      if (this.a.conflict) throw new Expected("PT409");
    }, this.toString());
    if (done) assertEquals(done.value, { balance: m.balance, available: available(m) }, `${this}: result`);
    await finish(m, r, this.toString());
  }
  toString() {
    return `ReplayAdmin(#${this.a.pick}${this.a.conflict ? " with another delta" : ""})`;
  }
}

class Clawback implements Cmd {
  constructor(readonly a: { amount: number; lot: number | null; keyed: boolean }) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const key = this.a.keyed ? `cb${m.seq}` : null;
    const fromLot = this.a.lot === null ? null : m.lots[this.a.lot % m.lots.length].id;
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ balance: number; held: number; available: number }[]>`
        select balance::int, held::int, available::int
        from private.clawback_credits(${r.account}::uuid, ${this.a.amount}::bigint, 'clawback', ${key}, ${fromLot}::uuid)`)[
        0
      ]);
    const done = settle(m, outcome, (n) => {
      n.seq++;
      modelClawback(n, this.a.amount, "clawback", fromLot);
    }, this.toString());
    if (done) {
      if (key !== null) m.clawbackKeys.push([key, this.a.amount]);
      assertWalletResult(done.value, m, `${this}: result`);
    }
    await finish(m, r, this.toString());
  }
  toString() {
    const a = this.a;
    return `Clawback(${a.amount}${a.lot === null ? "" : ` from lot #${a.lot}`}${a.keyed ? " keyed" : ""})`;
  }
}

class ReplayClawback implements Cmd {
  constructor(readonly a: { pick: number }) {}
  check = (m: Readonly<Model>) => m.clawbackKeys.length > 0;
  async run(m: Model, r: Real) {
    const [key, amount] = m.clawbackKeys[this.a.pick % m.clawbackKeys.length];
    const outcome = await call(r, m.t, async (tx) =>
      (await tx<{ balance: number; held: number; available: number }[]>`
        select balance::int, held::int, available::int
        from private.clawback_credits(${r.account}::uuid, ${amount}::bigint, 'clawback', ${key})`)[0]);
    const done = settle(m, outcome, (n) => materialize(n), this.toString());
    if (done) {
      assertWalletResult(done.value, m, `${this}: result`);
    }
    await finish(m, r, this.toString());
  }
  toString() {
    return `ReplayClawback(#${this.a.pick})`;
  }
}

const action = fc.nat(ACTIONS.length - 1);
const grantArb = fc.record({
  amount: fc.integer({ min: 1, max: 120 }),
  source: fc.constantFrom(...SOURCES),
  slot: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null, freq: 2 }),
  keyed: fc.boolean(),
}).map((a) => new Grant(a));
const consumeArb = fc.record({ action, quantity: fc.integer({ min: 1, max: 8 }), keyed: fc.boolean() })
  .map((a) => new Consume(a));
const reserveArb = fc.record({
  action,
  quantity: fc.integer({ min: 1, max: 6 }),
  ttl: fc.oneof(fc.integer({ min: 1, max: 1200 }), fc.constantFrom(300, 600)),
}).map((a) => new Reserve(a));
const captureArb = fc.record({ pick: fc.nat(), quantity: fc.option(fc.integer({ min: 1, max: 12 }), { nil: null }) })
  .map((a) => new Capture(a));
const advanceArb = fc.record({
  seconds: fc.oneof(fc.integer({ min: 1, max: 900 }), fc.constantFrom(60, 300, 600, 1200)),
  sweep: fc.boolean(),
}).map((a) => new Advance(a));

const commands = fc.commands([
  grantArb,
  grantArb,
  consumeArb,
  consumeArb,
  consumeArb,
  fc.record({ pick: fc.nat(), conflict: fc.boolean() }).map((a) => new ReplayConsume(a)),
  reserveArb,
  reserveArb,
  captureArb,
  captureArb,
  fc.record({ pick: fc.nat() }).map((a) => new Release(a)),
  advanceArb,
  advanceArb,
  advanceArb,
  fc.record({ delta: fc.integer({ min: -150, max: 150 }).filter((d) => d !== 0) }).map((a) => new AdminAdjust(a)),
  fc.record({ pick: fc.nat(), conflict: fc.boolean() }).map((a) => new ReplayAdmin(a)),
  fc.record({
    amount: fc.integer({ min: 1, max: 150 }),
    lot: fc.option(fc.nat(), { nil: null }),
    keyed: fc.boolean(),
  }).map((a) => new Clawback(a)),
  fc.record({ pick: fc.nat() }).map((a) => new ReplayClawback(a)),
], { maxCommands: 40, size: "max" });

/** Runs one command sequence on a fresh account (50 signup_bonus credits, never expiring) and its model. */
async function runSequence(sql: Sql, t0: number, cmds: Iterable<Cmd>): Promise<Real> {
  const account = await createUser(sql);
  const [bonus] = await sql<{ id: string }[]>`
    select id::text from public.credit_grants where account_id = ${account} and source = 'signup_bonus'`;
  const [{ last }] = await sql<{ last: number }[]>`
    select coalesce(max(id), 0)::float8 as last from public.credit_ledger where account_id = ${account}`;
  const model: Model = {
    t: t0,
    balance: 50,
    lots: [{ id: bonus.id, source: "signup_bonus", paid: false, expiresAt: null, remaining: 50, seq: 0 }],
    debt: 0,
    holds: [],
    seq: 1,
    consumeKeys: [],
    adminKeys: [],
    clawbackKeys: [],
    entries: [],
    expiredNow: 0,
  };
  const real: Real = { sql, account, lastLedgerId: last, log: [] };
  await compare(model, real, "signup");
  await fc.asyncModelRun(() => ({ model, real }), cmds);
  return real;
}

/** Business time starts on the grid, a little ahead of the wall clock, and only moves forward. */
const startTime = () => Math.ceil(Date.now() / GRID) * GRID + GRID;

async function withDb(fn: (sql: Sql) => Promise<void>): Promise<void> {
  const sql = connect(1);
  const restore = await raiseRateLimits(sql);
  try {
    for (const [key, credits, unitSize] of ACTIONS) await ensureAction(sql, key, credits, unitSize);
    await fn(sql);
  } finally {
    await restore();
    await sql.end({ timeout: 5 });
  }
}

/**
 * Counterexamples found by this property, kept as fixed sequences: they run first in the property (so it
 * fails deterministically while the bug is there) and as their own tests below.
 *
 * A hold past its ttl still counted when open holds shrank: a clawback (or an expiry) that left
 * held > balance cut the newest *live* hold although the lapsed, older hold alone covered the excess;
 * the lapsed hold is then released, and the live job is captured for less than it used while the wallet
 * had the credits.
 */
const LAPSED_HOLD_VS_CLAWBACK: Cmd[] = [
  new Reserve({ action: 0, quantity: 1, ttl: 300 }), // hold A: 1 credit, lapses at t0 + 300 s
  new Reserve({ action: 0, quantity: 5, ttl: 600 }), // hold B: 5 credits, live until t0 + 600 s
  new Consume({ action: 2, quantity: 2, keyed: false }), // 18: balance 32, held 6
  new Advance({ seconds: 300, sweep: false }), // A has lapsed (not yet released by the job)
  new AdminAdjust({ delta: -27 }), // balance 5 < held 6: 1 credit must come back from a hold -- A's, not B's
  new Capture({ pick: 1, quantity: null }), // B's job used 5 units: it must be charged 5
];
const LAPSED_HOLD_VS_EXPIRY: Cmd[] = [
  new Grant({ amount: 50, source: "promo", slot: 1, keyed: false }), // expires at t0 + 300 s; balance 100
  new Reserve({ action: 2, quantity: 6, ttl: 60 }), // hold A: 54, lapses at t0 + 60 s
  new Reserve({ action: 2, quantity: 4, ttl: 3600 }), // hold B: 36, live for an hour; held 90
  new Advance({ seconds: 300, sweep: true }), // the promo expires (balance 50 < held 90) and A lapsed
  new Capture({ pick: 1, quantity: null }), // B's job used 4 units: it must be charged 36
];

for (const path of ["common", "explanation"] as const) {
  Deno.test(
    `model-based (${path} path): random grants, consumes, holds, expiry, adjustments and clawbacks match the documented wallet`,
    async () => {
      chargingPath = path;
      try {
        await withDb(async (sql) => {
          const t0 = startTime();
          const stats = { runs: 0, steps: 0 };
          const seed = Deno.env.get("FC_SEED");
          const fcPath = Deno.env.get("FC_PATH");
          await fc.assert(
            fc.asyncProperty(commands, async (cmds) => {
              const real = await runSequence(sql, t0, cmds);
              coverage["commands generated"] = (coverage["commands generated"] ?? 0) + [...cmds].length;
              stats.runs++;
              stats.steps += real.log.length;
            }),
            {
              numRuns: 100,
              examples: [[LAPSED_HOLD_VS_CLAWBACK], [LAPSED_HOLD_VS_EXPIRY]],
              ...(seed !== undefined ? { seed: Number(seed) } : {}),
              ...(fcPath !== undefined ? { path: fcPath } : {}),
            },
          );
          console.log(`${stats.runs} passing runs, ${stats.steps} steps checked against the model`);
          console.log(`exercised: ${JSON.stringify(coverage)}`);
          assert(stats.steps > stats.runs * 10, "the sequences were not trivial");
        });
      } finally {
        chargingPath = "common";
      }
    },
  );
}

// The two counterexamples again, as plain scenarios asserting what the user sees (independent of how the
// fix settles the lapsed hold: cut to 0 or released on the spot).
async function holdAmount(sql: Sql, id: string): Promise<number> {
  return (await sql<{ amount: number }[]>`select amount::int from public.credit_holds where id = ${id}`)[0].amount;
}
async function reserve(sql: Sql, t: number, account: string, action: string, quantity: number, ttl: number) {
  return await atTime(sql, iso(t), async (tx) =>
    (await tx<{ r: { hold_id: string } }[]>`
      select public.reserve_credits(account_id => ${account}::uuid, action => ${action}, quantity => ${quantity}::int,
                                    ttl_seconds => ${ttl}::int) as r`)[0].r.hold_id);
}
async function capture(sql: Sql, t: number, hold: string) {
  return await atTime(
    sql,
    iso(t),
    async (tx) =>
      (await tx<{ r: { credits_charged: number } }[]>`select public.capture_credits(hold_id => ${hold}::uuid) as r`)[0]
        .r,
  );
}

Deno.test("regression: a lapsed hold gives its credits back before a live hold shrinks (clawback)", async () => {
  await withDb(async (sql) => {
    const t0 = startTime();
    const account = await createUser(sql); // 50
    const lapsing = await reserve(sql, t0, account, "prop_c1", 1, 300); // 1 credit until t0 + 300 s
    const live = await reserve(sql, t0, account, "prop_c1", 5, 600); // 5 credits until t0 + 600 s
    await atTime(sql, iso(t0), (tx) => tx`select public.consume_credits(${account}::uuid, 'prop_c9', 2)`); // 32 left
    // t0 + 300 s: the 1-credit hold has lapsed. A staff correction of -27 leaves 5 for 6 held: one credit must
    // come back from a hold, and the lapsed one has it.
    const t1 = t0 + 300_000;
    await atTime(
      sql,
      iso(t1),
      (tx) => tx`select public.admin_adjust_credits(${account}::uuid, -27, 'chargeback fix', null)`,
    );
    assertEquals(await holdAmount(sql, live), 5, "the live hold keeps its 5 credits");
    // The job behind the live hold used its 5 units: it is charged 5 (the wallet has them).
    assertEquals((await capture(sql, t1, live)).credits_charged, 5, "the live job is charged in full");
    await atTime(sql, iso(t1), (tx) => tx`select public.release_credits(${lapsing}::uuid)`);
    const [w] = await sql<{ balance: number; held: number }[]>`
      select balance::int, held::int from public.credit_balances where account_id = ${account}`;
    assertEquals({ ...w }, { balance: 0, held: 0 });
  });
});

Deno.test("regression: a lapsed hold gives its credits back before a live hold shrinks (expiry job)", async () => {
  await withDb(async (sql) => {
    const t0 = startTime();
    const account = await createUser(sql); // 50 never expiring
    await atTime(
      sql,
      iso(t0),
      (tx) => tx`select private.grant_credits(${account}::uuid, 50, 'promo', ${iso(t0 + 300_000)}::timestamptz)`,
    );
    await reserve(sql, t0, account, "prop_c9", 6, 60); // 54 until t0 + 60 s
    const live = await reserve(sql, t0, account, "prop_c9", 4, 3600); // 36 for an hour
    // t0 + 300 s: the promo lot expires (balance 50 < held 90) and the 54-credit hold has lapsed.
    const t1 = t0 + 300_000;
    await atTime(sql, iso(t1), (tx) => tx`select private.expire_credit_grants()`);
    const [w] = await sql<{ balance: number; held: number; available: number }[]>`
      select balance::int, held::int, available::int from public.credit_balances where account_id = ${account}`;
    assertEquals(
      { ...w, live: await holdAmount(sql, live) },
      { balance: 50, held: 36, available: 14, live: 36 },
      "only the lapsed hold gave credits back",
    );
    assertEquals((await capture(sql, t1, live)).credits_charged, 36, "the live job is charged in full");
  });
});
