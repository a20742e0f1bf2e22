-- Auto top-up (SPEC §4.14): when an account's available credits fall below its threshold,
-- a background job charges the customer's default payment method off-session for a credit
-- pack; the credits are granted once, when Stripe confirms the payment
-- (payment_intent.succeeded), never on the API's answer alone.
--
--   public.auto_topup_settings           one row per account: on/off, threshold, pack, monthly limit,
--                                        failures in a row and why it was turned off
--   public.auto_topup_attempts           one row per charge; at most one pending per account
--   public.set_auto_topup(...)           billing.manage
--   private.start_auto_topup(...)        called by the low-balance seam: queues one charge
--   private.auto_topup_request(...)      what the credits.auto_topup runner sends to Stripe
--   private.auto_topup_submitted(...)    the PaymentIntent Stripe answered with
--   private.auto_topup_failed(...)       a decline or requires_action: counts, notifies, may turn it off
--   private.auto_topup_payment_event()   payment_intent.* of an auto top-up: grants once
--
-- Never two in flight: a unique partial index allows one pending attempt per account.

insert into private.settings (key, value, description) values
  ('auto_topup_max_failures', '3', 'Failed automatic top-ups in a row after which auto top-up is turned off.')
on conflict (key) do nothing;

insert into private.job_kinds (kind, description, sql_function, max_attempts, base_delay, max_delay, give_up_after, lease, on_finish)
values ('credits.auto_topup', 'Charges a credit pack off-session for one auto top-up attempt (the dispatcher''s Stripe runner).',
        null, 8, interval '10 seconds', interval '10 minutes', interval '1 day', interval '2 minutes',
        'private.auto_topup_job_finished')
on conflict (kind) do nothing;

