-- Candidate (apply with `npm run bench -- --apply=bench/candidates/v2_common_path.sql
-- --only=v2hot,v2spread`): the common path of the v2 storage, measured before it is built.
--
-- Two row writes per consumption:
--   bench.v2_wallets  the wallet row also carries its lots' remaining credits (arrays in
--                     draw-down order; an exhausted lot leaves them), the consume_credits GCRA state and the quota
--                     counters; one INSERT ... ON CONFLICT DO UPDATE checks and charges all
--                     of them, with the clock read once the row is locked;
--   bench.v2_entries  the ledger entry of the consumption is its usage event and carries
--                     its idempotency key (a unique index; a repeated key is a replay).
-- Everything the real consume_credits does before its charge is kept (argument checks,
-- the action/policy/threshold lookup, the wallet existence check, the plan and its
-- limits, the replay check of a keyed call). What the common path does not cover (a lot
-- that does not cover the charge, an expiry due, a refusal) raises here: the candidate
-- measures the common path only.
\set ON_ERROR_STOP 1

create table bench.v2_wallets (
  account_id uuid primary key,
  balance bigint not null default 0,
  held bigint not null default 0,
  available bigint generated always as (balance - held) stored,
  lot_ids uuid[] not null default '{}',
  lot_remaining bigint[] not null default '{}',
  next_expiry_at timestamptz,
  low_balance_since timestamptz,
  consume_tat timestamptz,
  quota_period_start timestamptz,
  quota_used jsonb not null default '{}'::jsonb,
  updated_at timestamptz not null default now()
) with (fillfactor = 80);

create table bench.v2_entries (
  id bigint generated always as identity primary key,
  account_id uuid not null,
  event_id uuid not null default gen_random_uuid(),
  delta bigint not null,
  balance_after bigint not null,
  available_after bigint not null,
  reason text not null,
  action text,
  quantity integer,
  credits_charged bigint,
  idempotency_key text,
  metadata jsonb not null default '{}'::jsonb,
  user_id uuid,
  api_key_id uuid,
  hold_id uuid,
  grant_id uuid,
  actor_role text not null default 'system',
  created_at timestamptz not null default now()
);
create unique index v2_entries_idempotency_key on bench.v2_entries (account_id, idempotency_key) where idempotency_key is not null;
create index v2_entries_account_page_idx on bench.v2_entries (account_id, id desc);
create index v2_entries_user_id_idx on bench.v2_entries (user_id) where user_id is not null;
create index v2_entries_hold_id_idx on bench.v2_entries (hold_id) where hold_id is not null;
create index v2_entries_grant_id_idx on bench.v2_entries (grant_id) where grant_id is not null;

-- The wallets of the bench accounts as they stand (one promo lot of 10^12 each).
insert into bench.v2_wallets (account_id, balance, held, lot_ids, lot_remaining, next_expiry_at)
select w.account_id, w.balance, w.held,
       array(select g.id from public.credit_grants g where g.account_id = w.account_id and g.remaining > 0
             order by g.expires_at, g.paid, g.created_at, g.seq),
       array(select g.remaining from public.credit_grants g where g.account_id = w.account_id and g.remaining > 0
             order by g.expires_at, g.paid, g.created_at, g.seq),
       w.next_expiry_at
from public.credit_balances w;

