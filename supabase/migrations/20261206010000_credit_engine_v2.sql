-- Credit engine v2: two row writes per consumption.
--
-- Storage
--   A consumption used to write four rows: a usage event, the wallet, the lot it drew and a
--   ledger entry. It now writes two:
--   * the wallet row (public.credit_balances), which checks and charges in one statement:
--     balance, the rate limit, the quota counters and the lot being drawn. The wallet keeps
--     the remaining credits of the lot that comes first in draw-down order (lot_id,
--     lot_remaining); that lot's own row is brought up to date whenever anything else
--     touches the account's lots (private.settle_lot), under the wallet lock;
--   * one entry (ledger.entries), which is both the ledger entry and the usage event and
--     carries the idempotency key.
--   The storage lives in the schema `ledger`, which the API does not expose. Clients read
--   the same names and columns as before through views under the same row-level security
--   (security_invoker): public.credit_ledger (the entries that change a balance),
--   public.usage_events (the entries that record usage) and public.credit_grants (each
--   lot with its exact remaining credits after every commit).
--
-- The charging statement
--   private.charge is the one statement that checks and charges a wallet for
--   consume_credits, reserve_credits and capture_credits. When it refuses, the explanation
--   path locks the wallet, brings its lots up to date, expires what is due and judges each
--   rule in the contract's order (rate limit, quota, balance), raising the first that fails.
--
-- Idempotency
--   A call with an idempotency key takes a transaction lock on (account, key) before it
--   looks the key up: a concurrent twin waits for the first call to commit, then finds its
--   entry and replays it, with no second charge.
--
-- Upgrade
--   The ledger table becomes ledger.entries in place (ids kept); each usage event joins the
--   ledger entry that charged it, and events that charged nothing become entries of their
--   own (delta 0, shown by usage_events only). The lots table becomes ledger.lots in place.

-- ---------------------------------------------------------------------------
-- The storage schema
-- ---------------------------------------------------------------------------
create schema ledger;
comment on schema ledger is
  'Storage of the credit engine: entries and lots. Not exposed by the API; clients read public.credit_ledger, public.usage_events and public.credit_grants, views over these tables under the same row-level security.';
revoke all on schema ledger from public;
grant usage on schema ledger to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Lots: ledger.lots, and the lot being drawn on the wallet row
-- ---------------------------------------------------------------------------
alter table public.credit_grants set schema ledger;
alter table ledger.credit_grants rename to lots;
comment on table ledger.lots is
  'Credit lots (grants). remaining is exact except for the lot a wallet names in credit_balances.lot_id, whose remaining credits the wallet row keeps (lot_remaining) until private.settle_lot writes them back. Read public.credit_grants for the exact figures.';

alter table public.credit_balances
  add column lot_id uuid,
  add column lot_remaining bigint,
  add constraint credit_balances_lot_check check ((lot_id is null) = (lot_remaining is null) and (lot_remaining is null or lot_remaining >= 0));
comment on column public.credit_balances.lot_id is
  'The lot consumption draws from next (the first in draw-down order), kept on the wallet so a consumption writes no lot row; null when none is loaded.';
comment on column public.credit_balances.lot_remaining is
  'The exact remaining credits of lot_id (its row in ledger.lots is brought up to date by private.settle_lot).';

create view public.credit_grants with (security_invoker = true) as
select g.id, g.account_id, g.source, g.amount,
       coalesce((select w.lot_remaining from public.credit_balances w
                 where w.account_id = g.account_id and w.lot_id = g.id), g.remaining) as remaining,
       g.expires_at, g.paid, g.payment_id, g.idempotency_key, g.metadata, g.created_at, g.seq
from ledger.lots g;
comment on view public.credit_grants is
  'Credit lots with their exact remaining credits (the wallet keeps those of the lot being drawn). Readable by members with credits.read and staff admins (row-level security of ledger.lots and credit_balances).';
revoke all on public.credit_grants from anon, authenticated, service_role;
grant select on public.credit_grants to authenticated, service_role;

create or replace function private.refuse_lot_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = '42501', message = 'permission denied',
    detail = 'credit lots change only through the credit functions';
end
$$;
comment on function private.refuse_lot_change() is
  'INSTEAD OF trigger of public.credit_grants: lots change only through the credit functions, for every role.';
create trigger credit_grants_read_only instead of insert or update or delete on public.credit_grants
  for each row execute function private.refuse_lot_change();

-- ---------------------------------------------------------------------------
-- Entries: ledger.entries, both ledger entries and usage events
-- ---------------------------------------------------------------------------
alter table public.credit_ledger set schema ledger;
alter table ledger.credit_ledger rename to entries;
alter table ledger.entries
  add column action text,
  add column quantity integer check (quantity > 0),
  add column credits_charged bigint check (credits_charged >= 0),
  add column usage_key text check (length(usage_key) between 1 and 255),
  add column user_id uuid references auth.users (id) on delete set null,
  add column api_key_id uuid,
  add column writer_xid xid8;
alter table ledger.entries alter column writer_xid set default pg_catalog.pg_current_xact_id();
alter table ledger.entries alter column balance_after drop not null, alter column available_after drop not null;
alter table ledger.entries drop constraint credit_ledger_delta_check;
alter table ledger.entries add constraint entries_kind_check check (
  (delta <> 0 and balance_after is not null and available_after is not null)
  or (delta = 0 and action is not null));
alter table ledger.entries add constraint entries_usage_check check (
  (action is null) = (quantity is null) and (action is null) = (credits_charged is null)
  and (action is null or usage_event_id is not null)
  and (usage_key is null or action is not null));
comment on table ledger.entries is
  'Ledger entries and usage events, one row each: a consumption is one entry. Entries with delta <> 0 are the ledger (public.credit_ledger); entries with an action are usage events (public.usage_events, id = usage_event_id). Append-only.';
comment on column ledger.entries.usage_key is 'The usage event''s idempotency key (usage_events.idempotency_key); idempotency_key is the ledger entry''s own.';
comment on column ledger.entries.writer_xid is 'The writing transaction, for the usage rollup''s fold (private.fold_usage_events).';

-- ---------------------------------------------------------------------------
-- Upgrade: usage events join the ledger entry that charged them
-- ---------------------------------------------------------------------------
alter table ledger.entries disable trigger user;
update ledger.entries l
   set action = e.action, quantity = e.quantity, credits_charged = e.credits_charged, usage_key = e.idempotency_key,
       user_id = e.user_id, api_key_id = e.api_key_id, writer_xid = e.writer_xid,
       metadata = case when l.metadata = '{}'::jsonb then e.metadata else l.metadata end,
       hold_id = coalesce(l.hold_id, e.hold_id)
  from public.usage_events e
 where l.usage_event_id = e.id
   and l.id = (select min(f.id) from ledger.entries f where f.usage_event_id = e.id);
insert into ledger.entries (account_id, delta, reason, usage_event_id, hold_id, actor_role, metadata, created_at,
                            action, quantity, credits_charged, usage_key, user_id, api_key_id, writer_xid)
select e.account_id, 0, case when e.hold_id is null then 'consume' else 'capture' end, e.id, e.hold_id, 'system', e.metadata,
       e.created_at, e.action, e.quantity, e.credits_charged, e.idempotency_key, e.user_id, e.api_key_id, e.writer_xid
from public.usage_events e
where not exists (select from ledger.entries l where l.usage_event_id = e.id)
order by e.created_at, e.id;
alter table ledger.entries enable trigger user;

alter table public.credit_holds drop constraint credit_holds_usage_event_id_fkey;
drop table public.usage_events;

