-- Candidate (after bench/candidates/v2_common_path.sql): the same v2 common path, written
-- as ONE SQL statement so that plpgsql evaluates almost nothing. The lookups, the charge
-- and the entry are CTEs of one statement; the values the charge needs travel in the
-- proposed row (EXCLUDED), since ON CONFLICT DO UPDATE sees only the target row and
-- EXCLUDED. Apply both files: --apply=bench/candidates/v2_common_path.sql,bench/candidates/v2_one_statement.sql
\set ON_ERROR_STOP 1

create or replace function bench.v2s_consume(
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
  -- (the trusted path only, keyless: the candidate measures the common path)
  with req as (
    select a.key, a.category, (quantity::bigint * a.credits + a.unit_size - 1) / a.unit_size as cost,
           coalesce(p.scope = 'account', false) as on_wallet,
           coalesce((pl.limits #>> '{rate_limits,consume_credits,capacity}')::integer, p.capacity) as capacity,
           coalesce((pl.limits #>> '{rate_limits,consume_credits,refill_per_second}')::numeric, p.refill_per_second) as refill,
           (pl.limits -> 'quotas' ->> a.key)::bigint as cap_action,
           (pl.limits -> 'quotas' ->> ('category:' || a.category))::bigint as cap_category,
           pl.period_start,
           coalesce((select s.value #>> '{}' from private.settings s where s.key = 'low_balance_threshold')::bigint, 0) as threshold
    from public.billable_actions a
    left join private.rate_limit_policies p on p.name = 'consume_credits'
    cross join private.account_plan(v2s_consume.account_id) pl
    where a.key = v2s_consume.action and a.active
  ), charge as (
    insert into bench.v2_wallets as w (account_id, balance, held, consume_tat, quota_period_start, quota_used)
    select v2s_consume.account_id, r.cost, r.threshold,
           pg_catalog.to_timestamp(1.0 / r.refill::float8),   -- the emission interval, as seconds since the epoch
           r.period_start,
           pg_catalog.jsonb_build_object('k', r.key, 'c', 'category:' || r.category, 'ca', r.cap_action, 'cc', r.cap_category,
                                         'n', quantity, 'w', r.on_wallet, 'cap', r.capacity)
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
           quota_period_start = case when excluded.quota_used -> 'ca' = 'null' and excluded.quota_used -> 'cc' = 'null'
                                     then w.quota_period_start else excluded.quota_period_start end,
           quota_used = case when excluded.quota_used -> 'ca' = 'null' and excluded.quota_used -> 'cc' = 'null' then w.quota_used
                             else (case when w.quota_period_start = excluded.quota_period_start then w.quota_used else '{}'::jsonb end)
                                  || pg_catalog.jsonb_build_object(excluded.quota_used ->> 'k', (excluded.quota_used ->> 'n')::bigint
                                       + coalesce(case when w.quota_period_start = excluded.quota_period_start
                                                       then (w.quota_used ->> (excluded.quota_used ->> 'k'))::bigint end, 0))
                        end
     where w.balance - excluded.balance - w.held >= 0
       and w.lot_remaining[1] >= excluded.balance
       and (w.next_expiry_at is null or w.next_expiry_at > private.now())
       and (not (excluded.quota_used ->> 'w')::boolean or w.consume_tat is null
            or greatest(w.consume_tat - private.now(), interval '0') + (excluded.consume_tat - 'epoch'::timestamptz)
               <= (excluded.consume_tat - 'epoch'::timestamptz) * (excluded.quota_used ->> 'cap')::integer)
       and (excluded.quota_used -> 'ca' = 'null'
            or (excluded.quota_used ->> 'n')::bigint + coalesce(case when w.quota_period_start = excluded.quota_period_start
                 then (w.quota_used ->> (excluded.quota_used ->> 'k'))::bigint end, 0) <= (excluded.quota_used ->> 'ca')::bigint)
    returning w.balance, w.available
  ), entry as (
    insert into bench.v2_entries (account_id, delta, balance_after, available_after, reason, action, quantity,
                                  credits_charged, idempotency_key, metadata, user_id, api_key_id, actor_role)
    select v2s_consume.account_id, -r.cost, c.balance, c.available, 'consume', r.key, quantity, r.cost,
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