create function bench.v2_consume(
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
  cost bigint;
  plan record;
  on_wallet boolean;
  capacity integer;
  refill numeric;
  emission interval;
  category_key text;
  cap_action bigint;
  cap_category bigint;
  wallet record;
  earlier record;
  entry record;
  actor_role text := pg_catalog.current_setting('role');
begin
  perform private.check_usage_arguments(quantity, idempotency_key, metadata);
  select a as action_row, p.scope, p.capacity, p.refill_per_second,
         coalesce((select s.value #>> '{}' from private.settings s where s.key = 'low_balance_threshold')::bigint, 0) as threshold,
         exists (select from bench.v2_wallets w where w.account_id = v2_consume.account_id) as has_wallet
    into info
  from public.billable_actions a
  left join private.rate_limit_policies p on p.name = 'consume_credits'
  where a.key = v2_consume.action and a.active;
  if not found then
    raise exception using errcode = 'PT404', message = 'not_found';
  end if;
  act := info.action_row;
  category_key := 'category:' || act.category;
  if actor_role in ('anon', 'authenticated') then
    perform private.require_user();
    perform private.require_permission(v2_consume.account_id, 'credits.consume');
  else
    actor_role := case when actor_role = 'service_role' then actor_role else 'system' end;
    if not info.has_wallet then
      raise exception using errcode = 'PT404', message = 'not_found';
    end if;
  end if;
  cost := (quantity::bigint * act.credits + act.unit_size - 1) / act.unit_size;

  if idempotency_key is not null then
    select e.* into earlier from bench.v2_entries e
    where e.account_id = v2_consume.account_id and e.idempotency_key = v2_consume.idempotency_key;
    if found then
      return pg_catalog.jsonb_build_object('usage_event_id', earlier.event_id, 'credits_charged', earlier.credits_charged,
        'balance', earlier.balance_after, 'available', earlier.available_after, 'replayed', true);
    end if;
  end if;

  plan := private.account_plan(v2_consume.account_id);
  on_wallet := coalesce(info.scope = 'account', false);
  capacity := coalesce((plan.limits #>> '{rate_limits,consume_credits,capacity}')::integer, info.capacity);
  refill := coalesce((plan.limits #>> '{rate_limits,consume_credits,refill_per_second}')::numeric, info.refill_per_second);
  cap_action := (plan.limits -> 'quotas' ->> act.key)::bigint;
  cap_category := (plan.limits -> 'quotas' ->> category_key)::bigint;
  emission := pg_catalog.make_interval(secs => 1.0 / refill::float8);

  -- The one charging statement: balance, first lot, rate limit, quotas.
  insert into bench.v2_wallets as w (account_id) values (v2_consume.account_id)
  on conflict (account_id) do update
     set balance = w.balance - cost,
         -- The first lot pays; an exhausted lot leaves the row (a lot not on the row has 0 left).
         lot_ids = case when w.lot_remaining[1] = cost then w.lot_ids[2:] else w.lot_ids end,
         lot_remaining = case when w.lot_remaining[1] = cost then w.lot_remaining[2:]
                              else array[w.lot_remaining[1] - cost] || w.lot_remaining[2:] end,
         updated_at = private.now(),
         low_balance_since = case when w.balance - cost - w.held < info.threshold then coalesce(w.low_balance_since, private.now()) end,
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
     and w.lot_remaining[1] >= cost
     and (w.next_expiry_at is null or w.next_expiry_at > private.now())
     and (not on_wallet or w.consume_tat is null
          or greatest(w.consume_tat - private.now(), interval '0') + emission <= emission * capacity)
     and (cap_action is null or quantity + coalesce(case when w.quota_period_start = plan.period_start
                                                         then (w.quota_used ->> act.key)::bigint end, 0) <= cap_action)
     and (cap_category is null or quantity + coalesce(case when w.quota_period_start = plan.period_start
                                                             then (w.quota_used ->> category_key)::bigint end, 0) <= cap_category)
  returning w.balance, w.available into wallet;
  if not found then
    raise exception 'candidate: the common path does not apply';
  end if;

  -- The one entry: ledger entry and usage event, with the idempotency key.
  insert into bench.v2_entries (account_id, delta, balance_after, available_after, reason, action, quantity,
                                credits_charged, idempotency_key, metadata, user_id, api_key_id, actor_role)
  values (v2_consume.account_id, -cost, wallet.balance, wallet.available, 'consume', act.key, quantity,
          cost, idempotency_key, metadata, auth.uid(),
          nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), '')::uuid, actor_role)
  on conflict (account_id, idempotency_key) where idempotency_key is not null do nothing
  returning event_id into entry;
  if not found then
    raise exception 'candidate: a concurrent twin (the real path gives the charge back and replays)';
  end if;
  if wallet.available < info.threshold and wallet.available + cost >= info.threshold then
    perform private.on_low_balance(v2_consume.account_id, wallet.available);
  end if;
  return pg_catalog.jsonb_build_object('usage_event_id', entry.event_id, 'credits_charged', cost,
    'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
end
$$;

vacuum analyze bench.v2_wallets, bench.v2_entries;
