-- Overage: chosen actions run past the wallet, billed through a Stripe Billing Meter (SPEC §4.14).
--
--   plans.limits.overage   {"actions": [...], "categories": [...], "max_units_per_period": n,
--                           "stripe_meter_event_name": "..."}
--
-- The rule
--   A consumption of a named action (or of an action in a named category) that the wallet
--   cannot cover is not refused: the wallet pays what it has (available never goes below
--   zero), and the rest (in credits, "overage units") is recorded in public.usage_overages
--   next to its usage event, counted against max_units_per_period for the billing period,
--   and reported to the plan's Stripe meter by a job. A consumption whose overage would pass
--   the cap is refused with PT402 insufficient_credits, the cap in the detail.
--
-- Where it lives
--   Only on the explanation path (private.consume_slowly), which consume_credits takes when
--   its one-statement charge does not fit: a consumption the wallet covers runs exactly as
--   before. The period's count sits on the wallet row next to the quota counters
--   (quota_used ->> 'overage:credits', reset with them when the period changes).
--
-- Why a table of its own
--   usage_events is append-only and written before the charge is decided (it is the
--   idempotency claim), so the uncovered part is a row keyed by the usage event, written in
--   the same transaction. usage_events.credits_charged stays the cost of the consumption;
--   the wallet paid credits_charged - overage_units of it.
--
-- Reporting
--   One job per usage event (kind overage.meter_event, idempotency key
--   overage.meter_event:<usage event id>): a replayed consume_credits call never reaches
--   this path, so it queues nothing. The runner sends a meter event whose identifier is the
--   usage event id (Stripe refuses a second event with the same identifier, which the
--   runner takes as delivered), so a retry after a lost response is never billed twice.

-- ---------------------------------------------------------------------------
-- Settings on the plan
-- ---------------------------------------------------------------------------
-- Written out in the constraint (not a function call): whoever edits the catalog needs no
-- EXECUTE on a private function.
alter table public.plans add constraint plans_overage_valid check (
  limits -> 'overage' is null or coalesce(
    jsonb_typeof(limits -> 'overage') = 'object'
    and jsonb_typeof(coalesce(limits -> 'overage' -> 'actions', '[]')) = 'array'
    and jsonb_typeof(coalesce(limits -> 'overage' -> 'categories', '[]')) = 'array'
    and jsonb_typeof(limits -> 'overage' -> 'max_units_per_period') = 'number'
    and (limits -> 'overage' ->> 'max_units_per_period')::numeric >= 1
    and (limits -> 'overage' ->> 'max_units_per_period')::numeric = trunc((limits -> 'overage' ->> 'max_units_per_period')::numeric)
    and jsonb_typeof(limits -> 'overage' -> 'stripe_meter_event_name') = 'string'
    and length(limits -> 'overage' ->> 'stripe_meter_event_name') between 1 and 100, false));
comment on column public.plans.limits is
  'Quotas, rate-limit overrides and overage: {"quotas": {"<action>" | "category:<category>": <units per billing period>}, "rate_limits": {"<policy>": {"capacity": n, "refill_per_second": r}}, "overage": {"actions": [...], "categories": [...], "max_units_per_period": n, "stripe_meter_event_name": "..."}}.';

-- ---------------------------------------------------------------------------
-- What a consumption used past the wallet
-- ---------------------------------------------------------------------------
create table public.usage_overages (
  usage_event_id uuid primary key,
  account_id uuid not null,
  action text not null,
  overage_units bigint not null check (overage_units > 0),
  period_start timestamptz not null,
  stripe_meter_event_name text not null,
  reported_at timestamptz,
  created_at timestamptz not null default now()
);
comment on table public.usage_overages is
  'The part of a consumption its wallet did not cover (plans.limits.overage), one row per usage event, reported to the plan''s Stripe Billing Meter and billed on the next invoice. Written only by consume_credits; reported_at by the meter job.';
comment on column public.usage_overages.usage_event_id is
  'The usage event (usage_events.id) and the meter event''s identifier in Stripe. Not a foreign key, like the other links of the credit history: written in the transaction of the event.';
