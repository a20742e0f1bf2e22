-- Candidate (after bench/candidates/v2_common_path.sql): the one-statement v2 common path
-- with the account's plan kept on the wallet row (its limits and current period, which
-- billing would refresh when a subscription changes and the statement refreshes when the
-- period ends), so a consumption does not call private.account_plan(). Apply with
-- --apply=bench/candidates/v2_common_path.sql,bench/candidates/v2_plan_on_wallet.sql
\set ON_ERROR_STOP 1

alter table bench.v2_wallets
  add column plan_limits jsonb,
  add column plan_period_start timestamptz,
  add column plan_period_end timestamptz;
update bench.v2_wallets w
   set plan_limits = p.limits, plan_period_start = p.period_start, plan_period_end = p.period_end
  from (select w2.account_id, ap.* from bench.v2_wallets w2, private.account_plan(w2.account_id) ap) p
 where p.account_id = w.account_id;
vacuum analyze bench.v2_wallets;

create or replace function bench.v2p_consume(
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
  result jsonb;
begin
  perform private.check_usage_arguments(quantity, idempotency_key, metadata);
  with req as (
    select a.key, 'category:' || a.category as category_key,
           (quantity::bigint * a.credits + a.unit_size - 1) / a.unit_size as cost,
           coalesce(p.scope = 'account', false) as on_wallet, p.capacity, p.refill_per_second,
           coalesce((select s.value #>> '{}' from private.settings s where s.key = 'low_balance_threshold')::bigint, 0) as threshold
    from public.billable_actions a
    left join private.rate_limit_policies p on p.name = 'consume_credits'
    where a.key = v2p_consume.action and a.active
  ), charge as (
    insert into bench.v2_wallets as w (account_id, balance, held, consume_tat, quota_used)
    select v2p_consume.account_id, r.cost, r.threshold,
           pg_catalog.to_timestamp(1.0 / r.refill_per_second::float8),
           pg_catalog.jsonb_build_object('k', r.key, 'n', quantity, 'w', r.on_wallet, 'cap', r.capacity)
    from req r
    on conflict (account_id) do update
       set balance = w.balance - excluded.balance,
           lot_ids = case when w.lot_remaining[1] = excluded.balance then w.lot_ids[2:] else w.lot_ids end,
           lot_remaining = case when w.lot_remaining[1] = excluded.balance then w.lot_remaining[2:]
                                else array[w.lot_remaining[1] - excluded.balance] || w.lot_remaining[2:] end,
           updated_at = private.now(),
           low_balance_since = case when w.balance - excluded.balance - w.held < excluded.held
                                    then coalesce(w.low_balance_since, private.now()) end,
           consume_tat = case when (excluded.quota_used ->> 'w')::boolean
                              then greatest(w.consume_tat, private.now()) + (excluded.consume_tat - 'epoch'::timestamptz)
                              else w.consume_tat end,
           quota_period_start = case when w.plan_limits -> 'quotas' -> (excluded.quota_used ->> 'k') is null
                                     then w.quota_period_start else w.plan_period_start end,
           quota_used = case when w.plan_limits -> 'quotas' -> (excluded.quota_used ->> 'k') is null then w.quota_used
                             else (case when w.quota_period_start = w.plan_period_start then w.quota_used else '{}'::jsonb end)
                                  || pg_catalog.jsonb_build_object(excluded.quota_used ->> 'k', (excluded.quota_used ->> 'n')::bigint
                                       + coalesce(case when w.quota_period_start = w.plan_period_start
                                                       then (w.quota_used ->> (excluded.quota_used ->> 'k'))::bigint end, 0))
                        end
     where w.balance - excluded.balance - w.held >= 0
       and w.lot_remaining[1] >= excluded.balance
       and (w.next_expiry_at is null or w.next_expiry_at > private.now())
       and w.plan_period_end > private.now()
       and (not (excluded.quota_used ->> 'w')::boolean or w.consume_tat is null
            or greatest(w.consume_tat - private.now(), interval '0') + (excluded.consume_tat - 'epoch'::timestamptz)
               <= (excluded.consume_tat - 'epoch'::timestamptz) * (excluded.quota_used ->> 'cap')::integer)
       and (w.plan_limits -> 'quotas' -> (excluded.quota_used ->> 'k') is null
            or (excluded.quota_used ->> 'n')::bigint + coalesce(case when w.quota_period_start = w.plan_period_start
                 then (w.quota_used ->> (excluded.quota_used ->> 'k'))::bigint end, 0)
               <= (w.plan_limits -> 'quotas' ->> (excluded.quota_used ->> 'k'))::bigint)
    returning w.balance, w.available
  ), entry as (
    insert into bench.v2_entries (account_id, delta, balance_after, available_after, reason, action, quantity,
                                  credits_charged, idempotency_key, metadata, user_id, api_key_id, actor_role)
    select v2p_consume.account_id, -r.cost, c.balance, c.available, 'consume', r.key, quantity, r.cost,
           idempotency_key, metadata, auth.uid(),
           nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), '')::uuid, 'system'
    from charge c cross join req r
    returning event_id, credits_charged, balance_after, available_after
  )
  select pg_catalog.jsonb_build_object('usage_event_id', e.event_id, 'credits_charged', e.credits_charged,
           'balance', e.balance_after, 'available', e.available_after, 'replayed', false)
    into result
  from entry e;
  if result is null then
    raise exception 'candidate: the common path does not apply';
  end if;
  return result;
end
$$;
