-- Stripe events: private.handle_stripe_event(event) and what it calls.
--
-- Entry points (private: only the stripe-webhook function, connected as the database owner,
-- and operators call them)
--   private.receive_stripe_event(payload) -> text   the webhook's one call: handle_stripe_event in
--       a subtransaction; if processing raises, the work is rolled back and the event is recorded
--       as failed (the webhook answers 500 so Stripe retries; a retry processes it again).
--   private.handle_stripe_event(event) -> text      records the event in webhook_events and applies
--       it, in the caller's transaction: processed | ignored, or duplicate when the event id was
--       already processed or ignored. Idempotent by event id.
--   private.apply_stripe_event(event) -> text       the dispatcher (no ledger): processed | ignored.
--   private.reprocess_stripe_events(since, include_ignored) -> jsonb   reapplies failed events
--       (and those ignored for want of an account) after a fix.
--   private.resync_payment_credits(account_id) -> int   re-derives payments' credits from state.
--
-- Event handling
--   checkout.session.completed          link the customer; payment mode: record the pack payment,
--                                       paid -> grant pack credits (never expire), unpaid -> pending
--   checkout.session.async_payment_succeeded / _failed   settle that payment paid / failed
--   checkout.session.expired            nothing to do (ignored)
--   customer.created / updated          link the customer when metadata.account_id names an account
--   customer.deleted                    unlink (the next checkout creates a new customer)
--   customer.subscription.created / updated / deleted / paused / resumed / trial_will_end
--                                       upsert under the ordering guard; trial_will_end also
--                                       notifies the billing managers
--   invoice.paid / payment_succeeded    record the subscription invoice paid; grant the plan's
--                                       included credits expiring at the period end, once per invoice
--   invoice.payment_failed              record it failed (unless already paid), notify billing managers
--   invoice.finalized                   record the invoice pending
--   invoice_payment.paid                link the invoice to its PaymentIntent / charge (basil+)
--   charge.refunded (and other charge.*) remember the refunded amount; claw back proportionally
--   charge.dispute.created / updated / closed   remember the dispute; claw back while open or
--                                       lost, give back when won
--   payment_intent.succeeded / payment_failed   link the PaymentIntent's charge to its payment
--   product.* / price.*                 update the matching catalog rows (active, price)
--   anything else                       recorded as ignored
--
-- Ordering (events arrive in any order, more than once; event.created has one-second resolution)
--   Subscriptions, disputes, customers, products and prices are states: an event applies only if
--   its rank is greater than the rank of the event that wrote the current state, where
--       rank = (terminal, event.created, status precedence, event type precedence, event.id)
--   compared left to right. terminal (canceled / incomplete_expired subscription, closed dispute,
--   deleted object) comes first so a final state is never resurrected; same-second ties go to the
--   status further along its lifecycle, then to the later event type (created < updated <
--   resumed < paused < deleted; trial_will_end lowest), then to the greater event id. Every
--   applied event replaces the whole state, so the result is the state of the highest-ranked
--   event whatever the arrival order.
--   Payments and charges are lattices merged monotonically: settlement pending < failed < paid,
--   amount_refunded only grows. Credits follow from the merged state (sync_payment), so they
--   converge too.
--
-- Children before parents: no foreign key between Stripe objects. Charge and dispute state is
-- kept in private.stripe_charges keyed by charge id until the payment it belongs to shows up.

-- ---------------------------------------------------------------------------
-- Private state
-- ---------------------------------------------------------------------------
create table private.stripe_charges (
  charge_id text primary key,
  payment_intent_id text,
  invoice_id text,
  customer_id text,
  amount bigint,
  amount_refunded bigint not null default 0 check (amount_refunded >= 0),
  currency text,
  dispute_id text,
  dispute_status text,
  dispute_event_created timestamptz,
  dispute_event_id text,
  updated_at timestamptz not null default now()
);
comment on table private.stripe_charges is
  'What charge and dispute events said about a charge (refunded amount, dispute status), kept until and after the payment it belongs to is known.';
create index stripe_charges_payment_intent_id_idx on private.stripe_charges (payment_intent_id);
create index stripe_charges_invoice_id_idx on private.stripe_charges (invoice_id);
alter table private.stripe_charges enable row level security;
create policy "Clients never access Stripe charges" on private.stripe_charges
  as restrictive for all to anon, authenticated using (false) with check (false);

create table private.stripe_object_versions (
  object_type text not null,
  object_id text not null,
  terminal boolean not null,
  event_created timestamptz not null,
  event_id text not null,
  primary key (object_type, object_id)
);
comment on table private.stripe_object_versions is
  'The rank of the last event applied to a customer, product or price: the ordering guard for those objects.';
alter table private.stripe_object_versions enable row level security;
create policy "Clients never access Stripe object versions" on private.stripe_object_versions
  as restrictive for all to anon, authenticated using (false) with check (false);

-- ---------------------------------------------------------------------------
-- Reading Stripe JSON
-- ---------------------------------------------------------------------------
create or replace function private.stripe_ts(value jsonb)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
  -- Stripe timestamps are unix seconds.
begin
  return (
    select case when pg_catalog.jsonb_typeof(value) = 'number' then pg_catalog.to_timestamp((value #>> '{}')::double precision) end
  );
end
$$;
comment on function private.stripe_ts(jsonb) is 'A Stripe timestamp (unix seconds) as timestamptz; null for JSON null or a missing field.';

create or replace function private.stripe_id(value jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
  -- An expandable field: the id as a string, or the expanded object's id.
begin
  return (
    select case pg_catalog.jsonb_typeof(value)
             when 'string' then value #>> '{}'
             when 'object' then value ->> 'id'
           end
  );
end
$$;
comment on function private.stripe_id(jsonb) is 'The id of an expandable Stripe field (a string, or an expanded object), else null.';

create or replace function private.stripe_uuid(value text)
returns uuid
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select case when value ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then value::uuid end
  );
end
$$;
comment on function private.stripe_uuid(text) is 'The text as a uuid, or null when it is not one (metadata is free text).';

create or replace function private.stripe_account(hints text[], customer_id text)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  hint text;
  found_id uuid;
begin
  -- The first hint (client_reference_id, metadata.account_id, ...) naming an existing account,
  -- else the account linked to the customer.
  foreach hint in array coalesce(hints, '{}'::text[]) loop
    if hint ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      select a.id into found_id from public.accounts a where a.id = hint::uuid;
      if found_id is not null then
        return found_id;
      end if;
    end if;
  end loop;
  if customer_id is not null then
    select c.account_id into found_id from public.billing_customers c where c.stripe_customer_id = customer_id;
  end if;
  return found_id;
end
$$;
comment on function private.stripe_account(text[], text) is
  'Maps a Stripe object to an account: the first hint that names an existing account (client_reference_id, metadata.account_id), else the account linked to the customer; null when none.';

-- ---------------------------------------------------------------------------
-- The ordering guard
-- ---------------------------------------------------------------------------
create or replace function private.stripe_subscription_status_rank(status text)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select case status
      when 'incomplete' then 1 when 'trialing' then 2 when 'active' then 3 when 'paused' then 4
      when 'past_due' then 5 when 'unpaid' then 6 when 'incomplete_expired' then 7 when 'canceled' then 8
      else 0 end
  );
end
$$;
comment on function private.stripe_subscription_status_rank(text) is
  'Lifecycle precedence of subscription statuses, for same-second ties: the status further along wins.';

create or replace function private.stripe_event_type_rank(type text)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select case
      when type like '%.trial_will_end' then 1
      when type like '%.created' then 2
      when type like '%.updated' then 3
      when type like '%.resumed' then 4
      when type like '%.paused' then 5
      when type like '%.closed' then 6
      when type like '%.deleted' then 7
      else 0 end
  );
end
$$;
comment on function private.stripe_event_type_rank(text) is
  'Precedence of event types on the same object in the same second: trial_will_end < created < updated < resumed < paused < closed < deleted.';

create or replace function private.stripe_is_newer(
  object_type text, object_id text, terminal boolean, created timestamptz, event_id text
) returns boolean
language plpgsql
set search_path = ''
as $$
declare
  applied boolean;
