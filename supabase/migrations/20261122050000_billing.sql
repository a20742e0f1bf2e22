-- Billing with Stripe: customers, subscriptions and their history, payments, the
-- webhook event ledger, entitlements, and the checkout / portal entry points.
--
-- Model
--   billing_customers     account <-> Stripe customer, unique both ways. The checkout function
--                         reserves the row (status pending) before it asks Stripe for a
--                         customer, so concurrent checkouts of one account converge on one row,
--                         and asks Stripe with an idempotency key derived from the account id
--                         (customer-create:<account_id>[:<generation>]), so they converge on one
--                         customer too.
--   subscriptions         Stripe's subscription as last seen, with the (created, id) of the
--                         event that wrote it: the ordering guard of private.handle_stripe_event.
--   subscription_history  every plan / status / cancellation change, with the event behind it.
--   payments              credit-pack checkouts and subscription invoices: amount, status,
--                         Stripe ids, the credits they granted and took back.
--   webhook_events        every Stripe event received, once per (provider, event_id), with the
--                         outcome: processed | duplicate | ignored | failed.
--   account_entitlements  view: the plan an account is on now (free without a live subscription).
--
-- No foreign key points from one Stripe object to another (payments name their subscription
-- and customer by Stripe id, as text): Stripe delivers events in any order, so a child may
-- arrive before its parent. Foreign keys point only at our own rows (accounts, plans).
--
-- Live subscription: status trialing, active or past_due (Stripe keeps retrying a past_due
-- invoice; access continues until the subscription turns unpaid or canceled). An account
-- without one is on the free plan, whose period is the calendar month (UTC).
--
-- The Stripe processing itself (private.handle_stripe_event) is in the next migration.

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('billing_live_statuses', '["trialing", "active", "past_due"]',
   'Stripe subscription statuses that entitle an account to its plan; any other status falls back to the free plan.')
on conflict (key) do nothing;

-- ---------------------------------------------------------------------------
-- billing_customers
-- ---------------------------------------------------------------------------
create table public.billing_customers (
  account_id uuid primary key references public.accounts (id) on delete cascade,
  stripe_customer_id text unique check (stripe_customer_id ~ '^cus_[A-Za-z0-9_]+$'),
  status text not null default 'pending' check (status in ('pending', 'active', 'deleted')),
  generation integer not null default 1 check (generation > 0),
  email text,
  livemode boolean,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint billing_customers_active_has_id check (status <> 'active' or stripe_customer_id is not null)
);
comment on table public.billing_customers is
  'The Stripe customer of an account, unique both ways. pending: reserved by a checkout that is creating the customer; active: linked; deleted: the customer was deleted in Stripe (the next checkout creates a new one).';
comment on column public.billing_customers.generation is
  'Bumped when the Stripe customer is deleted, so the next customer is created with a new idempotency key (customer-create:<account_id>:<generation>).';

