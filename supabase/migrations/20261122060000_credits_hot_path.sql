-- Credits: the hot path of consume_credits.
--
-- What a consumption costs is mostly how many statements it runs and how many rows it
-- locks, not what it computes. This migration reshapes the hot path:
--
--   * Lot updates are HOT. No index of credit_grants mentions `remaining` any more (not
--     even in a predicate), so drawing a lot down rewrites the heap tuple in place
--     instead of adding an entry to every index of the table. The sweeper finds wallets
--     due for expiry through credit_balances.next_expiry_at instead.
--   * One per-account row is locked, and it is locked late. The consume_credits rate
--     limit (scope account) keeps its GCRA timestamp on the wallet row, and the plan
--     quotas their counters of the current period; both are checked and advanced by the
--     same conditional UPDATE that checks and charges the balance. The usage event (the
--     idempotency claim) and the plan lookup happen before it. On one busy account the
--     calls queue only for: wallet, lot, ledger, commit.
--   * The lot draw-down and the ledger entry are one statement, run once the wallet row is
--     locked (so that it sees every lot committed before the lock was granted).
--   * usage_events and credit_ledger no longer carry foreign keys to accounts: the check
--     took a KEY SHARE lock on the account row for every entry (one row shared by every
--     concurrent call of the account). Rows are only written by the credit functions
--     after the wallet (which keeps its foreign key) is found; deleting an account
--     deletes its history by trigger instead of by cascade.
--
-- Anything unusual (a lot due to expire, too few credits, an empty rate-limit bucket, a
-- quota reached, a draw-down spanning lots) falls back to the general path of the credits migration,
-- under the same wallet lock, with the same errors.

-- ---------------------------------------------------------------------------
-- Lots: HOT draw-downs
-- ---------------------------------------------------------------------------
drop index public.credit_grants_drawdown_idx;
create index credit_grants_drawdown_idx on public.credit_grants (account_id, expires_at, paid, created_at, seq);
comment on index public.credit_grants_drawdown_idx is
  'Draw-down order per account. Deliberately without a predicate on remaining: an index that mentions remaining (even in WHERE) makes every draw-down a non-HOT update.';
drop index public.credit_grants_expiry_idx;
-- One open debt per account is kept by the clawback code under the wallet lock (its
-- unique index had remaining in its predicate).
drop index public.credit_grants_one_debt_idx;
alter table public.credit_grants set (fillfactor = 80);
alter table public.credit_balances set (fillfactor = 80);

create index credit_balances_next_expiry_idx on public.credit_balances (next_expiry_at) where next_expiry_at is not null;
comment on index public.credit_balances_next_expiry_idx is 'The expiry sweeper''s way to the wallets with lots due.';

-- next_expiry_at may be early, never late: make sure of it for existing wallets.
update public.credit_balances w
   set next_expiry_at = (select min(g.expires_at) from public.credit_grants g
                         where g.account_id = w.account_id and g.remaining > 0 and g.expires_at is not null)
 where w.next_expiry_at is distinct from (select min(g.expires_at) from public.credit_grants g
                                          where g.account_id = w.account_id and g.remaining > 0 and g.expires_at is not null);

create or replace function private.expire_credit_grants()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  candidate record;
  expired integer := 0;
begin
  for candidate in
    select w.account_id from public.credit_balances w
    where w.next_expiry_at <= private.now()
  loop
    perform from public.credit_balances w where w.account_id = candidate.account_id for update skip locked;
    continue when not found;
    expired := expired + private.expire_account_grants(candidate.account_id);
  end loop;
  perform private.release_expired_holds();
  return expired;
end
$$;
comment on function private.expire_credit_grants() is
  'Expires every lot past its expiry (one expire ledger entry each), finding the wallets through next_expiry_at, and releases expired holds. Idempotent and safe to run concurrently (pg_cron, or the test runner); returns how many lots it expired.';

-- ---------------------------------------------------------------------------
-- History without foreign keys to accounts
-- ---------------------------------------------------------------------------
alter table public.usage_events drop constraint usage_events_account_id_fkey;
alter table public.credit_ledger drop constraint credit_ledger_account_id_fkey;
comment on column public.usage_events.account_id is
  'The account charged. Not a foreign key on purpose (a KEY SHARE lock on the account row per event): written only by the credit functions once the wallet is found, and deleted with the account by trigger.';
comment on column public.credit_ledger.account_id is
  'The wallet''s account. Not a foreign key on purpose (a KEY SHARE lock on the account row per entry): written only by the credit functions under the wallet lock, and deleted with the account by trigger.';