begin
  -- One conditional upsert: records the event's rank when it beats the stored one.
  insert into private.stripe_object_versions as v (object_type, object_id, terminal, event_created, event_id)
  values (stripe_is_newer.object_type, stripe_is_newer.object_id, stripe_is_newer.terminal, stripe_is_newer.created,
          stripe_is_newer.event_id)
  on conflict on constraint stripe_object_versions_pkey do update
    set terminal = excluded.terminal, event_created = excluded.event_created, event_id = excluded.event_id
    where (excluded.terminal, excluded.event_created, excluded.event_id) > (v.terminal, v.event_created, v.event_id)
  returning true into applied;
  return coalesce(applied, false);
end
$$;
comment on function private.stripe_is_newer(text, text, boolean, timestamptz, text) is
  'Ordering guard for customers, products and prices: true (and remembered) when (terminal, created, event id) is greater than that of the last event applied to the object.';

-- ---------------------------------------------------------------------------
-- The audit trail of billing, written at the end of the event
-- ---------------------------------------------------------------------------
create or replace function private.billing_audit(
  action text, entity text, entity_id text, account_id uuid, before jsonb, after jsonb
) returns void
language plpgsql
set search_path = ''
as $$
begin
  -- While handle_stripe_event runs, entries wait in a transaction-local queue and are written
  -- when the event is done: the audit chain's lock is then held only for the inserts and the
  -- commit, not for the whole event. Elsewhere they are written at once.
  if pg_catalog.current_setting('ledgerbase.billing_audit_defer', true) = 'on' then
    perform pg_catalog.set_config('ledgerbase.billing_audit_queue',
      (coalesce(nullif(pg_catalog.current_setting('ledgerbase.billing_audit_queue', true), ''), '[]')::jsonb
       || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('action', action, 'entity', entity,
            'entity_id', entity_id, 'account_id', account_id, 'before', before, 'after', after)))::text, true);
  else
    perform private.audit(action, entity, entity_id, account_id, before, after);
  end if;
end
$$;
comment on function private.billing_audit(text, text, text, uuid, jsonb, jsonb) is
  'private.audit for billing: deferred to the end of the Stripe event being handled (see private.flush_billing_audit), immediate otherwise.';

create or replace function private.flush_billing_audit()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  queue jsonb := coalesce(nullif(pg_catalog.current_setting('ledgerbase.billing_audit_queue', true), ''), '[]')::jsonb;
  entry jsonb;
begin
  perform pg_catalog.set_config('ledgerbase.billing_audit_queue', '', true);
  perform pg_catalog.set_config('ledgerbase.billing_audit_defer', '', true);
  for entry in select e.value from jsonb_array_elements(queue) e loop
    perform private.audit(entry ->> 'action', entry ->> 'entity', entry ->> 'entity_id', (entry ->> 'account_id')::uuid,
                          nullif(entry -> 'before', 'null'::jsonb), nullif(entry -> 'after', 'null'::jsonb));
  end loop;
  return pg_catalog.jsonb_array_length(queue);
end
$$;
comment on function private.flush_billing_audit() is 'Writes the audit entries queued by private.billing_audit during the current Stripe event, in order; returns how many.';

create or replace function private.audit_payment(before public.payments, after public.payments)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- One entry per change of a payment: payment.<status> when it is new or its status changed,
  -- payment.credits_adjusted when only its credits did.
  if before.id is not null
     and (before.status, before.settlement, before.amount_refunded, before.credits_granted, before.credits_clawed_back,
          before.dispute_status, before.flagged_reason)
         is not distinct from
         (after.status, after.settlement, after.amount_refunded, after.credits_granted, after.credits_clawed_back,
          after.dispute_status, after.flagged_reason) then
    return;
  end if;
  perform private.billing_audit(
    case when before.id is null or before.status is distinct from after.status then 'payment.' || after.status
         else 'payment.credits_adjusted' end,
    'payment', after.id::text, after.account_id,
    case when before.id is not null then pg_catalog.jsonb_build_object('status', before.status, 'settlement', before.settlement,
      'amount_refunded', before.amount_refunded, 'credits_granted', before.credits_granted,
      'credits_clawed_back', before.credits_clawed_back, 'dispute_status', before.dispute_status) end,
    pg_catalog.jsonb_build_object('kind', after.kind, 'item', after.item_key, 'quantity', after.quantity, 'amount', after.amount,
      'currency', after.currency, 'status', after.status, 'settlement', after.settlement, 'amount_refunded', after.amount_refunded,
      'credits_granted', after.credits_granted, 'credits_clawed_back', after.credits_clawed_back,
      'credits_held_by_dispute', after.credits_held_by_dispute,
      'dispute_status', after.dispute_status, 'flagged_reason', after.flagged_reason,
      'stripe_checkout_session_id', after.stripe_checkout_session_id, 'stripe_invoice_id', after.stripe_invoice_id));
end
$$;
comment on function private.audit_payment(public.payments, public.payments) is
  'Audits a payment''s change (payments, refunds, disputes, credits) as one entry: payment.<status> when new or its status changed, else payment.credits_adjusted; nothing when nothing changed.';

-- ---------------------------------------------------------------------------
-- Customers
-- ---------------------------------------------------------------------------
create or replace function private.link_stripe_customer(account_id uuid, customer_id text, email text, livemode boolean, source text)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  cur public.billing_customers;
begin
  if account_id is null or customer_id is null then
    return false;
  end if;
  -- A customer Stripe deleted is never linked again.
  if exists (select from private.stripe_object_versions v
             where v.object_type = 'customer' and v.object_id = customer_id and v.terminal) then
    return false;
  end if;
  -- The customer already belongs to an account: keep it there.
  if exists (select from public.billing_customers c where c.stripe_customer_id = customer_id) then
    update public.billing_customers c set email = coalesce(link_stripe_customer.email, c.email)
    where c.stripe_customer_id = customer_id and link_stripe_customer.email is not null;
    return false;
  end if;
  insert into public.billing_customers (account_id, status) values (link_stripe_customer.account_id, 'pending')
  on conflict on constraint billing_customers_pkey do nothing;
  select c.* into cur from public.billing_customers c where c.account_id = link_stripe_customer.account_id for update;
  if cur.status = 'active' then
    return false; -- the account keeps its first customer
  end if;
  update public.billing_customers c
     set stripe_customer_id = customer_id, status = 'active', email = coalesce(link_stripe_customer.email, c.email),
         livemode = link_stripe_customer.livemode
   where c.account_id = link_stripe_customer.account_id;
  perform private.billing_audit('billing_customer.linked', 'billing_customer', customer_id, link_stripe_customer.account_id,
    pg_catalog.to_jsonb(cur), pg_catalog.jsonb_build_object('stripe_customer_id', customer_id, 'source', source));
  return true;
end
$$;
comment on function private.link_stripe_customer(uuid, text, text, boolean, text) is
  'Links a Stripe customer to an account on first sight (unless the customer is linked elsewhere, was deleted, or the account has one already). Returns whether it linked.';

create or replace function private.stripe_customer_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  customer_id text := obj ->> 'id';
  is_deleted boolean := event ->> 'type' = 'customer.deleted' or coalesce((obj ->> 'deleted')::boolean, false);
  account uuid;
  before public.billing_customers;
begin
  if not private.stripe_is_newer('customer', customer_id, is_deleted, private.stripe_ts(event -> 'created'), event ->> 'id') then
    return 'processed'; -- an older state of the customer: nothing to apply
  end if;
  if is_deleted then
    select c.* into before from public.billing_customers c where c.stripe_customer_id = customer_id for update;
    if not found then
      return 'ignored';
    end if;
    update public.billing_customers c
       set stripe_customer_id = null, status = 'deleted', generation = c.generation + 1
     where c.account_id = before.account_id;
    perform private.billing_audit('billing_customer.deleted', 'billing_customer', customer_id, before.account_id,
      pg_catalog.to_jsonb(before), null);
    return 'processed';
  end if;
  account := private.stripe_account(array[obj -> 'metadata' ->> 'account_id'], customer_id);
  if account is null then
    return 'ignored';
  end if;
  perform private.link_stripe_customer(account, customer_id, obj ->> 'email', (obj ->> 'livemode')::boolean, event ->> 'type');
  update public.billing_customers c set email = coalesce(obj ->> 'email', c.email)
  where c.stripe_customer_id = customer_id;
  return 'processed';