drop index ledger.credit_ledger_usage_event_id_idx;
create unique index entries_usage_event_id_key on ledger.entries (usage_event_id) where usage_event_id is not null;
create unique index entries_usage_key on ledger.entries (account_id, usage_key) where usage_key is not null;
create index entries_user_id_idx on ledger.entries (user_id) where user_id is not null;
create index entries_writer_brin on ledger.entries using brin (((writer_xid::text)::bigint))
  with (pages_per_range = 32, autosummarize = on);
drop trigger credit_ledger_append_only on ledger.entries;
create trigger entries_append_only before update or delete on ledger.entries
  for each row execute function private.refuse_change('user_id', 'api_key_id');

create view public.credit_ledger with (security_invoker = true) as
select l.id, l.account_id, l.delta, l.balance_after, l.available_after, l.reason, l.grant_id, l.usage_event_id,
       l.hold_id, l.payment_id, l.idempotency_key, l.actor_user_id, l.actor_role, l.metadata, l.created_at
from ledger.entries l
where l.delta <> 0;
comment on view public.credit_ledger is
  'Every change of a balance, newest last (id). Append-only. Readable by members with credits.read and staff admins (row-level security of ledger.entries).';

create view public.usage_events with (security_invoker = true) as
select l.usage_event_id as id, l.account_id, l.user_id, l.action, l.quantity, l.credits_charged,
       l.usage_key as idempotency_key, l.metadata, l.hold_id, l.api_key_id, l.created_at, l.writer_xid
from ledger.entries l
where l.action is not null;
comment on view public.usage_events is
  'What each account used: one row per consumption or capture (seed usage logs). Readable by members with credits.read and staff admins (row-level security of ledger.entries).';

-- Usage recorded elsewhere can be imported by the database owner (insert into the view).
alter view public.usage_events alter column id set default pg_catalog.gen_random_uuid();
alter table ledger.entries alter column delta set default 0, alter column reason set default 'consume';

revoke all on public.credit_ledger, public.usage_events from anon, authenticated, service_role;
grant select on public.credit_ledger, public.usage_events to authenticated, service_role;
revoke all on ledger.entries, ledger.lots from anon;
grant select on ledger.entries, ledger.lots to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- The lot on the wallet: write it back, load the next
-- ---------------------------------------------------------------------------
create or replace function private.settle_lot(account_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- The caller holds the wallet lock. The lot's row gets the remaining credits the wallet
  -- kept; from here on the lots table alone is exact, until private.load_lot.
  with old as (
    select w.lot_id, w.lot_remaining from public.credit_balances w
    where w.account_id = settle_lot.account_id and w.lot_id is not null
  ), lot as (
    update ledger.lots g set remaining = old.lot_remaining from old where g.id = old.lot_id
  )
  update public.credit_balances w set lot_id = null, lot_remaining = null
  from old where w.account_id = settle_lot.account_id;
end
$$;
comment on function private.settle_lot(uuid) is
  'Writes the remaining credits the wallet keeps for its current lot back into ledger.lots and clears lot_id. Every path that reads or changes an account''s lots calls it first, under the wallet lock.';

create or replace function private.lots_in_order(account_id uuid)
returns table (id uuid, remaining bigint, expires_at timestamptz, "position" bigint)
language plpgsql
stable
set search_path = ''
as $$
begin
  -- The draw-down order, written once: soonest expiry first (never-expiring last),
  -- promotional before paid, oldest first. remaining is the lots table's own figure.
  return query
  select g.id, g.remaining, g.expires_at,
         pg_catalog.row_number() over (order by g.expires_at, g.paid, g.created_at, g.seq)
  from ledger.lots g
  where g.account_id = lots_in_order.account_id;
end
$$;
comment on function private.lots_in_order(uuid) is
  'The account''s lots with their position in draw-down order (soonest expiry first, never-expiring last; promotional before paid; oldest first). The one place that order is written.';

create or replace function private.lot_precedes(account_id uuid, lot_id uuid, other_id uuid)
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
  return (with o as (select * from private.lots_in_order(lot_precedes.account_id))
          select (select o."position" from o where o.id = lot_id) < (select o."position" from o where o.id = other_id));
end
$$;
comment on function private.lot_precedes(uuid, uuid, uuid) is
  'Whether lot_id comes before other_id in the account''s draw-down order (private.lots_in_order).';

create or replace function private.load_lot(account_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- The caller holds the wallet lock and has settled it: the first lot in draw-down order
  -- that is live becomes the one the charging statement draws from.
  update public.credit_balances w set lot_id = f.id, lot_remaining = f.remaining
  from (select o.id, o.remaining from private.lots_in_order(load_lot.account_id) o
        where o.remaining > 0 and (o.expires_at is null or o.expires_at > private.now())
        order by o."position"
        limit 1) f
  where w.account_id = load_lot.account_id and w.lot_id is null;
end
$$;
comment on function private.load_lot(uuid) is
  'Puts the account''s first live lot in draw-down order (soonest expiry, promotional before paid, oldest) on its wallet row, so that consumption draws from it in the charging statement.';

-- ---------------------------------------------------------------------------
-- One home for the ledger insert
-- ---------------------------------------------------------------------------
create or replace function private.write_entry(
  wallet public.credit_balances,
  delta bigint,
  reason text,
  grant_id uuid default null,
  usage_event_id uuid default null,
  hold_id uuid default null,
  payment_id uuid default null,
  idempotency_key text default null,
  metadata jsonb default '{}'::jsonb,
  action text default null,
  quantity integer default null,
  usage_key text default null,
  credits_charged bigint default null
) returns void
language plpgsql
set search_path = ''
as $$
declare
  actor uuid := auth.uid();
begin
  insert into ledger.entries (account_id, delta, balance_after, available_after, reason, grant_id, usage_event_id, hold_id,
                              payment_id, idempotency_key, actor_user_id, actor_role, metadata,
                              action, quantity, credits_charged, usage_key, user_id, api_key_id)
  values (wallet.account_id, delta, wallet.balance, wallet.available, reason, grant_id, usage_event_id, hold_id,
          payment_id, idempotency_key, actor, private.actor_role(), coalesce(metadata, '{}'::jsonb),
          action, quantity, case when action is not null then coalesce(credits_charged, -delta) end, usage_key,
          case when action is not null then actor end,
          case when action is not null then nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), '')::uuid end);
end
$$;
comment on function private.write_entry(public.credit_balances, bigint, text, uuid, uuid, uuid, uuid, text, jsonb, text, integer, text, bigint) is
  'Appends one entry: a change of balance (delta <> 0) and, with an action, the usage event it records (credits_charged, by default -delta; delta 0 for usage the wallet did not pay). The only insert into ledger.entries.';

create or replace function private.write_ledger(
  wallet public.credit_balances,
  delta bigint,
  reason text,
  grant_id uuid default null,
  usage_event_id uuid default null,
  hold_id uuid default null,
  payment_id uuid default null,
  idempotency_key text default null,
  metadata jsonb default '{}'::jsonb
) returns void
language plpgsql
set search_path = ''
as $$
begin
  perform private.write_entry(wallet, delta, reason, grant_id, usage_event_id, hold_id, payment_id, idempotency_key, metadata);
end
$$;
comment on function private.write_ledger(public.credit_balances, bigint, text, uuid, uuid, uuid, uuid, text, jsonb) is
  'A ledger entry that records no usage (grants, expiry, clawbacks, rollover): private.write_entry.';