create or replace function private.delete_account_history()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- As the table owner, like the cascade it replaces: the role deleting the account needs
  -- no rights on these tables. Called from a trigger, so the append-only triggers let
  -- these deletes through.
  delete from public.usage_events e where e.account_id = old.id;
  delete from public.credit_ledger l where l.account_id = old.id;
  return null;
end
$$;
comment on function private.delete_account_history() is
  'Trigger: deleting an account deletes its usage events and ledger (what the foreign keys used to cascade).';
create trigger accounts_delete_history after delete on public.accounts
  for each row execute function private.delete_account_history();

-- ---------------------------------------------------------------------------
-- The consume_credits rate limit on the wallet row
-- ---------------------------------------------------------------------------
alter table public.credit_balances add column consume_tat timestamptz;
comment on column public.credit_balances.consume_tat is
  'GCRA theoretical arrival time of the consume_credits rate-limit policy when its scope is account (kept here so a consumption locks one row per account).';

-- ---------------------------------------------------------------------------
-- Plan quotas on the wallet row
-- ---------------------------------------------------------------------------
alter table public.credit_balances
  add column quota_period_start timestamptz,
  add column quota_used jsonb not null default '{}'::jsonb;
comment on column public.credit_balances.quota_period_start is
  'The billing period quota_used counts in; a call in a later period starts the counters from zero.';
comment on column public.credit_balances.quota_used is
  'Units used this period per quota key (an action, or category:<name>) that the plan caps in plans.limits.quotas.';

-- The counters of the current period move onto the wallets; older periods are history.
update public.credit_balances w
   set quota_period_start = c.period_start, quota_used = c.used
  from (select u.account_id, u.period_start, jsonb_object_agg(u.key, u.used) as used
        from private.usage_counters u
        where u.period_start = (select max(l.period_start) from private.usage_counters l where l.account_id = u.account_id)
        group by u.account_id, u.period_start) c
 where w.account_id = c.account_id;
drop table private.usage_counters;