end
$$;
comment on function private.stripe_customer_event(jsonb, jsonb) is 'customer.created / updated / deleted: link on first sight (metadata.account_id), keep the email, unlink on deletion.';

-- ---------------------------------------------------------------------------
-- Subscriptions
-- ---------------------------------------------------------------------------
create or replace function private.stripe_subscription_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  event_type text := event ->> 'type';
  event_id text := event ->> 'id';
  created timestamptz := private.stripe_ts(event -> 'created');
  sub_id text := obj ->> 'id';
  status text := obj ->> 'status';
  customer_id text := private.stripe_id(obj -> 'customer');
  items jsonb := coalesce(obj -> 'items' -> 'data', '[]'::jsonb);
  item jsonb;
  price_id text;
  plan public.plans;
  cur public.subscriptions;
  updated public.subscriptions;
  account uuid;
  reason text;
begin
  if sub_id is null or status is null or private.stripe_subscription_status_rank(status) = 0 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'subscription without a known id or status';
  end if;

  -- The item that carries the plan: the first whose price is in the catalog, else the first.
  select i.value into item
  from jsonb_array_elements(items) with ordinality i(value, n)
  order by not exists (select from public.plans p
                       where p.stripe_price_id = coalesce(private.stripe_id(i.value -> 'price'), i.value -> 'plan' ->> 'id')), i.n
  limit 1;
  price_id := coalesce(private.stripe_id(item -> 'price'), item -> 'plan' ->> 'id');
  select p.* into plan from public.plans p where p.stripe_price_id = price_id;

  select s.* into cur from public.subscriptions s where s.stripe_subscription_id = sub_id for update;
  account := coalesce(cur.account_id, private.stripe_account(array[obj -> 'metadata' ->> 'account_id'], customer_id));
  if account is null then
    raise exception using errcode = 'PT404', message = 'unknown_account',
      detail = pg_catalog.format('subscription %s: no account in metadata.account_id and customer %s is not linked', sub_id, customer_id);
  end if;
  perform private.link_stripe_customer(account, customer_id, null, (obj ->> 'livemode')::boolean, event_type);

  if cur.id is not null and
     (private.is_terminal_subscription_status(status), created, private.stripe_subscription_status_rank(status),
      private.stripe_event_type_rank(event_type), event_id)
     <= (private.is_terminal_subscription_status(cur.status), cur.last_event_created,
         private.stripe_subscription_status_rank(cur.status), private.stripe_event_type_rank(cur.last_event_type),
         cur.last_event_id) then
    return 'processed'; -- an older (or equal) state: the newer one stays
  end if;

  insert into public.subscriptions as s (
    account_id, stripe_subscription_id, stripe_customer_id, plan_key, stripe_price_id, quantity, status,
    current_period_start, current_period_end, trial_start, trial_end, cancel_at_period_end, cancel_at,
    canceled_at, ended_at, metadata, livemode, last_event_id, last_event_type, last_event_created)
  values (
    account, sub_id, customer_id, plan.key, price_id, coalesce((item ->> 'quantity')::integer, 1), status,
    -- API 2025-03-31.basil moved the period to the items; older versions have it on the subscription.
    private.stripe_ts(coalesce(item -> 'current_period_start', obj -> 'current_period_start')),
    private.stripe_ts(coalesce(item -> 'current_period_end', obj -> 'current_period_end')),
    private.stripe_ts(obj -> 'trial_start'), private.stripe_ts(obj -> 'trial_end'),
    coalesce((obj ->> 'cancel_at_period_end')::boolean, false), private.stripe_ts(obj -> 'cancel_at'),
    private.stripe_ts(obj -> 'canceled_at'), private.stripe_ts(obj -> 'ended_at'),
    case when pg_catalog.jsonb_typeof(obj -> 'metadata') = 'object' then obj -> 'metadata' else '{}'::jsonb end,
    (obj ->> 'livemode')::boolean, event_id, event_type, created)
  on conflict (stripe_subscription_id) do update set
    stripe_customer_id = excluded.stripe_customer_id, plan_key = excluded.plan_key, stripe_price_id = excluded.stripe_price_id,
    quantity = excluded.quantity, status = excluded.status,
    current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end,
    trial_start = excluded.trial_start, trial_end = excluded.trial_end,
    cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at,
    canceled_at = excluded.canceled_at, ended_at = excluded.ended_at, metadata = excluded.metadata,
    livemode = excluded.livemode, last_event_id = excluded.last_event_id, last_event_type = excluded.last_event_type,
    last_event_created = excluded.last_event_created
  returning s.* into updated;

  reason := case
    when cur.id is null then 'created'
    when updated.status in ('canceled', 'incomplete_expired') and cur.status is distinct from updated.status then 'canceled'
    when cur.plan_key is distinct from updated.plan_key then
      case when (select p.tier from public.plans p where p.key = updated.plan_key)
                > (select p.tier from public.plans p where p.key = cur.plan_key) then 'upgraded'
           when (select p.tier from public.plans p where p.key = updated.plan_key)
                < (select p.tier from public.plans p where p.key = cur.plan_key) then 'downgraded'
           else 'plan_changed' end
    when cur.status is distinct from updated.status then 'status_changed'
    when updated.cancel_at_period_end and not cur.cancel_at_period_end then 'cancellation_scheduled'
    when cur.cancel_at_period_end and not updated.cancel_at_period_end then 'cancellation_withdrawn'
  end;
  if reason is not null then
    insert into public.subscription_history (subscription_id, account_id, stripe_subscription_id, old_plan_key, new_plan_key,
      old_status, new_status, cancel_at_period_end, reason, stripe_event_id, stripe_event_type, occurred_at)
    values (updated.id, updated.account_id, sub_id, cur.plan_key, updated.plan_key, cur.status, updated.status,
      updated.cancel_at_period_end, reason, event_id, event_type, created);
    perform private.billing_audit('subscription.' || reason, 'subscription', sub_id, updated.account_id,
      case when cur.id is null then null else pg_catalog.jsonb_build_object(
        'plan_key', cur.plan_key, 'status', cur.status, 'cancel_at_period_end', cur.cancel_at_period_end) end,
      pg_catalog.jsonb_build_object('plan_key', updated.plan_key, 'status', updated.status,
        'cancel_at_period_end', updated.cancel_at_period_end, 'stripe_event_id', event_id));
  end if;
  return 'processed';
end
$$;
comment on function private.stripe_subscription_event(jsonb, jsonb) is
  'customer.subscription.*: upserts the subscription under the ordering guard (see the migration header), reading the period from the plan''s item (basil+) or the subscription, and writes subscription_history and the audit log on plan, status or cancellation changes. PT404 unknown_account when no account can be found.';

create or replace function private.is_terminal_subscription_status(status text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select status in ('canceled', 'incomplete_expired')
  );
end
$$;
comment on function private.is_terminal_subscription_status(text) is 'Statuses a Stripe subscription never leaves: canceled, incomplete_expired.';

-- ---------------------------------------------------------------------------
-- Payments: state, credits, clawbacks
-- ---------------------------------------------------------------------------
create or replace function private.settlement_rank(settlement text)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select case settlement when 'pending' then 0 when 'failed' then 1 when 'paid' then 2 end
  );
end
$$;
comment on function private.settlement_rank(text) is 'pending < failed < paid: a payment''s settlement only moves up.';

create or replace function private.dispute_holds_credits(status text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select status in ('warning_needs_response', 'warning_under_review', 'needs_response', 'under_review', 'lost')
  );
end
$$;
comment on function private.dispute_holds_credits(text) is
  'Dispute statuses during which (or after which) the disputed payment''s credits stay clawed back: open disputes and inquiries, and lost. won, warning_closed and prevented give them back.';

create or replace function private.dispute_status_rank(status text)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select case
      when status in ('warning_needs_response', 'needs_response') then 1
      when status in ('warning_under_review', 'under_review') then 2
      when status in ('won', 'lost', 'warning_closed', 'prevented') then 3
      else 0 end
  );
end
$$;
comment on function private.dispute_status_rank(text) is 'Lifecycle precedence of dispute statuses, for same-second ties.';