-- ---------------------------------------------------------------------------
-- subscriptions
-- ---------------------------------------------------------------------------
create table public.subscriptions (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  stripe_subscription_id text not null unique check (stripe_subscription_id ~ '^sub_[A-Za-z0-9_]+$'),
  stripe_customer_id text,
  plan_key text references public.plans (key) on update cascade,
  stripe_price_id text,
  quantity integer not null default 1 check (quantity >= 0),
  status text not null check (status in
    ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')),
  current_period_start timestamptz,
  current_period_end timestamptz,
  trial_start timestamptz,
  trial_end timestamptz,
  cancel_at_period_end boolean not null default false,
  cancel_at timestamptz,
  canceled_at timestamptz,
  ended_at timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  livemode boolean,
  last_event_id text not null,
  last_event_type text not null,
  last_event_created timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.subscriptions is
  'Stripe subscriptions as last applied. Status is Stripe''s; trialing, active and past_due are live (they decide the account''s plan). Written only by private.handle_stripe_event.';
comment on column public.subscriptions.plan_key is 'The plan whose stripe_price_id the subscription''s item uses; null when the price is not in the catalog.';
comment on column public.subscriptions.current_period_start is
  'From the subscription item (API 2025-03-31.basil and later) or, on older API versions, the subscription.';
comment on column public.subscriptions.last_event_id is
  'The event that wrote this state. Ordering guard: an event applies only if (terminal status, created, status precedence, type precedence, event id) is greater than that of this event (see private.stripe_subscription_event_rank).';
comment on column public.subscriptions.last_event_created is 'event.created of the event that wrote this state (one-second resolution).';
create index subscriptions_account_id_idx on public.subscriptions (account_id);
create index subscriptions_live_idx on public.subscriptions (account_id, current_period_end desc)
  where status in ('trialing', 'active', 'past_due');
create index subscriptions_plan_key_idx on public.subscriptions (plan_key);
create index subscriptions_stripe_customer_id_idx on public.subscriptions (stripe_customer_id);

-- ---------------------------------------------------------------------------
-- subscription_history
-- ---------------------------------------------------------------------------
create table public.subscription_history (
  id bigint generated always as identity primary key,
  subscription_id uuid not null references public.subscriptions (id) on delete cascade,
  account_id uuid not null references public.accounts (id) on delete cascade,
  stripe_subscription_id text not null,
  old_plan_key text,
  new_plan_key text,
  old_status text,
  new_status text not null,
  cancel_at_period_end boolean not null default false,
  reason text not null check (reason in
    ('created', 'upgraded', 'downgraded', 'plan_changed', 'status_changed', 'cancellation_scheduled',
     'cancellation_withdrawn', 'canceled')),
  stripe_event_id text,
  stripe_event_type text,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now()
);
comment on table public.subscription_history is
  'Every plan or status change of a subscription, with the reason and the Stripe event that caused it. Append-only.';
comment on column public.subscription_history.occurred_at is 'event.created of the Stripe event.';
create index subscription_history_subscription_id_idx on public.subscription_history (subscription_id, id);
create index subscription_history_account_id_idx on public.subscription_history (account_id, id desc);

create trigger subscription_history_append_only before update or delete on public.subscription_history
  for each row execute function private.refuse_change();
create trigger subscription_history_no_truncate before truncate on public.subscription_history
  for each statement execute function private.refuse_change();

-- ---------------------------------------------------------------------------
-- payments
-- ---------------------------------------------------------------------------
create table public.payments (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  kind text not null check (kind in ('credit_pack', 'subscription_invoice')),
  item_key text,
  quantity integer not null default 1 check (quantity > 0),
  amount bigint not null default 0 check (amount >= 0),
  currency text not null default 'usd' check (currency ~ '^[a-z]{3}$'),
  expected_amount bigint,
  status text not null default 'pending' check (status in
    ('pending', 'paid', 'failed', 'refunded', 'partially_refunded', 'disputed')),
  settlement text not null default 'pending' check (settlement in ('pending', 'failed', 'paid')),
  amount_refunded bigint not null default 0 check (amount_refunded >= 0),
  dispute_status text,
  flagged_reason text,
  stripe_checkout_session_id text unique,
  stripe_invoice_id text unique,
  stripe_payment_intent_id text,
  stripe_charge_id text,
  stripe_dispute_id text,
  stripe_subscription_id text,
  stripe_customer_id text,
  credits_due bigint not null default 0 check (credits_due >= 0),
  credits_granted bigint not null default 0 check (credits_granted >= 0),
  credits_clawed_back bigint not null default 0 check (credits_clawed_back >= 0),
  credits_held_by_dispute bigint not null default 0 check (credits_held_by_dispute >= 0),
  credit_adjustments integer not null default 0,
  grant_id uuid,
  billing_reason text,
  invoice_url text,
  invoice_pdf text,
  receipt_url text,
  period_start timestamptz,
  period_end timestamptz,
  paid_at timestamptz,
  livemode boolean,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint payments_one_source check (
    (kind = 'credit_pack' and stripe_checkout_session_id is not null)
    or (kind = 'subscription_invoice' and stripe_invoice_id is not null)),
  constraint payments_clawback_within_grant check (credits_clawed_back <= credits_granted),
  constraint payments_dispute_hold_within_clawback check (credits_held_by_dispute <= credits_clawed_back)
);
comment on table public.payments is
  'Money received: credit-pack checkouts and subscription invoices. status is derived: disputed (an open or lost dispute) > refunded > partially_refunded > the settlement (pending, paid, failed). Written only by private.handle_stripe_event.';
comment on column public.payments.amount is 'What the customer was charged (checkout amount_total, invoice amount_paid or amount_due), in the smallest currency unit.';
comment on column public.payments.expected_amount is 'The catalog price times the quantity, compared with what was actually paid net of tax (after discounts and coupons).';
comment on column public.payments.settlement is 'Whether the money arrived: pending < failed < paid (a later paid wins over an earlier failure, never the reverse).';
comment on column public.payments.flagged_reason is 'Why the payment was not credited automatically (amount or currency not matching the catalog, unknown item); null when it is fine.';
comment on column public.payments.credits_due is 'Credits this payment buys (pack credits x quantity, or the plan''s included credits x quantity); 0 when flagged.';
comment on column public.payments.credits_granted is 'Credits granted for it (once, keyed checkout:<session> or invoice:<invoice>).';
comment on column public.payments.credits_clawed_back is
  'Credits taken back now: for refunds floor(still delivered x amount_refunded / amount), where still delivered is credits_granted less what expired from the payment''s lots (never decreasing), plus what an open or lost dispute holds (credits_held_by_dispute).';
comment on column public.payments.credits_held_by_dispute is
  'The part of credits_clawed_back an open or lost dispute took: the rest of what the payment still delivers. A won dispute gives back exactly this.';
comment on column public.payments.credit_adjustments is 'How many clawbacks / restorations were written; makes each ledger idempotency key unique.';
create index payments_account_id_idx on public.payments (account_id, created_at desc);
create index payments_stripe_payment_intent_id_idx on public.payments (stripe_payment_intent_id);
create index payments_stripe_charge_id_idx on public.payments (stripe_charge_id);
create index payments_stripe_subscription_id_idx on public.payments (stripe_subscription_id);
create index payments_grant_id_idx on public.payments (grant_id);

-- ---------------------------------------------------------------------------
-- webhook_events
-- ---------------------------------------------------------------------------
create table public.webhook_events (
  id bigint generated always as identity primary key,
  provider text not null default 'stripe' check (provider in ('stripe')),
  event_id text not null check (length(event_id) between 1 and 255),
  type text not null check (length(type) between 1 and 255),
  status text not null check (status in ('processed', 'duplicate', 'ignored', 'failed')),
  attempts integer not null default 1 check (attempts > 0),
  error text,
  api_version text,
  livemode boolean,
  event_created timestamptz,
  payload jsonb not null,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  constraint webhook_events_provider_event_id_key unique (provider, event_id)
);
comment on table public.webhook_events is
  'Every webhook event received, once per (provider, event_id), written in the transaction that processed it. processed: applied; ignored: not a type we act on, or nothing of ours (recorded, answered 200); duplicate: a redelivery arrived (see attempts); failed: processing raised (error), Stripe will retry. Staff admins read it.';
comment on column public.webhook_events.attempts is 'Deliveries of this event so far (redeliveries count).';
comment on column public.webhook_events.error is 'Why processing failed, or why the event was ignored.';
create index webhook_events_received_at_idx on public.webhook_events (received_at desc);
create index webhook_events_status_idx on public.webhook_events (status) where status = 'failed';

-- ---------------------------------------------------------------------------
-- updated_at
-- ---------------------------------------------------------------------------
create trigger billing_customers_set_updated_at before update on public.billing_customers
  for each row execute function private.set_updated_at();
create trigger subscriptions_set_updated_at before update on public.subscriptions
  for each row execute function private.set_updated_at();
create trigger payments_set_updated_at before update on public.payments
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Row level security: members with billing.read read; nobody writes through the API
-- ---------------------------------------------------------------------------
alter table public.billing_customers enable row level security;
alter table public.subscriptions enable row level security;
alter table public.subscription_history enable row level security;
alter table public.payments enable row level security;
alter table public.webhook_events enable row level security;

grant select on public.billing_customers, public.subscriptions, public.subscription_history, public.payments
  to authenticated, service_role;
grant select on public.webhook_events to authenticated, service_role;

create policy "Members with billing.read can read their account's customer" on public.billing_customers
  for select to authenticated
  using (account_id in (select public.user_account_ids('billing.read')) or (select public.is_staff_admin()));
create policy "Members with billing.read can read their account's subscriptions" on public.subscriptions
  for select to authenticated
  using (account_id in (select public.user_account_ids('billing.read')) or (select public.is_staff_admin()));
create policy "Members with billing.read can read their account's subscription history" on public.subscription_history
  for select to authenticated
  using (account_id in (select public.user_account_ids('billing.read')) or (select public.is_staff_admin()));
create policy "Members with billing.read can read their account's payments" on public.payments
  for select to authenticated
  using (account_id in (select public.user_account_ids('billing.read')) or (select public.is_staff_admin()));
create policy "Staff admins can read webhook events" on public.webhook_events
  for select to authenticated
  using ((select public.is_staff_admin()));

-- A subscriber keeps seeing the plan they pay for after it is retired from sale.
drop policy "Users can read active plans and staff admins all plans" on public.plans;
create policy "Users can read active plans, their subscribed plans, and staff admins all plans" on public.plans
  for select to authenticated
  using (active
         or (select public.is_staff_admin())
         or key in (select s.plan_key from public.subscriptions s
                    where s.account_id in (select public.user_account_ids('billing.read'))));

-- ---------------------------------------------------------------------------
-- Live subscriptions and the account's plan
-- ---------------------------------------------------------------------------
create or replace function private.is_live_subscription_status(status text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select status in ('trialing', 'active', 'past_due')
  );
end
$$;
comment on function private.is_live_subscription_status(text) is
  'Whether a Stripe subscription status entitles the account to its plan: trialing, active, past_due (Stripe is still collecting). incomplete, incomplete_expired, unpaid, paused and canceled do not.';

create or replace function private.account_plan(
  account_id uuid,
  out plan_key text,
  out limits jsonb,
  out period_start timestamptz,
  out period_end timestamptz
)
language plpgsql
stable
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  live_start timestamptz;
  live_end timestamptz;
begin
  -- The live subscription with the highest tier (an account normally has one), else free.
  select s.plan_key, s.current_period_start, s.current_period_end
    into plan_key, live_start, live_end
  from public.subscriptions s
  join public.plans p on p.key = s.plan_key
  where s.account_id = account_plan.account_id
    and s.status in ('trialing', 'active', 'past_due')
  order by p.tier desc, s.current_period_end desc nulls last
  limit 1;
  plan_key := coalesce(plan_key, 'free');
  select p.limits into limits from public.plans p where p.key = plan_key;
  -- Its period is the subscription's current period while now is inside it; otherwise
  -- (free, or a renewal event not yet received) the calendar month in UTC.
  if live_start <= at and at < live_end then
    period_start := live_start;
    period_end := live_end;
  else
    period_start := pg_catalog.date_trunc('month', at, 'UTC');
    period_end := period_start + interval '1 month';
  end if;
end
$$;
comment on function private.account_plan(uuid) is
  'The plan an account is on now (its live subscription''s plan, else free), the plan''s limits and the current billing period (the subscription''s current period, else the calendar month in UTC). The one place that decides it: quotas and rate-limit overrides read it.';

create view public.account_entitlements
with (security_invoker = true)
as
  select a.id as account_id,
         p.key as plan_key,
         p.name as plan_name,
         p.tier,
         coalesce(s.status, 'free') as status,
         p.limits,
         p.features,
         p.included_credits,
         p.max_members,
         s.current_period_start,
         s.current_period_end,
         s.trial_end,
         coalesce(s.cancel_at_period_end, false) as cancel_at_period_end,
         s.stripe_subscription_id
  from public.accounts a
  left join lateral (
    select s.plan_key, s.status, s.current_period_start, s.current_period_end, s.trial_end,
           s.cancel_at_period_end, s.stripe_subscription_id
    from public.subscriptions s
    join public.plans sp on sp.key = s.plan_key
    where s.account_id = a.id and s.status in ('trialing', 'active', 'past_due')
    order by sp.tier desc, s.current_period_end desc nulls last
    limit 1
  ) s on true
  join public.plans p on p.key = coalesce(s.plan_key, 'free');
comment on view public.account_entitlements is
  'What each of your accounts is entitled to now: its live subscription''s plan (trialing, active or past_due), else free (status ''free''). Runs with the caller''s rights: members see their accounts; the subscription shows with billing.read.';

grant select on public.account_entitlements to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Checkout and the billing portal (called by the edge functions as the user)
-- ---------------------------------------------------------------------------
create or replace function private.customer_idempotency_key(account_id uuid, generation integer)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select 'customer-create:' || account_id::text || case when generation > 1 then ':' || generation::text else '' end
  );
end
$$;
comment on function private.customer_idempotency_key(uuid, integer) is
  'The Stripe Idempotency-Key for creating an account''s customer: customer-create:<account_id> (then :<generation> after a deleted customer).';

create or replace function public.begin_checkout(
  account_id uuid,
  plan text default null,
  credit_pack text default null,
  quantity integer default 1
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  chosen_plan public.plans;
  chosen_pack public.credit_packs;
  customer public.billing_customers;
  limits jsonb;
  profile_email text;
begin
  if begin_checkout.account_id is null then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'account_id is required';
  end if;
  if (plan is null) = (credit_pack is null) then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'give exactly one of plan and credit_pack';
  end if;
  if quantity is null or quantity < 1 or quantity > 100 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'quantity must be between 1 and 100';
  end if;
  perform private.require_permission(begin_checkout.account_id, 'billing.manage');

  if plan is not null then
    select p.* into chosen_plan from public.plans p
    where p.key = begin_checkout.plan and p.active and p.stripe_price_id is not null;
    if not found then
      raise exception using errcode = 'PT404', message = 'not_found', detail = pg_catalog.format('no plan %L for sale', plan);
    end if;
    if exists (select from public.subscriptions s
               where s.account_id = begin_checkout.account_id
                 and s.status in ('trialing', 'active', 'past_due', 'unpaid', 'paused')) then
      raise exception using errcode = 'PT409', message = 'already_subscribed',
        detail = 'this account already has a subscription',
        hint = 'change or cancel it in the billing portal';
    end if;
  else
    select c.* into chosen_pack from public.credit_packs c
    where c.key = begin_checkout.credit_pack and c.active and c.stripe_price_id is not null;
    if not found then
      raise exception using errcode = 'PT404', message = 'not_found', detail = pg_catalog.format('no credit pack %L for sale', credit_pack);
    end if;
  end if;

  select ap.limits into limits from private.account_plan(begin_checkout.account_id) ap;
  perform private.rate_limit('checkout', begin_checkout.account_id, limits);

  -- Reserve the account's customer row: concurrent checkouts all land on this one row.
  insert into public.billing_customers (account_id, status) values (begin_checkout.account_id, 'pending')
  on conflict on constraint billing_customers_pkey do nothing;
  select c.* into customer from public.billing_customers c where c.account_id = begin_checkout.account_id;
  select pr.email into profile_email from public.profiles pr where pr.id = uid;

  return pg_catalog.jsonb_build_object(
    'account_id', begin_checkout.account_id,
    'kind', case when plan is not null then 'plan' else 'credit_pack' end,
    'item', coalesce(chosen_plan.key, chosen_pack.key),
    'quantity', quantity,
    'mode', case when plan is not null then 'subscription' else 'payment' end,
    'stripe_price_id', coalesce(chosen_plan.stripe_price_id, chosen_pack.stripe_price_id),
    -- One trial per account: cancelling and subscribing again must not start another.
    'trial_days', case when exists (select from public.subscriptions s
                                    where s.account_id = begin_checkout.account_id and s.trial_start is not null)
                       then 0 else coalesce(chosen_plan.trial_days, 0) end,
    'stripe_customer_id', case when customer.status = 'active' then customer.stripe_customer_id end,
    'customer_idempotency_key', private.customer_idempotency_key(begin_checkout.account_id, customer.generation),
    'email', coalesce(customer.email, profile_email));
end
$$;
comment on function public.begin_checkout(uuid, text, text, integer) is
  'Used by the checkout edge function, as the signed-in user: checks billing.manage (42501), resolves the plan or pack for sale (PT404 not_found), refuses a second subscription (PT409 already_subscribed), applies the checkout rate limit (PT429), reserves the account''s billing customer row, and returns what the Stripe Checkout Session needs: {account_id, kind, item, quantity, mode, stripe_price_id, trial_days (0 when the account already had a trial), stripe_customer_id, customer_idempotency_key, email}.';

create or replace function private.attach_billing_customer(account_id uuid, stripe_customer_id text, email text default null)
returns text
language plpgsql
set search_path = ''
as $$
declare
  cur public.billing_customers;
begin
  -- Serialized on the account's row: the first customer wins and every caller gets it back.
  insert into public.billing_customers (account_id, status) values (attach_billing_customer.account_id, 'pending')
  on conflict on constraint billing_customers_pkey do nothing;
  select c.* into cur from public.billing_customers c where c.account_id = attach_billing_customer.account_id for update;
  if cur.status = 'active' then
    return cur.stripe_customer_id;
  end if;
  if exists (select from public.billing_customers c
             where c.stripe_customer_id = attach_billing_customer.stripe_customer_id
               and c.account_id <> attach_billing_customer.account_id) then
    raise exception using errcode = 'PT409', message = 'customer_taken',
      detail = 'this Stripe customer belongs to another account';
  end if;
  update public.billing_customers c
     set stripe_customer_id = attach_billing_customer.stripe_customer_id, status = 'active',
         email = coalesce(attach_billing_customer.email, c.email)
   where c.account_id = attach_billing_customer.account_id;
  perform private.audit('billing_customer.linked', 'billing_customer', attach_billing_customer.stripe_customer_id,
    attach_billing_customer.account_id, null,
    pg_catalog.jsonb_build_object('stripe_customer_id', attach_billing_customer.stripe_customer_id, 'source', 'checkout'));
  return attach_billing_customer.stripe_customer_id;
end
$$;
comment on function private.attach_billing_customer(uuid, text, text) is
  'Records the Stripe customer the checkout function created for an account and returns the account''s customer: the one already linked if another checkout got there first. PT409 customer_taken when the customer belongs to another account.';

create or replace function public.billing_portal_customer(account_id uuid)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  customer_id text;
begin
  perform private.require_user();
  perform private.require_permission(billing_portal_customer.account_id, 'billing.manage');
  select c.stripe_customer_id into customer_id from public.billing_customers c
  where c.account_id = billing_portal_customer.account_id and c.status = 'active';
  if customer_id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'this account has no Stripe customer yet',
      hint = 'buy a plan or a credit pack first';
  end if;
  return customer_id;
end
$$;
comment on function public.billing_portal_customer(uuid) is
  'Used by the billing-portal edge function, as the signed-in user: the account''s Stripe customer id. 42501 without billing.manage, PT404 not_found when the account has no customer.';

grant execute on function public.begin_checkout(uuid, text, text, integer) to authenticated;
grant execute on function public.billing_portal_customer(uuid) to authenticated;
