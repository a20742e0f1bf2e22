-- Credit engine: the clock is read once the wallet is locked; captures never exceed holds.
--
-- Clock after the lock
--   A call that queued behind another transaction on the wallet row must be judged by the
--   time at which it got the row, not the time at which it arrived: a lot that expired
--   while it waited is not spent, and the rate limit counts the call when it is admitted.
--   The charging statements are INSERT ... ON CONFLICT (account_id) DO UPDATE on the
--   wallet: PostgreSQL locks the existing row first and only then evaluates the
--   statement's WHERE and SET, on the row's latest version, so private.now() in them is
--   read once the wallet is locked — whether the previous holder changed the row,
--   only locked it, or rolled back. (A plain UPDATE re-evaluates its WHERE after a wait
--   only when the previous holder changed the row.) The statements are only run for
--   wallets known to exist, so the insert half never inserts.
--
-- Captures
--   capture_credits(hold_id, quantity) refuses a quantity above the reserved one
--   (22023 invalid_input) and changes nothing. So quotas count only captured units: the
--   hold counted its reserved units when it was made, and what is not captured goes back.
--
-- Also here: the explanation-path switch (ledgerbase.explanation_path) the property test
-- runs both ways, and a wallet's own low-balance threshold (credit_balances.low_balance_threshold).

-- ---------------------------------------------------------------------------
-- The switch that sends every charge through the explanation path
-- ---------------------------------------------------------------------------
create or replace function private.explanation_path_forced()
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
  -- plpgsql, not sql: a SQL function that cannot be inlined (its search_path is pinned)
  -- plans its query on every call; --profile measured 34 µs a call against 3 µs.
  return coalesce(pg_catalog.current_setting('ledgerbase.explanation_path', true), '') = 'on';
end
$$;
comment on function private.explanation_path_forced() is
  'True when the transaction set ledgerbase.explanation_path = on: consume_credits, reserve_credits and capture_credits then skip their one-statement common path and take the explanation path (lock, expire, judge each rule in order). The results are the same; tests run their sequences both ways. Clients cannot set it (no exposed function sets configuration).';

-- ---------------------------------------------------------------------------
-- A wallet's own low-balance threshold
-- ---------------------------------------------------------------------------
alter table public.credit_balances
  add column low_balance_threshold bigint check (low_balance_threshold >= 0);
comment on column public.credit_balances.low_balance_threshold is
  'Where this wallet signals low balance (private.on_low_balance: notification, credits.low, auto top-up); null: the low_balance_threshold setting. Set by set_auto_topup to the account''s auto top-up threshold.';

-- ---------------------------------------------------------------------------
-- The wallet change used by grants, holds, captures and expiry
-- ---------------------------------------------------------------------------
create or replace function private.set_wallet(
  account_id uuid,
  balance_delta bigint,
  held_delta bigint default 0,
  guarded boolean default false
) returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  threshold bigint := private.low_balance_threshold();
  wallet public.credit_balances;
begin
  -- Guarded: only if available stays >= 0 and no lot is due to expire (else the caller
  -- takes the explanation path through private.lock_wallet). The row is locked before
  -- the guard and the clock are evaluated (ON CONFLICT DO UPDATE); the wallet exists.
  if guarded and private.explanation_path_forced() then
    return null;
  end if;
  insert into public.credit_balances as w (account_id) values (set_wallet.account_id)
  on conflict on constraint credit_balances_pkey do update
     set balance = w.balance + balance_delta,
         held = w.held + held_delta,
         updated_at = private.now(),
         low_balance_since = case when w.balance + balance_delta - w.held - held_delta
                                       < coalesce(w.low_balance_threshold, threshold)
                                  then coalesce(w.low_balance_since, private.now()) end
   where not guarded or (w.balance + balance_delta - w.held - held_delta >= 0
                         and (w.next_expiry_at is null or w.next_expiry_at > private.now()))
  returning w.* into wallet;
  threshold := coalesce(wallet.low_balance_threshold, threshold);
  if wallet.available < threshold and wallet.available - (balance_delta - held_delta) >= threshold then
    perform private.on_low_balance(wallet.account_id, wallet.available);
  end if;
  return wallet;
end
$$;
comment on function private.set_wallet(uuid, bigint, bigint, boolean) is
  'Applies a change to an existing wallet and returns the new row (all nulls when a guarded change does not fit), signalling once when available falls below the wallet''s low-balance threshold (its own, else the setting). The guard judges expiry by the clock read once the row is locked.';