create or replace function private.sync_payment(payment_id uuid, audit boolean default true)
returns public.payments
language plpgsql
set search_path = ''
as $$
declare
  p public.payments;
  before public.payments;
  refunded bigint;
  charge_id text;
  dispute record;
  expiry timestamptz;
  source text;
  expired bigint;
  live bigint;
  refund_held bigint;
  refund_target bigint;
  dispute_target bigint;
  delta bigint;
  key_ref text;
  restore_expiry timestamptz;
begin
  select x.* into p from public.payments x where x.id = sync_payment.payment_id for update;
  if not found then
    return p;
  end if;
  before := p;

  -- What charge and dispute events said about this payment's charge.
  select max(c.amount_refunded), max(c.charge_id) into refunded, charge_id
  from private.stripe_charges c
  where c.charge_id = p.stripe_charge_id
     or (p.stripe_payment_intent_id is not null and c.payment_intent_id = p.stripe_payment_intent_id)
     or (p.stripe_invoice_id is not null and c.invoice_id = p.stripe_invoice_id);
  select c.dispute_id, c.dispute_status into dispute
  from private.stripe_charges c
  where c.dispute_id is not null
    and (c.charge_id = p.stripe_charge_id
         or (p.stripe_payment_intent_id is not null and c.payment_intent_id = p.stripe_payment_intent_id)
         or (p.stripe_invoice_id is not null and c.invoice_id = p.stripe_invoice_id))
  order by c.dispute_event_created desc, c.dispute_event_id desc
  limit 1;
  p.amount_refunded := greatest(p.amount_refunded, least(coalesce(refunded, 0), p.amount));
  p.stripe_charge_id := coalesce(p.stripe_charge_id, charge_id);
  p.stripe_dispute_id := coalesce(dispute.dispute_id, p.stripe_dispute_id);
  p.dispute_status := coalesce(dispute.dispute_status, p.dispute_status);

  -- Credits the payment buys, once.
  source := case p.kind when 'credit_pack' then 'purchase' else 'subscription' end;
  expiry := case p.kind when 'subscription_invoice' then p.period_end end;
  if p.settlement = 'paid' and p.credits_due > 0 and p.credits_granted = 0 and p.flagged_reason is null
     and (expiry is null or expiry > private.now()) then
    p.grant_id := private.grant_credits(p.account_id, p.credits_due, source, expiry,
      case p.kind when 'credit_pack' then 'checkout:' || p.stripe_checkout_session_id else 'invoice:' || p.stripe_invoice_id end,
      p.id, pg_catalog.jsonb_build_object('payment_id', p.id, 'kind', p.kind, 'item', p.item_key, 'quantity', p.quantity));
    p.credits_granted := p.credits_due;
  end if;

  -- Clawbacks follow the state: refunds in proportion, the rest while a dispute holds it, both
  -- out of what the payment still delivers. Credits of its lots (the grant, and any given back
  -- after a won dispute) that expired were never usable after that: taking them back again
  -- would take credits bought separately, or leave a debt.
  if p.credits_granted > 0 then
    select coalesce(sum(-l.delta), 0) into expired
    from public.credit_ledger l
    where l.reason = 'expire'
      and l.grant_id in (select g.id from public.credit_grants g
                         where g.id = p.grant_id or (g.payment_id = p.id and g.source <> 'clawback'));
    live := greatest(p.credits_granted - expired, 0);
    refund_held := p.credits_clawed_back - p.credits_held_by_dispute;
    -- A refund only ever takes more: what an earlier refund took stays taken, even when the
    -- rest of the lot expired since.
    refund_target := greatest(refund_held,
      case when p.amount > 0 then (live * p.amount_refunded) / p.amount else 0 end);
    -- An open or lost dispute holds the rest; while it holds it gives back only what a refund
    -- now accounts for. Once it no longer holds, exactly what it took is given back.
    dispute_target := case when private.dispute_holds_credits(p.dispute_status)
      then greatest(live - refund_target, p.credits_held_by_dispute - (refund_target - refund_held), 0)
      else 0 end;
    delta := refund_target + dispute_target - p.credits_clawed_back;
    key_ref := coalesce(p.stripe_charge_id, p.stripe_payment_intent_id, p.id::text);
    if delta > 0 then
      perform private.clawback_credits(p.account_id, delta, 'clawback',
        pg_catalog.format('clawback:%s:%s', key_ref, p.credit_adjustments + 1), p.grant_id, p.id,
        pg_catalog.jsonb_build_object('payment_id', p.id, 'amount_refunded', p.amount_refunded,
          'dispute_id', p.stripe_dispute_id, 'dispute_status', p.dispute_status, 'credits_expired', expired));
      p.credits_clawed_back := p.credits_clawed_back + delta;
      p.credit_adjustments := p.credit_adjustments + 1;
    elsif delta < 0 then
      -- A won dispute gives the credits back, expiring when the original grant does.
      select g.expires_at into restore_expiry from public.credit_grants g where g.id = p.grant_id;
      if restore_expiry is null or restore_expiry > private.now() then
        perform private.grant_credits(p.account_id, -delta, source, restore_expiry,
          pg_catalog.format('restore:%s:%s', key_ref, p.credit_adjustments + 1), p.id,
          pg_catalog.jsonb_build_object('payment_id', p.id, 'dispute_id', p.stripe_dispute_id, 'dispute_status', p.dispute_status));
      end if;
      p.credits_clawed_back := p.credits_clawed_back + delta;
      p.credit_adjustments := p.credit_adjustments + 1;
    end if;
    p.credits_held_by_dispute := dispute_target;
  end if;

  p.status := case
    when private.dispute_holds_credits(p.dispute_status) then 'disputed'
    when p.amount > 0 and p.amount_refunded >= p.amount then 'refunded'
    when p.amount_refunded > 0 then 'partially_refunded'
    else p.settlement end;

  update public.payments x set
    amount_refunded = p.amount_refunded, stripe_charge_id = p.stripe_charge_id, stripe_dispute_id = p.stripe_dispute_id,
    dispute_status = p.dispute_status, grant_id = p.grant_id, credits_granted = p.credits_granted,
    credits_clawed_back = p.credits_clawed_back, credits_held_by_dispute = p.credits_held_by_dispute,
    credit_adjustments = p.credit_adjustments, status = p.status
  where x.id = p.id
    and (x.amount_refunded, x.stripe_charge_id, x.stripe_dispute_id, x.dispute_status, x.grant_id, x.credits_granted,
         x.credits_clawed_back, x.credits_held_by_dispute, x.status)
        is distinct from
        (p.amount_refunded, p.stripe_charge_id, p.stripe_dispute_id, p.dispute_status, p.grant_id, p.credits_granted,
         p.credits_clawed_back, p.credits_held_by_dispute, p.status);

  if sync_payment.audit then
    perform private.audit_payment(before, p);
  end if;
  return p;
end
$$;
comment on function private.sync_payment(uuid, boolean) is
  'Brings a payment in line with everything known about it: refunded amount and dispute from private.stripe_charges, the credit grant once paid (unless flagged), clawbacks to floor(still delivered x refunded / amount) (never less than earlier refunds took) plus the rest while a dispute is open or lost (exactly that given back when it is won), where still delivered is credits_granted less what expired from the payment''s lots, the derived status, and (unless audit is false: the caller audits) one audit entry for the change. Idempotent: a second call changes nothing.';

create or replace function private.upsert_payment(
  account_id uuid,
  kind text,
  settlement text,
  source_id text,
  fields jsonb
) returns public.payments
language plpgsql
set search_path = ''
as $$
declare
  p public.payments;
  before public.payments;
  moves_up boolean;
  inserted boolean;