-- ---------------------------------------------------------------------------
-- One home for the low-balance signal and for the result of a consumption
-- ---------------------------------------------------------------------------
create or replace function private.signal_low_balance(wallet public.credit_balances, spent bigint, setting bigint default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  threshold bigint;
begin
  -- Once, on the crossing: available was at or above the threshold before this change.
  -- (setting: the low_balance_threshold setting, when the caller has read it already)
  if spent <= 0 then
    return;
  end if;
  threshold := coalesce(wallet.low_balance_threshold, setting, private.low_balance_threshold());
  if wallet.available < threshold and wallet.available + spent >= threshold then
    perform private.on_low_balance(wallet.account_id, wallet.available);
  end if;
end
$$;
comment on function private.signal_low_balance(public.credit_balances, bigint, bigint) is
  'Signals low balance (private.on_low_balance) when a change that took spent credits from available made it cross the wallet''s threshold (its own, else the low_balance_threshold setting).';

create or replace function private.usage_result(
  usage_event_id uuid, credits_charged bigint, balance bigint, available bigint, replayed boolean, overage_units bigint default null
) returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- plpgsql, not sql: a SQL function with a pinned search_path is not inlined and plans its
  -- query on every call.
  return pg_catalog.jsonb_build_object('usage_event_id', usage_event_id, 'credits_charged', credits_charged,
           'balance', balance, 'available', available, 'replayed', replayed)
         || case when overage_units > 0 then pg_catalog.jsonb_build_object('overage_units', overage_units) else '{}'::jsonb end;
end
$$;
comment on function private.usage_result(uuid, bigint, bigint, bigint, boolean, bigint) is
  'The result object of consume_credits, first call or replay: {usage_event_id, credits_charged, balance, available, replayed[, overage_units]}.';

-- ---------------------------------------------------------------------------
-- One home for the rate limit (GCRA) and for the quota period
-- ---------------------------------------------------------------------------
create or replace function private.gcra_admits(tat timestamptz, at timestamptz, emission interval, capacity integer)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- GCRA: a call is admitted when the theoretical arrival time it would leave is within
  -- capacity emission intervals of now (a bucket that refills one call per emission).
  return tat is null or greatest(tat, at) + emission <= at + emission * capacity;
end
$$;
comment on function private.gcra_admits(timestamptz, timestamptz, interval, integer) is
  'The rate limit on the wallet row (GCRA): whether a call at time at is admitted, given the theoretical arrival time tat, the emission interval (1 / refill per second) and the capacity. The next tat is greatest(tat, at) + emission.';

create or replace function private.period_counters(counted_from timestamptz, counters jsonb, period_start timestamptz)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- Counters belong to the period they were counted in: a new period starts from zero.
  return case when counted_from = period_start then counters else '{}'::jsonb end;
end
$$;
comment on function private.period_counters(timestamptz, jsonb, timestamptz) is
  'The quota counters of the wallet (quota_used, counted from quota_period_start) as they stand in the period starting at period_start: the same counters, or none when a new period has begun.';

-- ---------------------------------------------------------------------------
-- The charging statement
-- ---------------------------------------------------------------------------
create or replace function private.charge(
  account_id uuid,
  credits bigint,
  held_delta bigint default 0,
  emission interval default null,
  capacity integer default null,
  quantity integer default 0,
  action_key text default null,
  cap_action bigint default null,
  category_key text default null,
  cap_category bigint default null,
  period_start timestamptz default null,
  threshold bigint default null
) returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
  counts boolean := cap_action is not null or cap_category is not null;
begin
  -- One statement on the wallet row checks and charges: available credits (after held_delta),
  -- the lot being drawn covers credits, no lot is due to expire, the rate limit (GCRA on
  -- consume_tat, when emission is given) and the period's quota counters. ON CONFLICT DO
  -- UPDATE locks the existing row before it evaluates WHERE and SET, so private.now() is
  -- read once the wallet is locked. Returns all nulls when a rule refuses: the caller then
  -- takes the explanation path, which names the rule.
  if private.explanation_path_forced() then
    return wallet;
  end if;
  insert into public.credit_balances as w (account_id) values (charge.account_id)
  on conflict on constraint credit_balances_pkey do update
     set balance = w.balance - credits,
         held = w.held + held_delta,
         lot_remaining = w.lot_remaining - credits,
         updated_at = private.now(),
         low_balance_since = case when w.balance - credits - w.held - held_delta
                                       < coalesce(w.low_balance_threshold, threshold, private.low_balance_threshold())
                                  then coalesce(w.low_balance_since, private.now()) end,
         consume_tat = case when emission is null then w.consume_tat
                            else greatest(w.consume_tat, private.now()) + emission end,
         quota_period_start = case when counts then period_start else w.quota_period_start end,
         quota_used = case when not counts then w.quota_used
                           else private.count_quota(private.period_counters(w.quota_period_start, w.quota_used, period_start),
                                                    quantity, action_key, cap_action, category_key, cap_category) end
   where w.balance - credits - w.held - held_delta >= 0
     and (credits = 0 or w.lot_remaining >= credits)
     and (w.next_expiry_at is null or w.next_expiry_at > private.now())
     and (emission is null or private.gcra_admits(w.consume_tat, private.now(), emission, capacity))
     and (not counts or private.quota_fits(private.period_counters(w.quota_period_start, w.quota_used, period_start),
                                           quantity, action_key, cap_action, category_key, cap_category))
  returning w.* into wallet;
  return wallet;
end
$$;
comment on function private.charge(uuid, bigint, bigint, interval, integer, integer, text, bigint, text, bigint, timestamptz, bigint) is
  'The charging statement of consume_credits, reserve_credits and capture_credits: checks and charges the wallet row in one statement (available credits, the lot on the wallet, expiry, the rate limit, the quota counters) by the clock read once the row is locked. All nulls when a rule refuses (or ledgerbase.explanation_path = on): the caller takes the explanation path.';

create or replace function private.quota_fits(
  used jsonb, quantity integer, action_key text, cap_action bigint, category_key text, cap_category bigint
) returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (cap_action is null or quantity + coalesce((used ->> action_key)::bigint, 0) <= cap_action)
     and (cap_category is null or quantity + coalesce((used ->> category_key)::bigint, 0) <= cap_category);
end
$$;
comment on function private.quota_fits(jsonb, integer, text, bigint, text, bigint) is
  'Whether quantity more units fit the period''s counters (used) under the action''s and the category''s caps.';

create or replace function private.count_quota(
  used jsonb, quantity integer, action_key text, cap_action bigint, category_key text, cap_category bigint
) returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return used
         || case when cap_action is null then '{}'::jsonb
                 else pg_catalog.jsonb_build_object(action_key, quantity + coalesce((used ->> action_key)::bigint, 0)) end
         || case when cap_category is null then '{}'::jsonb
                 else pg_catalog.jsonb_build_object(category_key, quantity + coalesce((used ->> category_key)::bigint, 0)) end;
end
$$;
comment on function private.count_quota(jsonb, integer, text, bigint, text, bigint) is
  'The period''s counters (used) with quantity units counted for each capped key.';

-- ---------------------------------------------------------------------------
-- The wallet change of grants, expiry, holds and the explanation path
-- ---------------------------------------------------------------------------
-- (its guarded form is the charging statement now)
drop function private.set_wallet(uuid, bigint, bigint, boolean);
create or replace function private.set_wallet(account_id uuid, balance_delta bigint, held_delta bigint default 0)
returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  threshold bigint := private.low_balance_threshold();
  wallet public.credit_balances;
begin
  update public.credit_balances w
     set balance = w.balance + balance_delta,
         held = w.held + held_delta,
         updated_at = private.now(),
         low_balance_since = case when w.balance + balance_delta - w.held - held_delta
                                       < coalesce(w.low_balance_threshold, threshold)
                                  then coalesce(w.low_balance_since, private.now()) end
   where w.account_id = set_wallet.account_id
  returning w.* into wallet;
  perform private.signal_low_balance(wallet, held_delta - balance_delta, threshold);
  return wallet;
end
$$;
comment on function private.set_wallet(uuid, bigint, bigint) is
  'Applies a change to a wallet its caller has locked and returns the new row, signalling once when available falls below the wallet''s low-balance threshold (private.signal_low_balance).';

-- ---------------------------------------------------------------------------
-- The explanation path's quota counting, with the period rule in one place
-- ---------------------------------------------------------------------------
create or replace function private.use_quota(
  account_id uuid, action public.billable_actions, quantity integer, limits jsonb,
  period_start timestamptz, period_end timestamptz, mode text default 'count'
) returns text[]
language plpgsql
set search_path = ''
as $$
declare
  quota_key text;
  cap bigint;
  used bigint;
  counters jsonb;
  counted text[] := '{}';
begin
  if limits is null or jsonb_typeof(limits -> 'quotas') <> 'object'
     or not (limits -> 'quotas' ?| array[action.key, 'category:' || action.category]) then
    return counted;
  end if;
  -- The wallet row holds the counters (and is the lock that serializes the account).
  select private.period_counters(w.quota_period_start, w.quota_used, use_quota.period_start)
    into counters
  from public.credit_balances w where w.account_id = use_quota.account_id
  for update;
  foreach quota_key in array array[action.key, 'category:' || action.category] loop
    cap := (limits -> 'quotas' ->> quota_key)::bigint;
    continue when cap is null;
    used := coalesce((counters ->> quota_key)::bigint, 0);
    if mode <> 'force' and used + quantity > cap then
      raise exception using errcode = 'PT429', message = 'quota_exceeded',
        detail = pg_catalog.jsonb_build_object('quota', quota_key, 'limit', cap, 'resets_at', period_end)::text,
        hint = pg_catalog.format('resets at %s', pg_catalog.to_char(period_end at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    end if;
    counters := counters || pg_catalog.jsonb_build_object(quota_key, used + quantity);
    counted := counted || quota_key;
  end loop;
  update public.credit_balances w set quota_period_start = use_quota.period_start, quota_used = counters
  where w.account_id = use_quota.account_id;
  return counted;
end
$$;

-- ---------------------------------------------------------------------------
-- Spending on the explanation path: the wallet locked, the lots drawn in order
-- ---------------------------------------------------------------------------
create or replace function private.spend(account_id uuid, amount bigint, release_held bigint default 0)
returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
begin
  wallet := private.lock_wallet(spend.account_id);
  if amount > 0 and wallet.available + release_held < amount then
    perform private.insufficient_credits(amount, wallet.available);
  end if;
  wallet := private.set_wallet(spend.account_id, -amount, -release_held);
  perform private.draw_down(spend.account_id, amount);
  return wallet;
end
$$;
comment on function private.spend(uuid, bigint, bigint) is
  'Takes amount credits (releasing release_held held credits) from a locked wallet, drawing lots in draw-down order across as many as it takes; PT402 insufficient_credits when available does not cover it. The explanation path''s charge; returns the new wallet.';

drop function private.debit(uuid, bigint, text, uuid, uuid, bigint);

create or replace function private.draw_down(account_id uuid, amount bigint)
returns void
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  taken bigint;
begin
  -- The wallet is locked. Its lot first goes back to the lots table, then lots are drawn in
  -- draw-down order, then the next lot goes on the wallet.
  perform private.settle_lot(draw_down.account_id);
  if amount > 0 then
    with lots as (
      select o.id, o.remaining, sum(o.remaining) over (order by o."position") as upto
      from private.lots_in_order(draw_down.account_id) o
      where o.remaining > 0 and (o.expires_at is null or o.expires_at > at)
    ), take as (
      select l.id, least(l.remaining, amount - (l.upto - l.remaining)) as n
      from lots l
      where l.upto - l.remaining < amount
    ), drawn as (
      update ledger.lots g set remaining = g.remaining - take.n
      from take where g.id = take.id
      returning take.n
    )
    select coalesce(sum(n), 0) into taken from drawn;
    if taken <> amount then
      raise exception using errcode = 'XX000', message = 'credit invariant violated',
        detail = pg_catalog.format('account %s: drew %s of %s credits', account_id, taken, amount);
    end if;
  end if;
  perform private.load_lot(draw_down.account_id);
end
$$;
comment on function private.draw_down(uuid, bigint) is
  'Takes amount credits from the account''s lots in draw-down order (soonest expiry, promotional before paid, oldest first) under the wallet lock, then loads the next lot onto the wallet. Raises XX000 if the lots do not cover it (an invariant violation).';

-- ---------------------------------------------------------------------------
-- Replays
-- ---------------------------------------------------------------------------
drop function private.replay_usage(uuid, text, text, integer, jsonb);
create or replace function private.replay_usage(earlier ledger.entries, action text, quantity integer, metadata jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
  overage bigint;
begin
  if earlier.action is distinct from replay_usage.action or earlier.quantity is distinct from replay_usage.quantity
     or earlier.metadata is distinct from replay_usage.metadata then
    raise exception using errcode = 'PT409', message = 'idempotency_conflict',
      detail = 'this idempotency_key was used with other parameters',
      hint = 'use a new idempotency_key for a different request';
  end if;
  if earlier.balance_after is null then
    -- (usage recorded before this version without a change of balance)
    select w.* into wallet from public.credit_balances w where w.account_id = earlier.account_id;
    earlier.balance_after := wallet.balance;
    earlier.available_after := wallet.available;
  end if;
  select o.overage_units into overage from public.usage_overages o where o.usage_event_id = earlier.usage_event_id;
  return private.usage_result(earlier.usage_event_id, earlier.credits_charged, earlier.balance_after,
                              earlier.available_after, true, overage);
end
$$;
comment on function private.replay_usage(ledger.entries, text, integer, jsonb) is
  'The original result of a consumption repeated with its idempotency key (replayed = true), or PT409 idempotency_conflict when the action, quantity or metadata differ.';

-- ---------------------------------------------------------------------------
-- consume_credits: orchestration
-- ---------------------------------------------------------------------------
drop function private.consume_slowly(uuid, public.billable_actions, integer, bigint, uuid, jsonb, timestamptz, timestamptz, boolean, integer, numeric);

create or replace function private.consume_slowly(
  account_id uuid,
  act public.billable_actions,
  quantity integer,
  cost bigint,
  event_id uuid,
  idempotency_key text,
  metadata jsonb,
  limits jsonb,
  period_start timestamptz,
  period_end timestamptz,
  on_wallet boolean,
  capacity integer,
  refill numeric
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  wallet public.credit_balances;
  at timestamptz;
  emission interval;
  covered bigint;
  uncovered bigint := 0;
  cap bigint;
  used bigint;
begin
  -- Lock the wallet (PT404 when there is none) and expire what is due, then judge in
  -- the order of the contract: rate limit, quota, balance (with the plan's overage).
  wallet := private.lock_wallet(consume_slowly.account_id);
  if on_wallet then
    at := private.now();
    emission := pg_catalog.make_interval(secs => 1.0 / refill::float8);
    if not private.gcra_admits(wallet.consume_tat, at, emission, capacity) then
      perform private.raise_rate_limited('consume_credits', capacity, refill, wallet.consume_tat, at);
    end if;
    update public.credit_balances w set consume_tat = greatest(w.consume_tat, at) + emission
    where w.account_id = consume_slowly.account_id;
  end if;
  perform private.use_quota(consume_slowly.account_id, act, quantity, limits, period_start, period_end);

  -- Overage: what the wallet cannot cover, up to the period's cap.
  covered := cost;
  if cost > 0 and wallet.available < cost and private.overage_applies(limits, act) then
    covered := greatest(wallet.available, 0);
    uncovered := cost - covered;
    cap := (limits -> 'overage' ->> 'max_units_per_period')::bigint;
    select coalesce((private.period_counters(w.quota_period_start, w.quota_used, consume_slowly.period_start)
                     ->> 'overage:credits')::bigint, 0)
      into used
    from public.credit_balances w where w.account_id = consume_slowly.account_id;
    if used + uncovered > cap then
      raise exception using errcode = 'PT402', message = 'insufficient_credits',
        detail = pg_catalog.jsonb_build_object('required', cost, 'available', wallet.available,
          'overage_limit', cap, 'overage_used', used, 'resets_at', period_end)::text,
        hint = pg_catalog.format('buy credits: this period''s overage (%s of %s credits) is used up until %s',
          used, cap, pg_catalog.to_char(period_end at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    end if;
    update public.credit_balances w
       set quota_period_start = consume_slowly.period_start,
           quota_used = private.period_counters(w.quota_period_start, w.quota_used, consume_slowly.period_start)
                        || pg_catalog.jsonb_build_object('overage:credits', used + uncovered)
     where w.account_id = consume_slowly.account_id;
    insert into public.usage_overages (usage_event_id, account_id, action, overage_units, period_start, stripe_meter_event_name)
    values (event_id, consume_slowly.account_id, act.key, uncovered, consume_slowly.period_start,
            limits -> 'overage' ->> 'stripe_meter_event_name');
    perform private.enqueue_job('overage.meter_event', pg_catalog.jsonb_build_object('usage_event_id', event_id),
                                'overage.meter_event:' || event_id);
  end if;

  -- The balance (PT402 when available does not cover what is not overage), the lots, the
  -- entry that is both ledger entry and usage event.
  wallet := private.spend(consume_slowly.account_id, covered);
  perform private.write_entry(wallet, -covered, 'consume', usage_event_id => event_id, metadata => consume_slowly.metadata,
                              action => act.key, quantity => consume_slowly.quantity, usage_key => idempotency_key,
                              credits_charged => cost);
  return private.usage_result(event_id, cost, wallet.balance, wallet.available, false, uncovered);
end
$$;
comment on function private.consume_slowly(uuid, public.billable_actions, integer, bigint, uuid, text, jsonb, jsonb, timestamptz, timestamptz, boolean, integer, numeric) is
  'The explanation path of consume_credits: locks the wallet, expires what is due, then judges the rules in the contract''s order (rate limit PT429 rate_limited, quota PT429 quota_exceeded, balance PT402 insufficient_credits, with the plan''s overage) and charges across lots. Taken when the charging statement refuses, or always with ledgerbase.explanation_path = on.';

create or replace function public.consume_credits(
  account_id uuid,
  action text,
  quantity integer default 1,
  idempotency_key text default null,
  metadata jsonb default '{}'::jsonb
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  info record;
  act public.billable_actions;
  actor_role text;
  cost bigint;
  earlier ledger.entries;
  plan record;
  on_wallet boolean;
  capacity integer;
  refill numeric;
  emission interval;
  category_key text;
  cap_action bigint;
  cap_category bigint;
  wallet public.credit_balances;
  event_id uuid;
begin
  -- Arguments (22023), the action (PT404) and, for users, the permission (42501).
  perform private.check_usage_arguments(quantity, idempotency_key, metadata);
  select a as action_row, p.scope, p.capacity, p.refill_per_second,
         coalesce((select s.value #>> '{}' from private.settings s where s.key = 'low_balance_threshold')::bigint, 0) as threshold,
         exists (select from public.credit_balances w where w.account_id = consume_credits.account_id) as has_wallet
    into info
  from public.billable_actions a
  left join private.rate_limit_policies p on p.name = 'consume_credits'
  where a.key = consume_credits.action and a.active;
  if not found then
    raise exception using errcode = 'PT404', message = 'not_found', detail = pg_catalog.format('no active billable action %L', action);
  end if;
  act := info.action_row;
  actor_role := pg_catalog.current_setting('role');
  if actor_role in ('anon', 'authenticated') then
    perform private.require_user();
    perform private.require_permission(consume_credits.account_id, 'credits.consume');
  elsif not info.has_wallet then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such account';
  end if;
  cost := private.credit_cost(quantity, act.credits, act.unit_size);

  -- Idempotency: twins of one key take turns; the later finds the earlier's entry.
  if idempotency_key is not null then
    perform pg_catalog.pg_advisory_xact_lock(
      pg_catalog.hashtextextended(consume_credits.account_id::text || '/' || consume_credits.idempotency_key, 0));
    select l.* into earlier from ledger.entries l
    where l.account_id = consume_credits.account_id and l.usage_key = consume_credits.idempotency_key;
    if found then
      return private.replay_usage(earlier, act.key, quantity, metadata);
    end if;
  end if;

  -- The plan: the rate limit and the quotas that apply.
  plan := private.account_plan(consume_credits.account_id);
  on_wallet := coalesce(info.scope = 'account', false);
  capacity := coalesce((plan.limits #>> '{rate_limits,consume_credits,capacity}')::integer, info.capacity);
  refill := coalesce((plan.limits #>> '{rate_limits,consume_credits,refill_per_second}')::numeric, info.refill_per_second);
  if on_wallet then
    emission := pg_catalog.make_interval(secs => 1.0 / refill::float8);
  else
    -- An operator moved the policy to another scope: its bucket lives in the bucket table.
    perform private.rate_limit('consume_credits', consume_credits.account_id, plan.limits);
  end if;
  category_key := 'category:' || act.category;
  cap_action := (plan.limits -> 'quotas' ->> act.key)::bigint;
  cap_category := (plan.limits -> 'quotas' ->> category_key)::bigint;
  event_id := pg_catalog.gen_random_uuid();

  -- The common path: the charging statement, then the entry. Two row writes.
  wallet := private.charge(consume_credits.account_id, cost, 0, emission, capacity, quantity,
                           act.key, cap_action, category_key, cap_category, plan.period_start, info.threshold);
  if wallet.account_id is null then
    return private.consume_slowly(consume_credits.account_id, act, quantity, cost, event_id, idempotency_key, metadata,
                                  plan.limits, plan.period_start, plan.period_end, on_wallet, capacity, refill);
  end if;
  perform private.write_entry(wallet, -cost, 'consume', usage_event_id => event_id, metadata => metadata,
                              action => act.key, quantity => quantity, usage_key => idempotency_key);
  perform private.signal_low_balance(wallet, cost, info.threshold);
  return private.usage_result(event_id, cost, wallet.balance, wallet.available, false);
end
$$;
comment on function public.consume_credits(uuid, text, integer, text, jsonb) is
  'Charges ceil(quantity * credits / unit_size) credits for an action and records the usage, in one transaction: permission credits.consume, idempotency, rate limit, plan quota, balance check, draw-down, ledger. The common path writes two rows: the wallet (private.charge) and one entry that is both ledger entry and usage event. Returns {usage_event_id, credits_charged, balance, available, replayed}. Errors: PT402 insufficient_credits, PT429 rate_limited / quota_exceeded, PT409 idempotency_conflict, PT404 not_found, 22023 invalid_input, 42501.';

-- ---------------------------------------------------------------------------
-- reserve_credits and capture_credits use the same charging statement
-- ---------------------------------------------------------------------------
create or replace function public.reserve_credits(account_id uuid, action text, quantity integer default 1,
                                                  idempotency_key text default null, ttl_seconds integer default 900)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  act public.billable_actions;
  cost bigint;
  plan record;
  hold public.credit_holds;
  wallet public.credit_balances;
  max_ttl integer := coalesce((private.setting('max_hold_seconds') #>> '{}')::integer, 86400);
begin
  perform private.check_usage_arguments(quantity, idempotency_key, '{}'::jsonb);
  if ttl_seconds is null or ttl_seconds < 1 or ttl_seconds > max_ttl then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('ttl_seconds must be between 1 and %s', max_ttl);
  end if;
  act := private.find_action(action);
  perform private.authorize_wallet(reserve_credits.account_id, 'credits.consume');
  cost := private.credit_cost(quantity, act.credits, act.unit_size);

  insert into public.credit_holds (account_id, user_id, action, quantity, credits_per_unit, unit_size, amount, expires_at, idempotency_key)
  values (reserve_credits.account_id, auth.uid(), act.key, quantity, act.credits, act.unit_size, cost,
          private.now() + pg_catalog.make_interval(secs => ttl_seconds), idempotency_key)
  on conflict on constraint credit_holds_idempotency_key do nothing
  returning * into hold;
  if hold.id is null then
    select h.* into hold from public.credit_holds h
    where h.account_id = reserve_credits.account_id and h.idempotency_key = reserve_credits.idempotency_key;
    if hold.action <> act.key or hold.quantity <> quantity then
      raise exception using errcode = 'PT409', message = 'idempotency_conflict',
        detail = 'this idempotency_key was used with other parameters', hint = 'use a new idempotency_key for a different request';
    end if;
    select w.* into wallet from public.credit_balances w where w.account_id = reserve_credits.account_id;
    return pg_catalog.jsonb_build_object('hold_id', hold.id, 'amount', hold.amount, 'expires_at', hold.expires_at,
      'available', wallet.available, 'replayed', true);
  end if;

  select * into plan from private.account_plan(reserve_credits.account_id);
  perform private.rate_limit('reserve_credits', reserve_credits.account_id, plan.limits);
  -- A hold counts its units against the quota now, so holds cannot overrun it together.
  update public.credit_holds h
     set quota_keys = private.use_quota(reserve_credits.account_id, act, reserve_credits.quantity, plan.limits,
                                        plan.period_start, plan.period_end),
         quota_period_start = plan.period_start
   where h.id = hold.id;

  wallet := private.charge(reserve_credits.account_id, 0, cost);
  if wallet.account_id is null then
    wallet := private.lock_wallet(reserve_credits.account_id);
    if wallet.available < cost then
      perform private.insufficient_credits(cost, wallet.available);
    end if;
    wallet := private.set_wallet(reserve_credits.account_id, 0, cost);
  else
    perform private.signal_low_balance(wallet, cost);
  end if;
  return pg_catalog.jsonb_build_object('hold_id', hold.id, 'amount', cost, 'expires_at', hold.expires_at,
    'available', wallet.available, 'replayed', false);
end
$$;
comment on function public.reserve_credits(uuid, text, integer, text, integer) is
  'Holds the cost of quantity units for ttl_seconds (default 900, at most max_hold_seconds): counts the units against the quotas and the credits against available (private.charge). Returns {hold_id, amount, expires_at, available, replayed}. Errors as consume_credits.';

create or replace function public.capture_credits(hold_id uuid, quantity integer default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  hold public.credit_holds;
  units integer;
  charge bigint;
  event_id uuid := pg_catalog.gen_random_uuid();
  wallet public.credit_balances;
begin
  if quantity is not null and quantity < 1 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'quantity must be a positive integer';
  end if;
  -- A stranger's hold answers as an unknown one; who may use it, and its lock (wallet
  -- first): private.lock_hold.
  perform private.require_known_hold(hold_id);
  hold := private.lock_hold(hold_id);
  if quantity > hold.quantity then
    raise exception using errcode = '22023', message = 'invalid_input',
      detail = pg_catalog.format('quantity must not exceed the %s unit%s reserved by the hold',
                                 hold.quantity, case when hold.quantity = 1 then '' else 's' end),
      hint = 'reserve a larger hold, or consume the extra units with consume_credits';
  end if;
  if hold.status = 'captured' then
    select w.* into wallet from public.credit_balances w where w.account_id = hold.account_id;
    return pg_catalog.jsonb_build_object('usage_event_id', hold.usage_event_id, 'credits_charged', hold.credits_charged,
      'released', 0, 'balance', wallet.balance, 'available', wallet.available, 'replayed', true);
  end if;
  if hold.status <> 'held' or hold.expires_at <= private.now() then
    raise exception using errcode = 'PT410', message = 'gone', detail = pg_catalog.format('the hold is %s',
      case when hold.status = 'held' then 'expired' else hold.status end);
  end if;

  units := coalesce(quantity, hold.quantity);
  charge := least(private.credit_cost(units, hold.credits_per_unit, hold.unit_size), hold.amount);
  -- The hold counted hold.quantity units against the quotas when reserved: the units not
  -- captured go back, so the quotas count only what was captured.
  perform private.return_quota(hold, hold.quantity - units);

  -- The charging statement takes the charge and releases the hold; across lots, the
  -- explanation path.
  wallet := private.charge(hold.account_id, charge, -hold.amount);
  if wallet.account_id is null then
    wallet := private.spend(hold.account_id, charge, release_held => hold.amount);
  end if;
  perform private.write_entry(wallet, -charge, 'capture', usage_event_id => event_id, hold_id => hold.id,
                              action => hold.action, quantity => units);
  update public.credit_holds h set status = 'captured', credits_charged = charge, usage_event_id = event_id, settled_at = private.now()
  where h.id = hold.id;
  return pg_catalog.jsonb_build_object('usage_event_id', event_id, 'credits_charged', charge,
    'released', hold.amount - charge, 'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
end
$$;
comment on function public.capture_credits(uuid, integer) is
  'Charges a hold: the cost of quantity units (default and at most the reserved quantity, else 22023 invalid_input) at the reserved price, at most the held amount, and releases the rest; quotas keep only the captured units. One entry records the charge and the usage. Returns {usage_event_id, credits_charged, released, balance, available, replayed}; capturing twice replays. PT410 gone for a released or expired hold.';

-- ---------------------------------------------------------------------------
-- The lots: every path that reads or changes them settles the wallet's lot first
-- ---------------------------------------------------------------------------

create or replace function private.grant_credits(account_id uuid, amount bigint, source text, expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone, idempotency_key text DEFAULT NULL::text, payment_id uuid DEFAULT NULL::uuid, metadata jsonb DEFAULT '{}'::jsonb)
 RETURNS uuid
 LANGUAGE plpgsql
 SET search_path TO ''
AS $$
declare
  existing uuid;
  wallet public.credit_balances;
  debt ledger.lots;
  lot ledger.lots;
  repaid bigint := 0;
  grant_id uuid;
begin
  if amount is null or amount <= 0 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a grant must be a positive number of credits';
  end if;
  if source is null or source = 'clawback' then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('invalid grant source %L', source);
  end if;
  if expires_at is not null and expires_at <= private.now() then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a grant cannot expire in the past';
  end if;
  wallet := private.lock_wallet(grant_credits.account_id);
  if idempotency_key is not null then
    select g.id into existing from ledger.lots g
    where g.account_id = grant_credits.account_id and g.idempotency_key = grant_credits.idempotency_key;
    if found then
      return existing;
    end if;
  end if;

  -- New credits repay a debt first.
  select g.* into debt from ledger.lots g
  where g.account_id = grant_credits.account_id and g.source = 'clawback' and g.remaining < 0;
  if found then
    repaid := least(amount, -debt.remaining);
    update ledger.lots set remaining = remaining + repaid where id = debt.id;
  end if;

  insert into ledger.lots (account_id, source, amount, remaining, expires_at, payment_id, idempotency_key, metadata)
  values (grant_credits.account_id, source, amount, amount - repaid, expires_at, payment_id, idempotency_key, coalesce(metadata, '{}'::jsonb))
  returning * into lot;
  grant_id := lot.id;
  -- (a debt lot is never the one on the wallet: the wallet's figure stays right)

  if expires_at is not null and amount > repaid then
    update public.credit_balances w set next_expiry_at = least(w.next_expiry_at, grant_credits.expires_at)
    where w.account_id = grant_credits.account_id;
  end if;
  wallet := private.set_wallet(grant_credits.account_id, amount);
  perform private.write_ledger(wallet, amount, source, grant_id => grant_id, payment_id => grant_credits.payment_id,
                               idempotency_key => grant_credits.idempotency_key, metadata => grant_credits.metadata);
  -- The new lot goes on the wallet when it comes first in draw-down order.
  if wallet.lot_id is null or private.lot_precedes(grant_credits.account_id, grant_id, wallet.lot_id) then
    perform private.settle_lot(grant_credits.account_id);
    perform private.load_lot(grant_credits.account_id);
  end if;
  return grant_id;
end
$$;

create or replace function private.clawback_credits(account_id uuid, amount bigint, reason text DEFAULT 'clawback'::text, idempotency_key text DEFAULT NULL::text, from_grant uuid DEFAULT NULL::uuid, payment_id uuid DEFAULT NULL::uuid, metadata jsonb DEFAULT '{}'::jsonb)
 RETURNS credit_balances
 LANGUAGE plpgsql
 SET search_path TO ''
AS $$
declare
  wallet public.credit_balances;
  from_lot bigint := 0;
  from_payment bigint := 0;
  from_others bigint;
  owed bigint;
  positive bigint;
begin
  if amount is null or amount <= 0 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a clawback must be a positive number of credits';
  end if;
  if reason not in ('clawback', 'admin_adjust') then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('invalid clawback reason %L', reason);
  end if;
  wallet := private.lock_wallet(clawback_credits.account_id);
  if idempotency_key is not null and exists (
    select from public.credit_ledger l
    where l.account_id = clawback_credits.account_id and l.idempotency_key = clawback_credits.idempotency_key
  ) then
    return wallet;
  end if;

  -- Credits taken in draw-down order from what is available: the charging statement does it
  -- in one row write when the lot on the wallet covers them.
  if from_grant is null and payment_id is null then
    wallet := private.charge(clawback_credits.account_id, amount);
    if wallet.account_id is not null then
      perform private.signal_low_balance(wallet, amount);
      perform private.write_ledger(wallet, -amount, reason, idempotency_key => clawback_credits.idempotency_key,
                                   metadata => clawback_credits.metadata);
      return wallet;
    end if;
  end if;
  perform private.settle_lot(clawback_credits.account_id);

  -- The credits being taken back come first from the lot they were granted in.
  if from_grant is not null then
    select least(g.remaining, clawback_credits.amount) into from_lot from ledger.lots g
    where g.id = from_grant and g.account_id = clawback_credits.account_id and g.remaining > 0
      and (g.expires_at is null or g.expires_at > private.now());
    from_lot := coalesce(from_lot, 0);
    update ledger.lots set remaining = remaining - from_lot where id = from_grant and from_lot > 0;
  end if;

  -- Then from the other lots the payment still delivers (rolled over, given back), soonest
  -- expiry first.
  if payment_id is not null and from_lot < amount then
    with lots as (
      select g.id, g.remaining,
             sum(g.remaining) over (order by g.expires_at, g.created_at, g.seq) as upto
      from ledger.lots g
      where g.account_id = clawback_credits.account_id and g.payment_id = clawback_credits.payment_id
        and g.id is distinct from from_grant and g.source <> 'clawback' and g.remaining > 0
        and (g.expires_at is null or g.expires_at > private.now())
    ), take as (
      select l.id, least(l.remaining, clawback_credits.amount - from_lot - (l.upto - l.remaining)) as n
      from lots l where l.upto - l.remaining < clawback_credits.amount - from_lot
    ), taken as (
      update ledger.lots g set remaining = g.remaining - take.n
      from take where g.id = take.id
      returning take.n
    )
    select coalesce(sum(n), 0) into from_payment from taken;
  end if;

  select coalesce(sum(g.remaining), 0) into positive from ledger.lots g
  where g.account_id = clawback_credits.account_id and g.remaining > 0
    and (g.expires_at is null or g.expires_at > private.now());
  from_others := least(clawback_credits.amount - from_lot - from_payment, positive);
  perform private.draw_down(clawback_credits.account_id, from_others);

  -- What could not be taken back is owed: a debt lot that new grants repay.
  owed := amount - from_lot - from_payment - from_others;
  if owed > 0 then
    update ledger.lots g set amount = g.amount - owed, remaining = g.remaining - owed
    where g.account_id = clawback_credits.account_id and g.source = 'clawback' and g.remaining < 0;
    if not found then
      insert into ledger.lots (account_id, source, amount, remaining, payment_id, metadata)
      values (clawback_credits.account_id, 'clawback', -owed, -owed, payment_id, coalesce(metadata, '{}'::jsonb));
    end if;
  end if;

  wallet := private.set_wallet(clawback_credits.account_id, -amount);
  perform private.write_ledger(wallet, -amount, reason, grant_id => from_grant, payment_id => clawback_credits.payment_id,
                               idempotency_key => clawback_credits.idempotency_key, metadata => clawback_credits.metadata);
  perform private.shrink_holds(clawback_credits.account_id);
  select w.* into wallet from public.credit_balances w where w.account_id = clawback_credits.account_id;
  return wallet;
end
$$;

create or replace function private.expire_account_grants(account_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $$
declare
  at timestamptz := private.now();
  lot ledger.lots;
  wallet public.credit_balances;
  rolled bigint;
  expired integer := 0;
begin
  perform private.settle_lot(expire_account_grants.account_id);
  for lot in
    select g.* from ledger.lots g
    where g.account_id = expire_account_grants.account_id and g.remaining > 0 and g.expires_at <= at
    order by g.expires_at, g.id
  loop
    rolled := case when lot.source = 'subscription' then private.roll_over(lot) else 0 end;
    update ledger.lots set remaining = 0 where id = lot.id;
    if lot.remaining > rolled then
      wallet := private.set_wallet(expire_account_grants.account_id, -(lot.remaining - rolled));
      perform private.write_ledger(wallet, -(lot.remaining - rolled), 'expire', grant_id => lot.id);
    end if;
    expired := expired + 1;
  end loop;
  update public.credit_balances w
     set next_expiry_at = (select min(g.expires_at) from ledger.lots g
                           where g.account_id = w.account_id and g.remaining > 0 and g.expires_at is not null)
   where w.account_id = expire_account_grants.account_id;
  if expired > 0 then
    perform private.shrink_holds(expire_account_grants.account_id);
  end if;
  perform private.load_lot(expire_account_grants.account_id);
  return expired;
end
$$;

create or replace function private.roll_over(lot ledger.lots)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $$
declare
  p public.payments;
  sub public.subscriptions;
  settings jsonb;
  period interval;
  cap bigint;
  carried bigint;
  moved bigint;
  expiry timestamptz;
  rolled_id uuid;
  wallet public.credit_balances;
  meta jsonb;
begin
  if lot.source <> 'subscription' or lot.payment_id is null or lot.remaining <= 0
     or lot.expires_at is null or lot.metadata ? 'rolled_from' then
    return 0;
  end if;
  select x.* into p from public.payments x where x.id = lot.payment_id and x.kind = 'subscription_invoice';
  if not found or p.stripe_subscription_id is null then
    return 0;
  end if;
  select pl.rollover into settings from public.plans pl where pl.key = coalesce(p.item_key, lot.metadata ->> 'item');
  if settings is null then
    return 0;
  end if;
  select s.* into sub from public.subscriptions s where s.stripe_subscription_id = p.stripe_subscription_id;
  if not found or sub.status not in ('active', 'trialing', 'past_due') or sub.cancel_at_period_end
     or sub.ended_at is not null or (sub.cancel_at is not null and sub.cancel_at <= lot.expires_at) then
    return 0; -- the subscription does not go on: nothing to carry into
  end if;

  period := coalesce(nullif(p.period_end - p.period_start, interval '0'), interval '1 month');
  expiry := lot.expires_at + period * (settings ->> 'periods')::integer;
  if expiry <= private.now() then
    return 0; -- it would already be over: it simply expires
  end if;
  cap := (settings ->> 'max_credits')::bigint * greatest(coalesce(p.quantity, 1), 1);
  select coalesce(sum(g.remaining), 0) into carried from ledger.lots g
  where g.account_id = lot.account_id and g.remaining > 0 and g.expires_at > lot.expires_at
    and g.metadata ->> 'subscription_id' = p.stripe_subscription_id and g.metadata ? 'rolled_from';
  moved := least(lot.remaining, greatest(cap - carried, 0));
  if moved <= 0 then
    return 0;
  end if;

  meta := pg_catalog.jsonb_build_object('payment_id', p.id, 'kind', 'rollover', 'item', p.item_key,
    'subscription_id', p.stripe_subscription_id, 'rolled_from', lot.id, 'cap', cap, 'periods', (settings ->> 'periods')::integer);
  update ledger.lots g set remaining = g.remaining - moved where g.id = lot.id;
  wallet := private.set_wallet(lot.account_id, -moved);
  perform private.write_ledger(wallet, -moved, 'rollover', grant_id => lot.id, payment_id => p.id, metadata => meta);
  insert into ledger.lots (account_id, source, amount, remaining, expires_at, payment_id, idempotency_key, metadata)
  values (lot.account_id, 'subscription', moved, moved, expiry, p.id, 'rollover:' || lot.id, meta)
  returning id into rolled_id;
  wallet := private.set_wallet(lot.account_id, moved);
  perform private.write_ledger(wallet, moved, 'rollover', grant_id => rolled_id, payment_id => p.id, metadata => meta);
  return moved;
end
$$;

create or replace function private.record_auto_topup_payment(attempt_id uuid, charge_id text, livemode boolean DEFAULT NULL::boolean)
 RETURNS payments
 LANGUAGE plpgsql
 SET search_path TO ''
AS $$
declare
  a public.auto_topup_attempts;
  p public.payments;
begin
  select x.* into a from public.auto_topup_attempts x
  where x.id = record_auto_topup_payment.attempt_id and x.status = 'succeeded' and x.grant_id is not null;
  if a.id is null then
    return null;
  end if;
  insert into public.payments (account_id, kind, item_key, quantity, amount, currency, expected_amount, settlement, status,
                               stripe_payment_intent_id, stripe_charge_id, stripe_customer_id, credits_due, credits_granted,
                               grant_id, billing_reason, paid_at, livemode, created_at, updated_at)
  values (a.account_id, 'credit_pack', a.credit_pack, 1, a.amount, a.currency, a.amount, 'paid', 'paid',
          a.stripe_payment_intent_id, record_auto_topup_payment.charge_id,
          (select c.stripe_customer_id from public.billing_customers c where c.account_id = a.account_id and c.status = 'active'),
          a.credits, a.credits, a.grant_id, 'auto_topup', coalesce(a.finished_at, private.now()),
          record_auto_topup_payment.livemode, coalesce(a.finished_at, private.now()), private.now())
  on conflict (stripe_payment_intent_id) where billing_reason = 'auto_topup' do nothing
  returning * into p;
  if p.id is null then
    select x.* into p from public.payments x
    where x.stripe_payment_intent_id = a.stripe_payment_intent_id and x.billing_reason = 'auto_topup';
    return p;
  end if;
  -- The lot the top-up granted belongs to the payment: a clawback draws from it first.
  update ledger.lots g set payment_id = p.id where g.id = a.grant_id and g.payment_id is null;
  perform private.audit_payment(null, p);
  -- A refund or dispute that arrived before the payment existed applies now.
  return private.sync_payment(p.id);
end
$$;

create or replace function private.delete_account_history()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $$
begin
  -- As the table owner, like the cascade it replaces: the role deleting the account needs
  -- no rights on these tables. Called from a trigger, so the append-only triggers let
  -- these deletes through.
  delete from ledger.entries l where l.account_id = old.id;
  return null;
end
$$;

create or replace function private.fold_usage_events()
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $$
declare
  state private.usage_fold_state;
  own xid8 := pg_catalog.pg_current_xact_id_if_assigned();
  boundary xid8;
  folded bigint;
begin
  -- Folders take turns (the row lock); consuming transactions never wait for them.
  select s.* into state from private.usage_fold_state s where s.singleton for update;
  -- A new snapshot, taken after the lock: below its xmin every transaction has finished, so
  -- every event of theirs that will ever exist is visible now. The caller's own events wait
  -- for the next fold (they are not committed yet).
  boundary := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
  if own is not null and own < boundary then
    boundary := own;
  end if;
  if boundary <= state.folded_below then
    return 0;
  end if;
  -- New full page ranges get their summary, so the next scans skip them.
  perform pg_catalog.brin_summarize_new_values('ledger.entries_writer_brin'::pg_catalog.regclass);

  with batch as (
    select e.account_id, pg_catalog.date_trunc('hour', e.created_at, 'UTC') as hour, e.action, e.api_key_id, e.user_id,
           sum(e.quantity)::bigint as quantity, sum(e.credits_charged)::bigint as credits, count(*) as events
    from ledger.entries e
    where e.action is not null
      and (e.writer_xid::text)::bigint >= (state.folded_below::text)::bigint
      and (e.writer_xid::text)::bigint < (boundary::text)::bigint
    group by 1, 2, 3, 4, 5
  ), merged as (
    insert into private.usage_rollup as r (account_id, hour, action, api_key_id, user_id, quantity, credits, events)
    select b.account_id, b.hour, b.action, b.api_key_id, b.user_id, b.quantity, b.credits, b.events from batch b
    on conflict on constraint usage_rollup_key do update
      set quantity = r.quantity + excluded.quantity,
          credits = r.credits + excluded.credits,
          events = r.events + excluded.events
  )
  -- (a data-modifying CTE always runs to completion, referenced or not)
  select coalesce(sum(b.events), 0) into folded from batch b;

  update private.usage_fold_state s
     set folded_below = boundary, folded_at = pg_catalog.now(), events_folded = s.events_folded + folded
   where s.singleton;
  return folded;
end
$$;