-- ---------------------------------------------------------------------------
-- consume_credits: the charging statement judges by the clock read under the lock
-- ---------------------------------------------------------------------------
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
  at timestamptz;
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
  threshold := info.threshold;
  category_key := 'category:' || act.category;
  actor_role := pg_catalog.current_setting('role');
  if actor_role in ('anon', 'authenticated') then
    perform private.require_user();
    perform private.require_permission(consume_credits.account_id, 'credits.consume');
  else
    actor_role := case when actor_role = 'service_role' then actor_role else 'system' end;
    if not info.has_wallet then
      raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such account';
    end if;
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

  if private.explanation_path_forced() then
    return private.consume_slowly(consume_credits.account_id, act, quantity, cost, event_id,
                                  plan.limits, plan.period_start, plan.period_end, on_wallet, capacity, refill);
  end if;

  -- The fast path. First one statement on the wallet row: the rate limit, the quotas, the
  -- balance and the charge. ON CONFLICT DO UPDATE locks the (existing) row before it
  -- evaluates WHERE and SET, so the clock they read is the clock once the wallet is locked;
  -- the lock serializes the account.
  insert into public.credit_balances as w (account_id) values (consume_credits.account_id)
  on conflict on constraint credit_balances_pkey do update
     set balance = w.balance - cost,
         updated_at = private.now(),
         low_balance_since = case when w.balance - cost - w.held < coalesce(w.low_balance_threshold, threshold)
                                  then coalesce(w.low_balance_since, private.now()) end,
         consume_tat = case when on_wallet then greatest(w.consume_tat, private.now()) + emission else w.consume_tat end,
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
   where w.balance - cost - w.held >= 0
     and (w.next_expiry_at is null or w.next_expiry_at > private.now())
     and (not on_wallet or w.consume_tat is null
          or greatest(w.consume_tat - private.now(), interval '0') + emission <= emission * capacity)
     and (cap_action is null or quantity + coalesce(case when w.quota_period_start = plan.period_start
                                                         then (w.quota_used ->> act.key)::bigint end, 0) <= cap_action)
     and (cap_category is null or quantity + coalesce(case when w.quota_period_start = plan.period_start
                                                             then (w.quota_used ->> category_key)::bigint end, 0) <= cap_category)
  returning w.balance, w.available, w.updated_at, coalesce(w.low_balance_threshold, threshold) as alert_below into wallet;
  if not found then
    -- The explanation path locks the wallet (it is locked already when the WHERE refused) and
    -- reads the clock again.
    return private.consume_slowly(consume_credits.account_id, act, quantity, cost, event_id,
                                  plan.limits, plan.period_start, plan.period_end, on_wallet, capacity, refill);
  end if;

  -- Then the first lot in draw-down order when it covers the cost, and the ledger entry:
  -- a statement of its own, begun once the wallet is locked, so that it sees every lot
  -- committed by whoever held the lock before (a new grant may now come first).
  at := wallet.updated_at; -- the clock read once the wallet was locked
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
  if wallet.available < wallet.alert_below and wallet.available + cost >= wallet.alert_below then
    perform private.on_low_balance(consume_credits.account_id, wallet.available);
  end if;
  return pg_catalog.jsonb_build_object('usage_event_id', event_id, 'credits_charged', cost,
    'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
end
$$;
comment on function public.consume_credits(uuid, text, integer, text, jsonb) is
  'Charges ceil(quantity * credits / unit_size) credits for an action and records the usage, in one transaction: permission credits.consume, idempotency, rate limit, plan quota, balance check, draw-down, ledger. Expiry and the rate limit are judged by the clock read once the wallet is locked. Returns {usage_event_id, credits_charged, balance, available, replayed}. Errors: PT402 insufficient_credits, PT429 rate_limited / quota_exceeded, PT409 idempotency_conflict, PT404 not_found, 22023 invalid_input, 42501.';

-- ---------------------------------------------------------------------------
-- capture_credits: never more than the hold reserved
-- ---------------------------------------------------------------------------
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
  event_id uuid;
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

  insert into public.usage_events (account_id, user_id, action, quantity, credits_charged, metadata, hold_id, api_key_id)
  values (hold.account_id, auth.uid(), hold.action, units, charge, '{}'::jsonb, hold.id,
          nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), '')::uuid)
  returning id into event_id;
  -- The hold counted hold.quantity units against the quotas when reserved: the units not
  -- captured go back, so the quotas count only what was captured.
  perform private.return_quota(hold, hold.quantity - units);

  wallet := private.debit(hold.account_id, charge, 'capture', usage_event_id => event_id, hold_id => hold.id, release_held => hold.amount);
  update public.credit_holds h set status = 'captured', credits_charged = charge, usage_event_id = event_id, settled_at = private.now()
  where h.id = hold.id;
  return pg_catalog.jsonb_build_object('usage_event_id', event_id, 'credits_charged', charge,
    'released', hold.amount - charge, 'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
end
$$;
comment on function public.capture_credits(uuid, integer) is
  'Charges a hold: the cost of quantity units (default and at most the reserved quantity, else 22023 invalid_input) at the reserved price, at most the held amount, and releases the rest; quotas keep only the captured units. Returns {usage_event_id, credits_charged, released, balance, available, replayed}; capturing twice replays. PT410 gone for a released or expired hold.';