begin
  -- Create the row once (keyed by checkout session or invoice), then lock it.
  if kind = 'credit_pack' then
    insert into public.payments (account_id, kind, settlement, stripe_checkout_session_id)
    values (upsert_payment.account_id, kind, 'pending', source_id)
    on conflict (stripe_checkout_session_id) do nothing
    returning true into inserted;
    select x.* into p from public.payments x where x.stripe_checkout_session_id = source_id for update;
  else
    insert into public.payments (account_id, kind, settlement, stripe_invoice_id)
    values (upsert_payment.account_id, kind, 'pending', source_id)
    on conflict (stripe_invoice_id) do nothing
    returning true into inserted;
    select x.* into p from public.payments x where x.stripe_invoice_id = source_id for update;
  end if;
  before := p;

  -- Ids only ever fill in; amounts and details come from the highest settlement seen.
  moves_up := private.settlement_rank(upsert_payment.settlement) >= private.settlement_rank(p.settlement);
  update public.payments x set
    settlement = case when moves_up then upsert_payment.settlement else x.settlement end,
    status = case when x.status in ('pending', 'failed', 'paid') and moves_up then upsert_payment.settlement else x.status end,
    item_key = case when moves_up then coalesce(fields ->> 'item_key', x.item_key) else x.item_key end,
    quantity = case when moves_up then coalesce((fields ->> 'quantity')::integer, x.quantity) else x.quantity end,
    amount = case when moves_up then coalesce((fields ->> 'amount')::bigint, x.amount) else x.amount end,
    currency = case when moves_up then coalesce(fields ->> 'currency', x.currency) else x.currency end,
    expected_amount = case when moves_up then coalesce((fields ->> 'expected_amount')::bigint, x.expected_amount) else x.expected_amount end,
    flagged_reason = case when moves_up then fields ->> 'flagged_reason' else x.flagged_reason end,
    credits_due = case when moves_up then coalesce((fields ->> 'credits_due')::bigint, x.credits_due) else x.credits_due end,
    billing_reason = coalesce(fields ->> 'billing_reason', x.billing_reason),
    invoice_url = coalesce(fields ->> 'invoice_url', x.invoice_url),
    invoice_pdf = coalesce(fields ->> 'invoice_pdf', x.invoice_pdf),
    receipt_url = coalesce(fields ->> 'receipt_url', x.receipt_url),
    period_start = coalesce((fields ->> 'period_start')::timestamptz, x.period_start),
    period_end = coalesce((fields ->> 'period_end')::timestamptz, x.period_end),
    paid_at = case when upsert_payment.settlement = 'paid' then coalesce(x.paid_at, (fields ->> 'paid_at')::timestamptz, private.now()) else x.paid_at end,
    stripe_payment_intent_id = coalesce(x.stripe_payment_intent_id, fields ->> 'payment_intent_id'),
    stripe_charge_id = coalesce(x.stripe_charge_id, fields ->> 'charge_id'),
    stripe_subscription_id = coalesce(x.stripe_subscription_id, fields ->> 'subscription_id'),
    stripe_customer_id = coalesce(x.stripe_customer_id, fields ->> 'customer_id'),
    stripe_invoice_id = coalesce(x.stripe_invoice_id, fields ->> 'invoice_id'),
    livemode = coalesce((fields ->> 'livemode')::boolean, x.livemode)
  where x.id = p.id
  returning x.* into p;

  if p.settlement = 'paid' and before.settlement <> 'paid' then
    perform private.on_payment_succeeded(p.account_id);
  end if;
  p := private.sync_payment(p.id, audit => false);
  perform private.audit_payment(case when coalesce(inserted, false) then null else before end, p);
  return p;
end
$$;
comment on function private.upsert_payment(uuid, text, text, text, jsonb) is
  'Records a credit-pack checkout (keyed by session) or a subscription invoice (keyed by invoice), merging monotonically (settlement pending < failed < paid; ids only fill in), calls the referral hook on the first successful payment, audits, and syncs credits (private.sync_payment).';