-- ---------------------------------------------------------------------------
-- Settings and attempts
-- ---------------------------------------------------------------------------
create table public.auto_topup_settings (
  account_id uuid primary key references public.accounts (id) on delete cascade,
  enabled boolean not null default false,
  threshold bigint not null check (threshold > 0),
  credit_pack text not null references public.credit_packs (key) on update cascade,
  monthly_limit integer not null default 4 check (monthly_limit between 1 and 100),
  consecutive_failures integer not null default 0 check (consecutive_failures >= 0),
  disabled_reason text,
  disabled_at timestamptz,
  updated_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.auto_topup_settings is
  'Auto top-up of an account: when available credits fall below threshold, credit_pack is charged off-session to the customer''s default payment method, at most monthly_limit times per calendar month (UTC). Written by set_auto_topup; readable by members with billing.read.';
comment on column public.auto_topup_settings.consecutive_failures is
  'Failed charges (declines, authentication required) since the last success; at auto_topup_max_failures (3) auto top-up turns itself off.';
comment on column public.auto_topup_settings.disabled_reason is 'Why auto top-up turned itself off (null when a person turned it off or it is on).';

create table public.auto_topup_attempts (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  credit_pack text not null,
  credits bigint not null check (credits > 0),
  amount bigint not null check (amount >= 0),
  currency text not null,
  status text not null default 'pending' check (status in ('pending', 'succeeded', 'failed')),
  failure_code text,
  failure_message text,
  stripe_payment_intent_id text unique,
  grant_id uuid,
  job_id bigint,
  available_before bigint,
  created_at timestamptz not null,
  finished_at timestamptz
);
comment on table public.auto_topup_attempts is
  'One automatic charge each: pending until Stripe confirms (payment_intent.succeeded grants the credits) or refuses it. At most one pending attempt per account.';
comment on column public.auto_topup_attempts.failure_code is
  'Stripe''s decline code or error code (card_declined, insufficient_funds, authentication_required, requires_action, no_payment_method, ...).';
create unique index auto_topup_attempts_one_pending_idx on public.auto_topup_attempts (account_id) where status = 'pending';
create index auto_topup_attempts_account_idx on public.auto_topup_attempts (account_id, created_at desc);

alter table public.auto_topup_settings enable row level security;
alter table public.auto_topup_attempts enable row level security;
create policy "Members with billing.read can read their account's auto top-up settings" on public.auto_topup_settings
  for select to authenticated
  using (account_id in (select public.user_account_ids('billing.read')) or (select public.is_staff_admin()));
create policy "Members with billing.read can read their account's auto top-ups" on public.auto_topup_attempts
  for select to authenticated
  using (account_id in (select public.user_account_ids('billing.read')) or (select public.is_staff_admin()));
grant select on public.auto_topup_settings, public.auto_topup_attempts to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- set_auto_topup
-- ---------------------------------------------------------------------------
create or replace function public.set_auto_topup(
  account_id uuid,
  enabled boolean,
  threshold bigint,
  credit_pack text,
  monthly_limit integer default 4
) returns public.auto_topup_settings
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  actor uuid := private.require_user();
  at timestamptz := private.now();
  s public.auto_topup_settings;
  available bigint;
begin
  perform private.require_permission(set_auto_topup.account_id, 'billing.manage');
  if set_auto_topup.enabled is null or set_auto_topup.threshold is null or set_auto_topup.threshold <= 0 then
    raise exception using errcode = '22023', message = 'invalid_input',
      detail = 'enabled is required and threshold must be a positive number of credits';
  end if;
  if set_auto_topup.monthly_limit is null or set_auto_topup.monthly_limit not between 1 and 100 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'monthly_limit must be between 1 and 100';
  end if;
  if not exists (select from public.credit_packs c where c.key = set_auto_topup.credit_pack and c.active) then
    raise exception using errcode = '22023', message = 'invalid_input',
      detail = pg_catalog.format('no active credit pack %L', set_auto_topup.credit_pack),
      hint = 'pick a key from public.credit_packs where active';
  end if;

  insert into public.auto_topup_settings as t (account_id, enabled, threshold, credit_pack, monthly_limit, updated_by, created_at, updated_at)
  values (set_auto_topup.account_id, set_auto_topup.enabled, set_auto_topup.threshold, set_auto_topup.credit_pack,
          set_auto_topup.monthly_limit, actor, at, at)
  on conflict (account_id) do update set
    enabled = excluded.enabled, threshold = excluded.threshold, credit_pack = excluded.credit_pack,
    monthly_limit = excluded.monthly_limit, updated_by = excluded.updated_by, updated_at = excluded.updated_at,
    -- Turning it on again starts a new count; the reason it was turned off is kept until then.
    consecutive_failures = case when excluded.enabled then 0 else t.consecutive_failures end,
    disabled_reason = case when excluded.enabled then null else t.disabled_reason end,
    disabled_at = case when excluded.enabled then null else t.disabled_at end
  returning t.* into s;

  perform private.audit('auto_topup.updated', 'auto_topup_settings', set_auto_topup.account_id::text, set_auto_topup.account_id,
    null, pg_catalog.jsonb_build_object('enabled', s.enabled, 'threshold', s.threshold, 'credit_pack', s.credit_pack,
                                  'monthly_limit', s.monthly_limit));

  -- The wallet signals low balance at this threshold while auto top-up is on (the credit
  -- engine compares on the wallet row, so no second lookup joins the hot path).
  update public.credit_balances b
     set low_balance_threshold = case when s.enabled then s.threshold end
   where b.account_id = set_auto_topup.account_id;

  -- Already below the threshold: the top-up starts now rather than at the next crossing.
  if s.enabled then
    select b.available into available from public.credit_balances b where b.account_id = set_auto_topup.account_id;
    if available is not null and available < s.threshold then
      perform private.start_auto_topup(set_auto_topup.account_id, available);
    end if;
  end if;
  return s;
end
$$;
comment on function public.set_auto_topup(uuid, boolean, bigint, text, integer) is
  'Turns auto top-up on or off for an account (billing.manage): below threshold available credits, credit_pack is charged off-session, at most monthly_limit times a calendar month. Turning it on resets the failure count (and starts a top-up when already below the threshold). Errors: 42501, invalid_input (22023).';
revoke all on function public.set_auto_topup(uuid, boolean, bigint, text, integer) from public;
grant execute on function public.set_auto_topup(uuid, boolean, bigint, text, integer) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Starting a top-up (the low-balance seam)
-- ---------------------------------------------------------------------------
create or replace function private.auto_topup_month_count(account_id uuid)
returns integer
language sql
stable
set search_path = ''
as $$
  select count(*)::integer from public.auto_topup_attempts a
  where a.account_id = auto_topup_month_count.account_id and a.status <> 'failed'
    and a.created_at >= pg_catalog.date_trunc('month', private.now() at time zone 'UTC') at time zone 'UTC'
$$;
comment on function private.auto_topup_month_count(uuid) is
  'Automatic charges of the account this calendar month (UTC) that went through or may still go through (failed ones do not count).';

create or replace function private.start_auto_topup(account_id uuid, available bigint)
returns uuid
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  s public.auto_topup_settings;
  pack public.credit_packs;
  at timestamptz := private.now();
  attempt_id uuid;
begin
  select t.* into s from public.auto_topup_settings t
  where t.account_id = start_auto_topup.account_id and t.enabled;
  if s.account_id is null or start_auto_topup.available >= s.threshold then
    return null;
  end if;
  if private.auto_topup_month_count(s.account_id) >= s.monthly_limit then
    return null; -- the month's limit is reached: the low-balance warning still goes out
  end if;
  select c.* into pack from public.credit_packs c where c.key = s.credit_pack and c.active;
  if pack.key is null then
    return null;
  end if;
  -- One pending attempt per account (unique partial index): a second crossing while one is
  -- in flight, or a concurrent one, adds nothing.
  insert into public.auto_topup_attempts (account_id, credit_pack, credits, amount, currency, available_before, created_at)
  values (s.account_id, pack.key, pack.credits, pack.price_cents, pack.currency, start_auto_topup.available, at)
  on conflict (account_id) where status = 'pending' do nothing
  returning id into attempt_id;
  if attempt_id is null then
    return null;
  end if;
  update public.auto_topup_attempts a
  set job_id = private.enqueue_job('credits.auto_topup', pg_catalog.jsonb_build_object('attempt_id', attempt_id),
                                   'auto_topup:' || attempt_id)
  where a.id = attempt_id;
  return attempt_id;
end
$$;
comment on function private.start_auto_topup(uuid, bigint) is
  'Queues one auto top-up charge when the account has auto top-up on, available is below its threshold, the month''s limit is not reached and no charge is pending; returns the attempt id or null. Runs in the caller''s transaction.';

create or replace function private.on_low_balance(account_id uuid, available bigint)
returns void
language plpgsql
set search_path = ''
as $$
declare
  -- The wallet's own threshold (auto top-up), else the setting: runs only on a crossing.
  threshold bigint := coalesce((select b.low_balance_threshold from public.credit_balances b
                                where b.account_id = on_low_balance.account_id), private.low_balance_threshold());
begin
  perform private.notify_account(on_low_balance.account_id, 'billing.manage', 'warning',
    'Your credits are running low',
    pg_catalog.format('%s credits left. Buy a credit pack or upgrade your plan to keep going.', on_low_balance.available),
    pg_catalog.jsonb_build_object('kind', 'low_balance', 'available', on_low_balance.available,
                                  'threshold', threshold));
  perform private.emit_event(on_low_balance.account_id, 'credits.low',
    pg_catalog.jsonb_build_object('account_id', on_low_balance.account_id, 'available', on_low_balance.available,
                                  'threshold', threshold));
  perform private.start_auto_topup(on_low_balance.account_id, on_low_balance.available);
end
$$;
comment on function private.on_low_balance(uuid, bigint) is
  'Called by the credit engine in the transaction in which available credits fell below the wallet''s low-balance threshold (its own while auto top-up is on, else the low_balance_threshold setting; once per crossing): warns the account''s billing managers, emits credits.low and starts an auto top-up (private.start_auto_topup).';

-- ---------------------------------------------------------------------------
-- The runner's calls
-- ---------------------------------------------------------------------------
create or replace function private.auto_topup_request(attempt_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'attempt_id', a.id, 'account_id', a.account_id, 'credit_pack', a.credit_pack, 'credits', a.credits,
    'amount', a.amount, 'currency', a.currency,
    'customer_id', (select c.stripe_customer_id from public.billing_customers c
                    where c.account_id = a.account_id and c.status = 'active'))
  from public.auto_topup_attempts a
  where a.id = auto_topup_request.attempt_id and a.status = 'pending'
$$;
comment on function private.auto_topup_request(uuid) is
  'What to charge for a pending attempt (amount, currency, pack, the account''s Stripe customer); null when the attempt is no longer pending.';

create or replace function private.auto_topup_submitted(attempt_id uuid, payment_intent_id text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.auto_topup_attempts a
  set stripe_payment_intent_id = coalesce(a.stripe_payment_intent_id, auto_topup_submitted.payment_intent_id)
  where a.id = auto_topup_submitted.attempt_id;
end
$$;
comment on function private.auto_topup_submitted(uuid, text) is
  'Records the PaymentIntent of an attempt. Grants nothing: the credits wait for payment_intent.succeeded.';

create or replace function private.auto_topup_failed(attempt_id uuid, code text, message text, payment_intent_id text default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  a public.auto_topup_attempts;
  s public.auto_topup_settings;
  at timestamptz := private.now();
  max_failures integer := coalesce((private.setting('auto_topup_max_failures') #>> '{}')::integer, 3);
begin
  update public.auto_topup_attempts x
  set status = 'failed', failure_code = auto_topup_failed.code, failure_message = left(auto_topup_failed.message, 500),
      stripe_payment_intent_id = coalesce(x.stripe_payment_intent_id, auto_topup_failed.payment_intent_id), finished_at = at
  where x.id = auto_topup_failed.attempt_id and x.status = 'pending'
  returning x.* into a;
  if a.id is null then
    return; -- already settled (a late or repeated report)
  end if;
  update public.auto_topup_settings t
  set consecutive_failures = t.consecutive_failures + 1,
      enabled = t.enabled and t.consecutive_failures + 1 < max_failures,
      disabled_reason = case when t.enabled and t.consecutive_failures + 1 >= max_failures then
        pg_catalog.format('turned off after %s failed charges in a row (last: %s)', t.consecutive_failures + 1, auto_topup_failed.code)
        else t.disabled_reason end,
      disabled_at = case when t.enabled and t.consecutive_failures + 1 >= max_failures then at else t.disabled_at end,
      updated_at = at
  where t.account_id = a.account_id
  returning t.* into s;

  perform private.notify_account(a.account_id, 'billing.manage', 'error',
    case when s.enabled then 'Automatic top-up failed' else 'Automatic top-up failed and was turned off' end,
    pg_catalog.format('We could not charge your default payment method for %s credits (%s). %s', a.credits, auto_topup_failed.code,
      case when s.enabled then 'Update your payment method in the billing portal.'
           else 'Update your payment method in the billing portal, then turn auto top-up on again.' end),
    pg_catalog.jsonb_build_object('kind', 'auto_topup_failed', 'attempt_id', a.id, 'code', auto_topup_failed.code,
                                  'disabled', not coalesce(s.enabled, false)));
  perform private.emit_event(a.account_id, 'credits.auto_topup.failed', pg_catalog.jsonb_build_object(
    'account_id', a.account_id, 'attempt_id', a.id, 'credit_pack', a.credit_pack, 'credits', a.credits,
    'amount', a.amount, 'currency', a.currency, 'code', auto_topup_failed.code, 'message', auto_topup_failed.message,
    'stripe_payment_intent_id', a.stripe_payment_intent_id,
    'consecutive_failures', s.consecutive_failures, 'auto_topup_disabled', not coalesce(s.enabled, false)));
end
$$;
comment on function private.auto_topup_failed(uuid, text, text, text) is
  'Settles a pending attempt as failed (decline, authentication required, no payment method): counts it, turns auto top-up off with the reason at auto_topup_max_failures in a row, notifies billing managers and emits credits.auto_topup.failed. A second report changes nothing.';

create or replace function private.auto_topup_job_finished(job jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- Stripe could not be reached for the whole retry window: the attempt fails, so the next
  -- crossing may try again.
  if job ->> 'status' = 'dead' then
    perform private.auto_topup_failed((job -> 'payload' ->> 'attempt_id')::uuid, 'stripe_unreachable',
      coalesce(job ->> 'last_error', 'the charge could not be sent to Stripe'));
  end if;
end
$$;
comment on function private.auto_topup_job_finished(jsonb) is 'on_finish of credits.auto_topup: a dead job fails its attempt.';

-- ---------------------------------------------------------------------------
-- payment_intent.* of an auto top-up
-- ---------------------------------------------------------------------------
create or replace function private.auto_topup_payment_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  a public.auto_topup_attempts;
  pi text := obj ->> 'id';
  at timestamptz := private.now();
  new_grant uuid;
  failure jsonb := obj -> 'last_payment_error';
begin
  select x.* into a from public.auto_topup_attempts x
  where x.id = private.stripe_uuid(obj -> 'metadata' ->> 'attempt_id') or x.stripe_payment_intent_id = pi
  order by x.id = private.stripe_uuid(obj -> 'metadata' ->> 'attempt_id') desc nulls last
  limit 1
  for update;
  if a.id is null then
    return 'ignored';
  end if;
  if event ->> 'type' = 'payment_intent.succeeded' then
    if a.status = 'succeeded' then
      return 'processed'; -- a second delivery: granted already
    end if;
    -- Granted once, idempotent by PaymentIntent (a payment that succeeded after the attempt
    -- was given up still delivers what was paid for).
    new_grant := private.grant_credits(a.account_id, a.credits, 'purchase', null, 'auto_topup:' || pi, null,
      pg_catalog.jsonb_build_object('kind', 'auto_topup', 'item', a.credit_pack, 'attempt_id', a.id,
                                    'stripe_payment_intent_id', pi));
    update public.auto_topup_attempts x
    set status = 'succeeded', grant_id = new_grant, stripe_payment_intent_id = pi,
        failure_code = null, failure_message = null, finished_at = at
    where x.id = a.id;
    update public.auto_topup_settings t set consecutive_failures = 0, updated_at = at where t.account_id = a.account_id;
    perform private.emit_event(a.account_id, 'credits.auto_topup.succeeded', pg_catalog.jsonb_build_object(
      'account_id', a.account_id, 'attempt_id', a.id, 'credit_pack', a.credit_pack, 'credits', a.credits,
      'amount', a.amount, 'currency', a.currency, 'grant_id', new_grant, 'stripe_payment_intent_id', pi));
  elsif event ->> 'type' in ('payment_intent.payment_failed', 'payment_intent.requires_action', 'payment_intent.canceled') then
    perform private.auto_topup_failed(a.id,
      coalesce(failure ->> 'decline_code', failure ->> 'code',
               case event ->> 'type' when 'payment_intent.requires_action' then 'requires_action' else 'payment_failed' end),
      coalesce(failure ->> 'message', 'the payment did not go through'), pi);
  end if;
  return 'processed';
end
$$;
comment on function private.auto_topup_payment_event(jsonb, jsonb) is
  'payment_intent.* whose metadata.kind is auto_topup: succeeded grants the pack''s credits once (grant idempotency key auto_topup:<PaymentIntent>) and emits credits.auto_topup.succeeded; payment_failed / requires_action / canceled fail the attempt (private.auto_topup_failed).';

create or replace function private.stripe_payment_intent_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  pi text := obj ->> 'id';
  charge_id text := private.stripe_id(obj -> 'latest_charge');
begin
  if charge_id is not null then
    insert into private.stripe_charges as c (charge_id, payment_intent_id, customer_id, currency)
    values (charge_id, pi, private.stripe_id(obj -> 'customer'), obj ->> 'currency')
    on conflict on constraint stripe_charges_pkey do update set
      payment_intent_id = coalesce(c.payment_intent_id, excluded.payment_intent_id), updated_at = now();
  end if;
  if obj -> 'metadata' ->> 'kind' = 'auto_topup' then
    return private.auto_topup_payment_event(event, obj);
  end if;
  if private.sync_payments_for_charge(coalesce(charge_id, 'pi:' || pi), pi, null) = 0 then
    return 'ignored';
  end if;
  return 'processed';
end
$$;
comment on function private.stripe_payment_intent_event(jsonb, jsonb) is
  'payment_intent.*: links the PaymentIntent''s latest charge to the payment that names the PaymentIntent (checkout and invoice events decide the payment''s status); an auto top-up''s PaymentIntent (metadata.kind = auto_topup) settles its attempt (private.auto_topup_payment_event).';