comment on column public.usage_overages.overage_units is 'Credits of the consumption not covered by the wallet: the value sent to the meter.';
comment on column public.usage_overages.period_start is 'The billing period whose overage cap counted them.';
comment on column public.usage_overages.reported_at is 'When Stripe accepted the meter event (null: the job has not reported it yet).';
create index usage_overages_account_created_idx on public.usage_overages (account_id, created_at desc);
alter table public.usage_overages enable row level security;
create policy "Members with credits.read can read their account's overage" on public.usage_overages
  for select to authenticated
  using (account_id in (select public.user_account_ids('credits.read')) or (select public.is_staff_admin()));
grant select on public.usage_overages to authenticated, service_role;

-- Deleting an account deletes its history (the other history tables do it by trigger too).
create or replace function private.delete_account_overages()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- As the table owner (the role deleting the account has no rights on this table).
  delete from public.usage_overages o where o.account_id = old.id;
  return null;
end
$$;
comment on function private.delete_account_overages() is 'Trigger: deletes an account''s overage records with the account.';
create trigger accounts_delete_overages after delete on public.accounts
  for each row execute function private.delete_account_overages();

comment on column public.credit_balances.quota_used is
  'Units used this period per quota key (an action, or category:<name>) that the plan caps in plans.limits.quotas, and overage:credits, the overage of the period (plans.limits.overage).';

insert into private.job_kinds (kind, description, sql_function, max_attempts, base_delay, max_delay, give_up_after, lease, on_finish)
values ('overage.meter_event', 'Reports a consumption''s overage to the plan''s Stripe Billing Meter (identifier = usage event id; the dispatcher''s Stripe runner).',
        null, 20, interval '10 seconds', interval '30 minutes', interval '3 days', interval '2 minutes', null)
on conflict (kind) do nothing;

-- ---------------------------------------------------------------------------
-- The explanation path charges what the wallet covers and records the rest
-- ---------------------------------------------------------------------------
create or replace function private.overage_applies(limits jsonb, act public.billable_actions)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(limits -> 'overage' -> 'actions' ? act.key or limits -> 'overage' -> 'categories' ? act.category, false)
$$;
comment on function private.overage_applies(jsonb, public.billable_actions) is
  'True when the plan''s limits let this action run past the wallet (its key in overage.actions or its category in overage.categories).';

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
  covered bigint;
  uncovered bigint := 0;
  cap bigint;
  used bigint;
  result jsonb;