create or replace function private.use_quota(
  account_id uuid,
  action public.billable_actions,
  quantity integer,
  limits jsonb,
  period_start timestamptz,
  period_end timestamptz,
  mode text default 'count'
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
  select case when w.quota_period_start = use_quota.period_start then w.quota_used else '{}'::jsonb end
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
comment on function private.use_quota(uuid, public.billable_actions, integer, jsonb, timestamptz, timestamptz, text) is
  'Counts units against the plan''s quotas for the action and its category in this billing period (on the wallet row, which it locks), or raises PT429 quota_exceeded with the reset time in the hint; returns the quota keys it counted. mode: count (check and count), force (count, never refuse: work already done).';

create or replace function private.return_quota(hold public.credit_holds, units integer)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if units <= 0 or hold.quota_period_start is null or cardinality(hold.quota_keys) = 0 then
    return;
  end if;
  -- Only into the period the hold counted in: a new period has started from zero.
  update public.credit_balances w
     set quota_used = w.quota_used || coalesce(
           (select pg_catalog.jsonb_object_agg(e.key, greatest(e.value::bigint - units, 0))
            from pg_catalog.jsonb_each_text(w.quota_used) e
            where e.key = any (hold.quota_keys)), '{}'::jsonb)
   where w.account_id = hold.account_id and w.quota_period_start = hold.quota_period_start;
end
$$;
comment on function private.return_quota(public.credit_holds, integer) is
  'Gives back quota units a hold counted when it was reserved and did not use (released, expired, captured for less), if its period is still the current one.';

create or replace function private.raise_rate_limited(
  policy text,
  capacity integer,
  refill_per_second numeric,
  tat timestamptz,
  at timestamptz
) returns void
language plpgsql
set search_path = ''
as $$
declare
  emission interval := pg_catalog.make_interval(secs => 1.0 / refill_per_second::float8);
  retry_after integer := greatest(1, ceil(extract(epoch from greatest(tat, at) + emission - emission * capacity - at))::integer);
begin
  raise exception using
    errcode = 'PT429',
    message = 'rate_limited',
    detail = pg_catalog.jsonb_build_object('policy', policy, 'capacity', capacity,
               'refill_per_second', refill_per_second, 'retry_after_seconds', retry_after)::text,
    hint = pg_catalog.format('retry after %s second%s', retry_after, case when retry_after = 1 then '' else 's' end);
end
$$;
comment on function private.raise_rate_limited(text, integer, numeric, timestamptz, timestamptz) is
  'Raises PT429 rate_limited for a GCRA bucket whose theoretical arrival time is tat, with the seconds to wait (as private.check_rate_limit does).';

-- ---------------------------------------------------------------------------
-- consume_credits
-- ---------------------------------------------------------------------------
create or replace function private.consume_slowly(
  account_id uuid,
  act public.billable_actions,
  quantity integer,
  cost bigint,
  event_id uuid,
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
begin
  -- Lock the wallet (PT404 when there is none) and expire what is due, then judge in
  -- the order of the contract: rate limit, quota, balance.
  wallet := private.lock_wallet(consume_slowly.account_id);
  if on_wallet then
    at := private.now();
    emission := pg_catalog.make_interval(secs => 1.0 / refill::float8);
    if greatest(wallet.consume_tat, at) + emission > at + emission * capacity then
      perform private.raise_rate_limited('consume_credits', capacity, refill, wallet.consume_tat, at);
    end if;
    update public.credit_balances w set consume_tat = greatest(w.consume_tat, at) + emission
    where w.account_id = consume_slowly.account_id;
  end if;
  perform private.use_quota(consume_slowly.account_id, act, quantity, limits, period_start, period_end);
  if cost > 0 then
    wallet := private.debit(consume_slowly.account_id, cost, 'consume', usage_event_id => event_id);
  else
    select w.* into wallet from public.credit_balances w where w.account_id = consume_slowly.account_id;
  end if;
  return pg_catalog.jsonb_build_object('usage_event_id', event_id, 'credits_charged', cost,
    'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
end
$$;
comment on function private.consume_slowly(uuid, public.billable_actions, integer, bigint, uuid, jsonb, timestamptz, timestamptz, boolean, integer, numeric) is
  'The general path of consume_credits when its one-statement fast path does not apply: locks the wallet, expires what is due, then applies the rate limit (PT429 rate_limited), the quota (PT429 quota_exceeded) and the charge (PT402 insufficient_credits), in that order.';

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
  at timestamptz := coalesce(nullif(pg_catalog.current_setting('ledgerbase.now', true), '')::timestamptz,
                             pg_catalog.clock_timestamp());
  info record;
  act public.billable_actions;
  threshold bigint;
  cost bigint;
  event_id uuid;
  plan record;
  on_wallet boolean;
  capacity integer;
  refill numeric;
  emission interval;
  category_key text;
  cap_action bigint;
  cap_category bigint;
  wallet record;
  drawn integer;
  actor uuid := auth.uid();
  actor_role text;
begin
  -- Arguments (22023), the action (PT404) and, for users, the permission (42501).
  perform private.check_usage_arguments(quantity, idempotency_key, metadata);
  select a as action_row, p.scope, p.capacity, p.refill_per_second,
         coalesce((select s.value #>> '{}' from private.settings s where s.key = 'low_balance_threshold')::bigint, 0) as threshold
    into info
  from public.billable_actions a
  left join private.rate_limit_policies p on p.name = 'consume_credits'
  where a.key = consume_credits.action and a.active;
  if not found then
    raise exception using errcode = 'PT404', message = 'not_found', detail = pg_catalog.format('no active billable action %L', action);
  end if;
  act := info.action_row;
  threshold := info.threshold;
  category_key := 'category:' || act.category;
  actor_role := pg_catalog.current_setting('role');
  if actor_role in ('anon', 'authenticated') then
    perform private.require_user();
    perform private.require_permission(consume_credits.account_id, 'credits.consume');
  else
    actor_role := case when actor_role = 'service_role' then actor_role else 'system' end;
  end if;
  cost := (quantity::bigint * act.credits + act.unit_size - 1) / act.unit_size;

  -- Claim the idempotency key first: a concurrent twin waits here, then replays.
  insert into public.usage_events (account_id, user_id, action, quantity, credits_charged, idempotency_key, metadata, api_key_id)
  values (consume_credits.account_id, actor, act.key, quantity, cost, idempotency_key, metadata,
          nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), '')::uuid)
  on conflict (account_id, idempotency_key) where idempotency_key is not null do nothing
  returning id into event_id;
  if event_id is null then
    return private.replay_usage(consume_credits.account_id, idempotency_key, act.key, quantity, metadata);
  end if;

  plan := private.account_plan(consume_credits.account_id);
  on_wallet := coalesce(info.scope = 'account', false);
  capacity := coalesce((plan.limits #>> '{rate_limits,consume_credits,capacity}')::integer, info.capacity);
  refill := coalesce((plan.limits #>> '{rate_limits,consume_credits,refill_per_second}')::numeric, info.refill_per_second);
  cap_action := (plan.limits -> 'quotas' ->> act.key)::bigint;
  cap_category := (plan.limits -> 'quotas' ->> category_key)::bigint;
  if on_wallet then
    emission := pg_catalog.make_interval(secs => 1.0 / refill::float8);
  else
    -- An operator moved the policy to another scope: its bucket lives in the bucket table.
    perform private.rate_limit('consume_credits', consume_credits.account_id, plan.limits);
  end if;

  -- The fast path. First one statement on the wallet row: the rate limit, the quotas, the
  -- balance and the charge (its lock, taken here, serializes the account).
  update public.credit_balances w
     set balance = w.balance - cost,
         updated_at = at,
         low_balance_since = case when w.balance - cost - w.held < threshold then coalesce(w.low_balance_since, at) end,
         consume_tat = case when on_wallet then greatest(w.consume_tat, at) + emission else w.consume_tat end,
         quota_period_start = case when cap_action is null and cap_category is null then w.quota_period_start
                                   else plan.period_start end,
         quota_used = case when cap_action is null and cap_category is null then w.quota_used
                           else (case when w.quota_period_start = plan.period_start then w.quota_used else '{}'::jsonb end)
                                || case when cap_action is null then '{}'::jsonb
                                        else pg_catalog.jsonb_build_object(act.key, quantity + coalesce(
                                               case when w.quota_period_start = plan.period_start
                                                    then (w.quota_used ->> act.key)::bigint end, 0)) end
                                || case when cap_category is null then '{}'::jsonb
                                        else pg_catalog.jsonb_build_object(category_key, quantity + coalesce(
                                               case when w.quota_period_start = plan.period_start
                                                    then (w.quota_used ->> category_key)::bigint end, 0)) end
                      end
   where w.account_id = consume_credits.account_id
     and w.balance - cost - w.held >= 0
     and (w.next_expiry_at is null or w.next_expiry_at > at)
     and (not on_wallet or w.consume_tat is null or greatest(w.consume_tat, at) + emission <= at + emission * capacity)
     and (cap_action is null or quantity + coalesce(case when w.quota_period_start = plan.period_start
                                                         then (w.quota_used ->> act.key)::bigint end, 0) <= cap_action)
     and (cap_category is null or quantity + coalesce(case when w.quota_period_start = plan.period_start
                                                             then (w.quota_used ->> category_key)::bigint end, 0) <= cap_category)
  returning w.balance, w.available into wallet;
  if not found then
    return private.consume_slowly(consume_credits.account_id, act, quantity, cost, event_id,
                                  plan.limits, plan.period_start, plan.period_end, on_wallet, capacity, refill);
  end if;

  -- Then the first lot in draw-down order when it covers the cost, and the ledger entry:
  -- a statement of its own, begun once the wallet is locked, so that it sees every lot
  -- committed by whoever held the lock before (a new grant may now come first).
  if cost > 0 then
    with lot as (
      update public.credit_grants g set remaining = g.remaining - cost
       where g.id = (select f.id from public.credit_grants f
                     where f.account_id = consume_credits.account_id and f.remaining > 0
                       and (f.expires_at is null or f.expires_at > at)
                     order by f.expires_at, f.paid, f.created_at, f.seq
                     limit 1)
         and g.remaining >= cost
      returning g.id
    ), entry as (
      insert into public.credit_ledger (account_id, delta, balance_after, available_after, reason, usage_event_id, actor_user_id, actor_role)
      values (consume_credits.account_id, -cost, wallet.balance, wallet.available, 'consume', event_id, actor, actor_role)
    )
    select count(*) into drawn from lot;
    if drawn = 0 then
      -- The first lot does not cover it: draw across lots (the wallet is locked).
      perform private.draw_down(consume_credits.account_id, cost);
    end if;
  end if;
  if wallet.available < threshold and wallet.available + cost >= threshold then
    perform private.on_low_balance(consume_credits.account_id, wallet.available);
  end if;
  return pg_catalog.jsonb_build_object('usage_event_id', event_id, 'credits_charged', cost,
    'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
end
$$;
comment on function public.consume_credits(uuid, text, integer, text, jsonb) is
  'Charges ceil(quantity * credits / unit_size) credits for an action and records the usage, in one transaction: permission credits.consume, idempotency, rate limit, plan quota, balance check, draw-down, ledger. Returns {usage_event_id, credits_charged, balance, available, replayed}. Errors: PT402 insufficient_credits, PT429 rate_limited / quota_exceeded, PT409 idempotency_conflict, PT404 not_found, 22023 invalid_input, 42501.';