create or replace function private.check_amount(expected bigint, expected_currency text, charged bigint, charged_currency text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (
    select case
      when charged_currency is distinct from expected_currency then
        pg_catalog.format('currency_mismatch: expected %s, got %s', expected_currency, coalesce(charged_currency, 'none'))
      when charged is distinct from expected then
        pg_catalog.format('amount_mismatch: expected %s %s, got %s', expected, expected_currency, coalesce(charged::text, 'none'))
    end
  );
end
$$;
comment on function private.check_amount(bigint, text, bigint, text) is 'Null when the charged amount and currency match the catalog; otherwise why they do not (the payment''s flagged_reason).';

-- ---------------------------------------------------------------------------
-- Checkout sessions (credit packs)
-- ---------------------------------------------------------------------------
create or replace function private.stripe_checkout_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  event_type text := event ->> 'type';
  customer_id text := private.stripe_id(obj -> 'customer');
  metadata jsonb := case when pg_catalog.jsonb_typeof(obj -> 'metadata') = 'object' then obj -> 'metadata' else '{}'::jsonb end;
  account uuid;
  pack public.credit_packs;
  quantity integer;
  settlement text;
  expected bigint;
  -- What was actually paid, net of tax: discounts and coupons lower it, the subtotal does not
  -- see them. Tax is the customer's business with the tax authority, not credits.
  paid bigint := (obj ->> 'amount_total')::bigint - coalesce((obj -> 'total_details' ->> 'amount_tax')::bigint, 0);
  flag text;
begin
  account := private.stripe_account(array[obj ->> 'client_reference_id', metadata ->> 'account_id'], customer_id);
  if account is null then
    return 'ignored';
  end if;
  if event_type = 'checkout.session.completed' then
    perform private.link_stripe_customer(account, customer_id, obj -> 'customer_details' ->> 'email',
      (obj ->> 'livemode')::boolean, event_type);
  end if;
  -- Subscriptions are handled by their own events and invoices.
  if obj ->> 'mode' <> 'payment' then
    return case when event_type = 'checkout.session.completed' then 'processed' else 'ignored' end;
  end if;

  settlement := case
    when event_type = 'checkout.session.async_payment_succeeded' then 'paid'
    when event_type = 'checkout.session.async_payment_failed' then 'failed'
    -- no_payment_required settles the session (nothing is left to collect); whether it earns
    -- credits is the amount check's call below: only when the pack costs nothing.
    when event_type = 'checkout.session.completed' and obj ->> 'payment_status' in ('paid', 'no_payment_required') then 'paid'
    when event_type = 'checkout.session.completed' then 'pending'
  end;
  if settlement is null then
    return 'ignored'; -- checkout.session.expired: nothing was paid
  end if;

  quantity := case when metadata ->> 'quantity' ~ '^[0-9]{1,4}$' then greatest((metadata ->> 'quantity')::integer, 1) else 1 end;
  select c.* into pack from public.credit_packs c
  where c.key = metadata ->> 'item' and coalesce(metadata ->> 'kind', 'credit_pack') = 'credit_pack';
  if pack.key is null then
    flag := pg_catalog.format('unknown_item: %s', coalesce(metadata ->> 'item', 'none'));
  else
    expected := pack.price_cents * quantity;
    flag := private.check_amount(expected, pack.currency, paid, obj ->> 'currency');
    if flag is null and obj ->> 'payment_status' = 'no_payment_required' and expected <> 0 then
      flag := pg_catalog.format('no_payment_required: expected %s %s', expected, pack.currency);
    end if;
  end if;

  perform private.upsert_payment(account, 'credit_pack', settlement, obj ->> 'id', pg_catalog.jsonb_build_object(
    'item_key', coalesce(pack.key, metadata ->> 'item'), 'quantity', quantity,
    'amount', coalesce((obj ->> 'amount_total')::bigint, 0), 'currency', coalesce(obj ->> 'currency', pack.currency),
    'expected_amount', expected, 'flagged_reason', flag,
    'credits_due', case when flag is null then pack.credits * quantity else 0 end,
    'payment_intent_id', private.stripe_id(obj -> 'payment_intent'), 'customer_id', customer_id,
    'invoice_id', private.stripe_id(obj -> 'invoice'), 'livemode', obj -> 'livemode',
    'paid_at', private.stripe_ts(event -> 'created')));
  return 'processed';
end
$$;
comment on function private.stripe_checkout_event(jsonb, jsonb) is
  'checkout.session.*: links the customer; in payment mode records the credit-pack payment (paid, pending until async_payment_succeeded, or failed), flagging an amount paid (amount_total less tax, after discounts) or currency that does not match the pack price x quantity, and a no_payment_required session for a pack that costs something (no credits then).';

-- ---------------------------------------------------------------------------
-- Invoices (subscriptions)
-- ---------------------------------------------------------------------------
create or replace function private.stripe_line_price(line jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
  -- basil+: pricing.price_details.price; older API versions: price (or plan).
begin
  return (
    select coalesce(line -> 'pricing' -> 'price_details' ->> 'price', private.stripe_id(line -> 'price'), line -> 'plan' ->> 'id')
  );
end
$$;
comment on function private.stripe_line_price(jsonb) is 'The price id of an invoice line on any API version.';

create or replace function private.stripe_invoice_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  event_type text := event ->> 'type';
  customer_id text := private.stripe_id(obj -> 'customer');
  sub_id text := coalesce(obj -> 'parent' -> 'subscription_details' ->> 'subscription', private.stripe_id(obj -> 'subscription'));
  sub_meta jsonb := coalesce(obj -> 'parent' -> 'subscription_details' -> 'metadata', obj -> 'subscription_details' -> 'metadata');
  reason text := obj ->> 'billing_reason';
  paid_amount bigint := coalesce((obj ->> 'amount_paid')::bigint, 0);
  -- What the invoice charged after discounts and coupons, net of tax (older API versions: the
  -- amount paid less its tax). The subtotal is before discounts: comparing it would credit a
  -- 100%-off coupon in full.
  net_amount bigint := coalesce((obj ->> 'total_excluding_tax')::bigint,
                                (obj ->> 'amount_paid')::bigint - coalesce((obj ->> 'tax')::bigint, 0));
  subtotal bigint := coalesce((obj ->> 'subtotal')::bigint, 0);
  first_payment jsonb := obj -> 'payments' -> 'data' -> 0 -> 'payment';
  account uuid;
  sub public.subscriptions;
  line jsonb;
  plan public.plans;
  quantity integer := 1;
  settlement text;
  expected bigint;
  flag text;
  credits bigint := 0;
  p public.payments;
begin
  if sub_id is null then
    return 'ignored'; -- not a subscription invoice
  end if;
  select s.* into sub from public.subscriptions s where s.stripe_subscription_id = sub_id;
  account := coalesce(private.stripe_account(array[sub_meta ->> 'account_id', obj -> 'metadata' ->> 'account_id'], null),
                      sub.account_id, private.stripe_account(array[]::text[], customer_id));
  if account is null then
    raise exception using errcode = 'PT404', message = 'unknown_account',
      detail = pg_catalog.format('invoice %s: no account for subscription %s or customer %s', obj ->> 'id', sub_id, customer_id);
  end if;

  -- The line of the plan: its price (basil+: pricing.price_details.price; older: price / plan).
  select l.value into line
  from jsonb_array_elements(coalesce(obj -> 'lines' -> 'data', '[]'::jsonb)) with ordinality l(value, n)
  order by not exists (select from public.plans pl where pl.stripe_price_id = private.stripe_line_price(l.value)), l.n
  limit 1;
  select pl.* into plan from public.plans pl where pl.stripe_price_id = private.stripe_line_price(line);
  if plan.key is null and sub.plan_key is not null then
    select pl.* into plan from public.plans pl where pl.key = sub.plan_key;
  end if;
  quantity := greatest(coalesce((line ->> 'quantity')::integer, sub.quantity, 1), 1);

  settlement := case
    when event_type in ('invoice.paid', 'invoice.payment_succeeded') then 'paid'
    when event_type = 'invoice.payment_failed' then 'failed'
    else 'pending' end;

  -- Plan credits: for paid renewals and first invoices whose net amount matches the catalog.
  -- A $0 trial invoice (nothing invoiced) earns nothing and is not flagged; a discounted one is.
  if settlement = 'paid' and reason in ('subscription_create', 'subscription_cycle') and (paid_amount > 0 or subtotal > 0) then
    if plan.key is null then
      flag := 'unknown_item: no plan for the invoice''s price';
    else
      expected := plan.price_cents * quantity;
      flag := private.check_amount(expected, plan.currency, net_amount, obj ->> 'currency');
      credits := case when flag is null then plan.included_credits * quantity else 0 end;
    end if;
  end if;

  p := private.upsert_payment(account, 'subscription_invoice', settlement, obj ->> 'id', pg_catalog.jsonb_build_object(
    'item_key', plan.key, 'quantity', quantity,
    'amount', case when settlement = 'paid' then paid_amount else coalesce((obj ->> 'amount_due')::bigint, 0) end,
    'currency', obj ->> 'currency', 'expected_amount', expected, 'flagged_reason', flag, 'credits_due', credits,
    'billing_reason', reason, 'invoice_url', obj ->> 'hosted_invoice_url', 'invoice_pdf', obj ->> 'invoice_pdf',
    'period_start', private.stripe_ts(coalesce(line -> 'period' -> 'start', obj -> 'period_start')),
    'period_end', coalesce(private.stripe_ts(line -> 'period' -> 'end'), sub.current_period_end, private.stripe_ts(obj -> 'period_end')),
    'paid_at', private.stripe_ts(obj -> 'status_transitions' -> 'paid_at'),
    'payment_intent_id', coalesce(private.stripe_id(first_payment -> 'payment_intent'), private.stripe_id(obj -> 'payment_intent')),
    'charge_id', coalesce(private.stripe_id(first_payment -> 'charge'), private.stripe_id(obj -> 'charge')),
    'subscription_id', sub_id, 'customer_id', customer_id, 'livemode', obj -> 'livemode'));

  if event_type = 'invoice.payment_failed' and p.settlement <> 'paid' then
    perform private.notify_account(account, 'billing.manage', 'error', 'Payment failed',
      pg_catalog.format('We could not collect %s %s for your subscription. Update your payment method in the billing portal.',
        pg_catalog.to_char(coalesce((obj ->> 'amount_due')::numeric, 0) / 100, 'FM999999990.00'), pg_catalog.upper(coalesce(obj ->> 'currency', ''))),
      pg_catalog.jsonb_build_object('payment_id', p.id, 'stripe_invoice_id', obj ->> 'id',
        'hosted_invoice_url', obj ->> 'hosted_invoice_url', 'attempt_count', obj -> 'attempt_count'));
  end if;
  return 'processed';
end
$$;
comment on function private.stripe_invoice_event(jsonb, jsonb) is
  'invoice.*: records a subscription invoice as a payment (paid, failed or pending); a paid subscription_create / subscription_cycle invoice whose amount after discounts, net of tax (total_excluding_tax) matches the plan price x quantity earns the plan''s included credits x quantity, expiring at the end of the invoiced period, once per invoice. payment_failed notifies the billing managers. Invoices without a subscription are ignored.';

create or replace function private.stripe_invoice_payment_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  invoice_id text := private.stripe_id(obj -> 'invoice');
  pi text := private.stripe_id(obj -> 'payment' -> 'payment_intent');
  charge text := private.stripe_id(obj -> 'payment' -> 'charge');
  payment_id uuid;
begin
  update public.payments x
     set stripe_payment_intent_id = coalesce(x.stripe_payment_intent_id, pi),
         stripe_charge_id = coalesce(x.stripe_charge_id, charge)
   where x.stripe_invoice_id = invoice_id
  returning x.id into payment_id;
  if payment_id is null then
    -- The invoice is not known yet: remember the link on the charge.
    if charge is not null or pi is not null then
      insert into private.stripe_charges as c (charge_id, payment_intent_id, invoice_id)
      values (coalesce(charge, 'pi:' || pi), pi, invoice_id)
      on conflict (charge_id) do update set invoice_id = coalesce(c.invoice_id, excluded.invoice_id),
        payment_intent_id = coalesce(c.payment_intent_id, excluded.payment_intent_id), updated_at = now();
      return 'processed';
    end if;
    return 'ignored';
  end if;
  perform private.sync_payment(payment_id);
  return 'processed';
end
$$;
comment on function private.stripe_invoice_payment_event(jsonb, jsonb) is
  'invoice_payment.paid (API basil+, where invoices no longer name their PaymentIntent): links the invoice''s payment to its PaymentIntent and charge, so refunds and disputes find it.';

-- ---------------------------------------------------------------------------
-- Charges, refunds, disputes, payment intents
-- ---------------------------------------------------------------------------
create or replace function private.sync_payments_for_charge(charge_id text, payment_intent_id text, invoice_id text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  payment record;
  synced integer := 0;
begin
  for payment in
    select x.id from public.payments x
    where x.stripe_charge_id = charge_id
       or (payment_intent_id is not null and x.stripe_payment_intent_id = payment_intent_id)
       or (invoice_id is not null and x.stripe_invoice_id = invoice_id)
    order by x.id
  loop
    update public.payments x set stripe_charge_id = coalesce(x.stripe_charge_id, sync_payments_for_charge.charge_id)
    where x.id = payment.id and sync_payments_for_charge.charge_id not like 'pi:%';
    perform private.sync_payment(payment.id);
    synced := synced + 1;
  end loop;
  return synced;
end
$$;
comment on function private.sync_payments_for_charge(text, text, text) is 'Syncs the payments a charge belongs to (by charge, PaymentIntent or invoice id); returns how many.';

create or replace function private.stripe_charge_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  charge_id text := obj ->> 'id';
  pi text := private.stripe_id(obj -> 'payment_intent');
  invoice_id text := private.stripe_id(obj -> 'invoice');
begin
  -- amount_refunded only grows: the greatest value seen is the truth, whatever the order.
  insert into private.stripe_charges as c (charge_id, payment_intent_id, invoice_id, customer_id, amount, amount_refunded, currency)
  values (charge_id, pi, invoice_id, private.stripe_id(obj -> 'customer'), (obj ->> 'amount')::bigint,
          coalesce((obj ->> 'amount_refunded')::bigint, 0), obj ->> 'currency')
  on conflict on constraint stripe_charges_pkey do update set
    payment_intent_id = coalesce(c.payment_intent_id, excluded.payment_intent_id),
    invoice_id = coalesce(c.invoice_id, excluded.invoice_id),
    customer_id = coalesce(c.customer_id, excluded.customer_id),
    amount = coalesce(excluded.amount, c.amount),
    amount_refunded = greatest(c.amount_refunded, excluded.amount_refunded),
    currency = coalesce(excluded.currency, c.currency),
    updated_at = now();
  perform private.sync_payments_for_charge(charge_id, pi, invoice_id);
  return 'processed';
end
$$;
comment on function private.stripe_charge_event(jsonb, jsonb) is
  'charge.*: remembers the charge (amount_refunded merged by maximum) and syncs its payment: a refund claws back credits in proportion. Kept for later when the payment is not known yet.';

create or replace function private.stripe_dispute_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  the_charge text := private.stripe_id(obj -> 'charge');
  pi text := private.stripe_id(obj -> 'payment_intent');
  status text := obj ->> 'status';
  created timestamptz := private.stripe_ts(event -> 'created');
  event_id text := event ->> 'id';
  applied boolean;
begin
  if the_charge is null or status is null then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'dispute without a charge or status';
  end if;
  insert into private.stripe_charges (charge_id, payment_intent_id) values (the_charge, pi)
  on conflict on constraint stripe_charges_pkey do nothing;
  -- Ordering guard: (closed, created, status precedence, event id).
  update private.stripe_charges c set
    payment_intent_id = coalesce(c.payment_intent_id, pi),
    dispute_id = obj ->> 'id', dispute_status = status, dispute_event_created = created, dispute_event_id = event_id,
    updated_at = now()
  where c.charge_id = the_charge
    and (c.dispute_event_id is null
         or (private.dispute_status_rank(status) = 3, created, private.dispute_status_rank(status), event_id)
            > (private.dispute_status_rank(c.dispute_status) = 3, c.dispute_event_created,
               private.dispute_status_rank(c.dispute_status), c.dispute_event_id))
  returning true into applied;
  if coalesce(applied, false) then
    perform private.billing_audit('dispute.' || status, 'dispute', obj ->> 'id', null, null,
      pg_catalog.jsonb_build_object('charge', the_charge, 'status', status, 'amount', obj -> 'amount',
        'reason', obj ->> 'reason', 'stripe_event_id', event_id));
  end if;
  perform private.sync_payments_for_charge(the_charge, pi, null);
  return 'processed';
end
$$;
comment on function private.stripe_dispute_event(jsonb, jsonb) is
  'charge.dispute.*: remembers the dispute status under the ordering guard and syncs the payment: credits are clawed back while the dispute is open or lost and given back when it is won.';

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
  if private.sync_payments_for_charge(coalesce(charge_id, 'pi:' || pi), pi, null) = 0 then
    return 'ignored';
  end if;
  return 'processed';
end
$$;
comment on function private.stripe_payment_intent_event(jsonb, jsonb) is
  'payment_intent.*: links the PaymentIntent''s latest charge to the payment that names the PaymentIntent (checkout and invoice events decide the payment''s status).';

-- ---------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------
create or replace function private.stripe_catalog_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  event_type text := event ->> 'type';
  is_product boolean := event_type like 'product.%';
  is_deleted boolean := event_type like '%.deleted' or coalesce((obj ->> 'deleted')::boolean, false);
  object_id text := obj ->> 'id';
  is_active boolean := not is_deleted and coalesce((obj ->> 'active')::boolean, true);
  amount bigint := (obj ->> 'unit_amount')::bigint;
  new_currency text := obj ->> 'currency';
  new_interval text := obj -> 'recurring' ->> 'interval';
  touched integer := 0;
  n integer;
begin
  if not exists (select from public.plans p where (case when is_product then p.stripe_product_id else p.stripe_price_id end) = object_id)
     and not exists (select from public.credit_packs c where (case when is_product then c.stripe_product_id else c.stripe_price_id end) = object_id) then
    return 'ignored'; -- not in our catalog
  end if;
  if not private.stripe_is_newer(case when is_product then 'product' else 'price' end, object_id, is_deleted,
                                 private.stripe_ts(event -> 'created'), event ->> 'id') then
    return 'processed';
  end if;
  if is_product then
    update public.plans p set active = is_active
    where p.stripe_product_id = object_id and p.active is distinct from is_active;
    get diagnostics n = row_count;
    touched := touched + n;
    update public.credit_packs c set active = is_active
    where c.stripe_product_id = object_id and c.active is distinct from is_active;
    get diagnostics n = row_count;
    touched := touched + n;
  else
    update public.plans p set
      active = is_active,
      price_cents = coalesce(amount, p.price_cents),
      currency = coalesce(new_currency, p.currency),
      billing_interval = case when new_interval in ('month', 'year') then new_interval else p.billing_interval end,
      stripe_product_id = coalesce(private.stripe_id(obj -> 'product'), p.stripe_product_id)
    where p.stripe_price_id = object_id;
    get diagnostics n = row_count;
    touched := touched + n;
    update public.credit_packs c set
      active = is_active,
      price_cents = coalesce(amount, c.price_cents),
      currency = coalesce(new_currency, c.currency),
      stripe_product_id = coalesce(private.stripe_id(obj -> 'product'), c.stripe_product_id)
    where c.stripe_price_id = object_id;
    get diagnostics n = row_count;
    touched := touched + n;
  end if;
  return 'processed';
end
$$;
comment on function private.stripe_catalog_event(jsonb, jsonb) is
  'product.* / price.*: updates the catalog rows with that Stripe product or price (active; for prices also the amount, currency and interval), under the ordering guard (the catalog''s audit trigger records the change). Objects not in the catalog are ignored.';

-- ---------------------------------------------------------------------------
-- Trials
-- ---------------------------------------------------------------------------
create or replace function private.stripe_trial_will_end_event(event jsonb, obj jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  account uuid;
  trial_end timestamptz := private.stripe_ts(obj -> 'trial_end');
begin
  perform private.stripe_subscription_event(event, obj);
  select s.account_id into account from public.subscriptions s where s.stripe_subscription_id = obj ->> 'id';
  if account is null then
    return 'ignored';
  end if;
  perform private.notify_account(account, 'billing.manage', 'warning', 'Your trial ends soon',
    pg_catalog.format('Your trial ends on %s. Add a payment method in the billing portal to keep your plan.',
      pg_catalog.to_char(trial_end at time zone 'UTC', 'YYYY-MM-DD')),
    pg_catalog.jsonb_build_object('stripe_subscription_id', obj ->> 'id', 'trial_end', trial_end));
  return 'processed';
end
$$;
comment on function private.stripe_trial_will_end_event(jsonb, jsonb) is
  'customer.subscription.trial_will_end: applies the subscription (ordering guard) and notifies the account''s billing managers.';

-- ---------------------------------------------------------------------------
-- Dispatch, the event ledger, the webhook's entry point
-- ---------------------------------------------------------------------------
create or replace function private.apply_stripe_event(event jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  event_type text := event ->> 'type';
  obj jsonb := event -> 'data' -> 'object';
begin
  return case
    when event_type in ('checkout.session.completed', 'checkout.session.async_payment_succeeded',
                        'checkout.session.async_payment_failed', 'checkout.session.expired')
      then private.stripe_checkout_event(event, obj)
    when event_type in ('customer.created', 'customer.updated', 'customer.deleted')
      then private.stripe_customer_event(event, obj)
    when event_type = 'customer.subscription.trial_will_end'
      then private.stripe_trial_will_end_event(event, obj)
    when event_type in ('customer.subscription.created', 'customer.subscription.updated', 'customer.subscription.deleted',
                        'customer.subscription.paused', 'customer.subscription.resumed')
      then private.stripe_subscription_event(event, obj)
    when event_type in ('invoice.paid', 'invoice.payment_succeeded', 'invoice.payment_failed', 'invoice.finalized')
      then private.stripe_invoice_event(event, obj)
    when event_type = 'invoice_payment.paid'
      then private.stripe_invoice_payment_event(event, obj)
    when event_type in ('charge.refunded', 'charge.succeeded', 'charge.updated', 'charge.captured')
      then private.stripe_charge_event(event, obj)
    when event_type in ('charge.dispute.created', 'charge.dispute.updated', 'charge.dispute.closed')
      then private.stripe_dispute_event(event, obj)
    when event_type in ('payment_intent.succeeded', 'payment_intent.payment_failed')
      then private.stripe_payment_intent_event(event, obj)
    when event_type in ('product.created', 'product.updated', 'product.deleted',
                        'price.created', 'price.updated', 'price.deleted')
      then private.stripe_catalog_event(event, obj)
    else 'ignored'
  end;
end
$$;
comment on function private.apply_stripe_event(jsonb) is 'Dispatches a Stripe event to its handler (see the migration header); processed, or ignored for types we do not act on and objects that are not ours.';

create or replace function private.check_stripe_event(event jsonb)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if pg_catalog.jsonb_typeof(event) is distinct from 'object'
     or pg_catalog.jsonb_typeof(event -> 'id') is distinct from 'string'
     or pg_catalog.jsonb_typeof(event -> 'type') is distinct from 'string'
     or pg_catalog.jsonb_typeof(event -> 'created') is distinct from 'number'
     or pg_catalog.jsonb_typeof(event -> 'data' -> 'object') is distinct from 'object' then
    raise exception using errcode = '22023', message = 'invalid_input',
      detail = 'a Stripe event needs id, type, created and data.object';
  end if;
end
$$;
comment on function private.check_stripe_event(jsonb) is 'Raises 22023 invalid_input unless the JSON is shaped like a Stripe event.';

create or replace function private.handle_stripe_event(event jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  recorded public.webhook_events;
  outcome text;
  reason text;
begin
  perform private.check_stripe_event(event);
  -- Claim the event id. A concurrent delivery of the same event waits here until the first
  -- commits, then sees it as a duplicate.
  insert into public.webhook_events as w (provider, event_id, type, status, payload, api_version, livemode, event_created, processed_at)
  values ('stripe', event ->> 'id', event ->> 'type', 'processed', event, event ->> 'api_version',
          (event ->> 'livemode')::boolean, private.stripe_ts(event -> 'created'), now())
  on conflict on constraint webhook_events_provider_event_id_key do update set attempts = w.attempts + 1
  returning w.* into recorded;
  if recorded.attempts > 1 and recorded.status in ('processed', 'ignored', 'duplicate') then
    return 'duplicate'; -- the row keeps its first outcome; attempts counts the deliveries
  end if;

  perform pg_catalog.set_config('ledgerbase.billing_audit_defer', 'on', true);
  begin
    outcome := private.apply_stripe_event(event);
  exception when sqlstate 'PT404' then
    -- Not ours (no account for the object): answered 200 and recorded with the reason, so
    -- Stripe does not retry for days; private.reprocess_stripe_events(..., true) retries it.
    -- Any other PT404 is a failure like any error.
    if sqlerrm <> 'unknown_account' then
      raise;
    end if;
    get stacked diagnostics reason = pg_exception_detail;
    outcome := 'ignored';
  end;
  perform private.flush_billing_audit();
  if outcome <> 'processed' or recorded.status <> 'processed' or reason is not null then
    update public.webhook_events w
       set status = outcome, error = reason, processed_at = now(), payload = case when w.status = 'failed' then event else w.payload end
     where w.id = recorded.id;
  end if;
  return outcome;
end
$$;
comment on function private.handle_stripe_event(jsonb) is
  'Records a Stripe event in webhook_events and applies it, in the caller''s transaction. Idempotent by event id: a redelivery of a processed or ignored event only counts the attempt and returns duplicate. Returns processed | ignored (not a type we act on, or no account of ours: the reason is kept in error) | duplicate; raises when processing fails (nothing is then written).';

create or replace function private.receive_stripe_event(payload jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  message text;
  detail text;
begin
  perform private.check_stripe_event(payload);
  begin
    return private.handle_stripe_event(payload);
  exception when others then
    -- The work is rolled back to here; only the failure is recorded, so Stripe's retry (or a
    -- replay) processes the event again.
    get stacked diagnostics message = message_text, detail = pg_exception_detail;
    insert into public.webhook_events as w (provider, event_id, type, status, error, payload, api_version, livemode, event_created)
    values ('stripe', payload ->> 'id', payload ->> 'type', 'failed', concat_ws(': ', message, nullif(detail, '')), payload,
            payload ->> 'api_version', (payload ->> 'livemode')::boolean, private.stripe_ts(payload -> 'created'))
    on conflict on constraint webhook_events_provider_event_id_key do update
      set status = 'failed', error = excluded.error, attempts = w.attempts + 1, processed_at = null;
    return 'failed';
  end;
end
$$;
comment on function private.receive_stripe_event(jsonb) is
  'The stripe-webhook function''s one call (after it verified the signature): handle_stripe_event in a subtransaction. Returns processed | duplicate | ignored, or failed when processing raised: the work is rolled back, the event is recorded as failed with the error, and the webhook answers 500 so Stripe retries.';

create or replace function private.reprocess_stripe_events(since timestamptz default null, include_ignored boolean default false)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  e record;
  outcome text;
  reason text;
  counts jsonb := '{}'::jsonb;
begin
  for e in
    select w.id, w.payload from public.webhook_events w
    where w.provider = 'stripe'
      and (w.status = 'failed' or (include_ignored and w.status = 'ignored' and w.error is not null))
      and (since is null or w.received_at >= since)
    order by w.event_created, w.event_id
    for update
  loop
    reason := null;
    begin
      outcome := private.apply_stripe_event(e.payload);
    exception when others then
      if sqlstate = 'PT404' and sqlerrm = 'unknown_account' then
        get stacked diagnostics reason = pg_exception_detail;
        outcome := 'ignored';
      else
        get stacked diagnostics reason = message_text;
        outcome := 'failed';
      end if;
    end;
    update public.webhook_events w
       set status = outcome, error = reason, attempts = w.attempts + 1,
           processed_at = case when outcome = 'failed' then null else now() end
     where w.id = e.id;
    counts := counts || pg_catalog.jsonb_build_object(outcome, coalesce((counts ->> outcome)::integer, 0) + 1);
  end loop;
  return counts;
end
$$;
comment on function private.reprocess_stripe_events(timestamptz, boolean) is
  'Reconcile: applies again the Stripe events recorded as failed (and, with include_ignored, those ignored because no account matched), optionally only those received since a time, in event order, each in its own subtransaction. Returns counts per outcome, e.g. {"processed": 3, "failed": 1}.';

create or replace function private.resync_payment_credits(account_id uuid default null)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  p record;
  n integer := 0;
begin
  for p in
    select x.id from public.payments x
    where resync_payment_credits.account_id is null or x.account_id = resync_payment_credits.account_id
    order by x.created_at, x.id
  loop
    perform private.sync_payment(p.id);
    n := n + 1;
  end loop;
  return n;
end
$$;
comment on function private.resync_payment_credits(uuid) is
  'Reconcile: brings every payment (of one account, or all) in line with the charge and dispute state recorded so far. Idempotent; returns how many payments it looked at.';