begin
  -- Lock the wallet (PT404 when there is none) and expire what is due, then judge in
  -- the order of the contract: rate limit, quota, balance (with the plan's overage).
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

  -- Overage: what the wallet cannot cover, up to the period's cap.
  covered := cost;
  if cost > 0 and wallet.available < cost and private.overage_applies(limits, act) then
    covered := greatest(wallet.available, 0);
    uncovered := cost - covered;
    cap := (limits -> 'overage' ->> 'max_units_per_period')::bigint;
    select case when w.quota_period_start = consume_slowly.period_start
                then coalesce((w.quota_used ->> 'overage:credits')::bigint, 0) else 0 end
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
           quota_used = case when w.quota_period_start = consume_slowly.period_start then w.quota_used else '{}'::jsonb end
                        || pg_catalog.jsonb_build_object('overage:credits', used + uncovered)
     where w.account_id = consume_slowly.account_id;
    insert into public.usage_overages (usage_event_id, account_id, action, overage_units, period_start, stripe_meter_event_name)
    values (event_id, consume_slowly.account_id, act.key, uncovered, consume_slowly.period_start,
            limits -> 'overage' ->> 'stripe_meter_event_name');
    perform private.enqueue_job('overage.meter_event', pg_catalog.jsonb_build_object('usage_event_id', event_id),
                                'overage.meter_event:' || event_id);
  end if;

  if covered > 0 then
    wallet := private.debit(consume_slowly.account_id, covered, 'consume', usage_event_id => event_id);
  else
    select w.* into wallet from public.credit_balances w where w.account_id = consume_slowly.account_id;
  end if;
  result := pg_catalog.jsonb_build_object('usage_event_id', event_id, 'credits_charged', cost,
    'balance', wallet.balance, 'available', wallet.available, 'replayed', false);
  if uncovered > 0 then
    result := result || pg_catalog.jsonb_build_object('overage_units', uncovered);
  end if;
  return result;
end
$$;
comment on function private.consume_slowly(uuid, public.billable_actions, integer, bigint, uuid, jsonb, timestamptz, timestamptz, boolean, integer, numeric) is
  'The general path of consume_credits when its one-statement fast path does not apply: locks the wallet, expires what is due, then applies the rate limit (PT429 rate_limited), the quota (PT429 quota_exceeded) and the charge (PT402 insufficient_credits), in that order. For an action the plan lets run past the wallet (plans.limits.overage), charges what the wallet covers and records the rest as overage (public.usage_overages, one overage.meter_event job), up to max_units_per_period per billing period (else PT402 with overage_limit in the detail).';

create or replace function private.replay_usage(account_id uuid, idempotency_key text, action text, quantity integer, metadata jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  ev public.usage_events;
  entry public.credit_ledger;
  wallet public.credit_balances;
  overage bigint;
  result jsonb;
begin
  select e.* into ev from public.usage_events e
  where e.account_id = replay_usage.account_id and e.idempotency_key = replay_usage.idempotency_key;
  if ev.action is distinct from replay_usage.action or ev.quantity is distinct from replay_usage.quantity
     or ev.metadata is distinct from replay_usage.metadata then
    raise exception using errcode = 'PT409', message = 'idempotency_conflict',
      detail = 'this idempotency_key was used with other parameters',
      hint = 'use a new idempotency_key for a different request';
  end if;
  select l.* into entry from public.credit_ledger l where l.usage_event_id = ev.id order by l.id limit 1;
  if not found then
    select w.* into wallet from public.credit_balances w where w.account_id = replay_usage.account_id;
    entry.balance_after := wallet.balance;
    entry.available_after := wallet.available;
  end if;
  result := pg_catalog.jsonb_build_object('usage_event_id', ev.id, 'credits_charged', ev.credits_charged,
    'balance', entry.balance_after, 'available', entry.available_after, 'replayed', true);
  select o.overage_units into overage from public.usage_overages o where o.usage_event_id = ev.id;
  if overage is not null then
    result := result || pg_catalog.jsonb_build_object('overage_units', overage);
  end if;
  return result;
end
$$;
comment on function private.replay_usage(uuid, text, text, integer, jsonb) is
  'The original result of an idempotent consumption (with its overage_units, if it had any), or PT409 idempotency_conflict when the parameters differ.';

-- ---------------------------------------------------------------------------
-- The meter job's SQL side
-- ---------------------------------------------------------------------------
create or replace function private.overage_meter_request(usage_event_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'identifier', o.usage_event_id, 'event_name', o.stripe_meter_event_name, 'value', o.overage_units,
    'stripe_customer_id', c.stripe_customer_id, 'timestamp', extract(epoch from o.created_at)::bigint,
    'reported', o.reported_at is not null)
  from public.usage_overages o
  left join public.billing_customers c on c.account_id = o.account_id
  where o.usage_event_id = overage_meter_request.usage_event_id
$$;
comment on function private.overage_meter_request(uuid) is
  'What the overage.meter_event runner sends for a usage event: {identifier, event_name, value, stripe_customer_id, timestamp, reported}; null when there is no such overage.';

create or replace function private.overage_meter_reported(usage_event_id uuid)
returns void
language sql
set search_path = ''
as $$
  update public.usage_overages o set reported_at = coalesce(o.reported_at, private.now())
  where o.usage_event_id = overage_meter_reported.usage_event_id
$$;
comment on function private.overage_meter_reported(uuid) is 'Marks an overage as accepted by Stripe (the first time only).';
