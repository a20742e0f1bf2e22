-- Auto top-ups are payments: a succeeded auto top-up is recorded in public.payments as a
-- credit-pack payment of its PaymentIntent and charge, its grant linked to it, so a refund
-- (charge.refunded) takes its credits back in proportion and a dispute holds them until won,
-- exactly as for a pack bought through Checkout (private.sync_payment).
--
--   payments_one_source     a credit pack is paid through a checkout session or, for an auto
--                           top-up, a PaymentIntent (billing_reason = 'auto_topup')
--   payments_auto_topup_idx one payment per auto top-up PaymentIntent
--   private.record_auto_topup_payment(...)   the payment of a succeeded attempt
--   private.auto_topup_payment_event()       records it when it grants
--
-- Upgrading: auto top-ups that succeeded before this migration get their payment now.

alter table public.payments drop constraint payments_one_source;
alter table public.payments add constraint payments_one_source check (
  (kind = 'credit_pack' and (stripe_checkout_session_id is not null
                             or (billing_reason = 'auto_topup' and stripe_payment_intent_id is not null)))
  or (kind = 'subscription_invoice' and stripe_invoice_id is not null));
create unique index payments_auto_topup_idx on public.payments (stripe_payment_intent_id) where billing_reason = 'auto_topup';
comment on column public.payments.billing_reason is
  'Why the payment was made: Stripe''s invoice billing_reason (subscription_create, subscription_cycle, ...) for invoices; auto_topup for a credit pack charged by auto top-up (no checkout session: its source is the PaymentIntent).';

create or replace function private.record_auto_topup_payment(attempt_id uuid, charge_id text, livemode boolean default null)
returns public.payments
language plpgsql
set search_path = ''
as $$
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
  update public.credit_grants g set payment_id = p.id where g.id = a.grant_id and g.payment_id is null;
  perform private.audit_payment(null, p);
  -- A refund or dispute that arrived before the payment existed applies now.
  return private.sync_payment(p.id);
end
$$;
comment on function private.record_auto_topup_payment(uuid, text, boolean) is
  'Records the payment of a succeeded auto top-up (kind credit_pack, billing_reason auto_topup, keyed by its PaymentIntent; its credits are the attempt''s grant) and syncs it, so refunds and disputes take the credits back like any pack. Once per PaymentIntent: a repeat returns the existing payment.';

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
      return 'processed'; -- a second delivery: granted and recorded already
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
    perform private.record_auto_topup_payment(a.id, private.stripe_id(obj -> 'latest_charge'),
                                              (event ->> 'livemode')::boolean);
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
  'payment_intent.* whose metadata.kind is auto_topup: succeeded grants the pack''s credits once (grant idempotency key auto_topup:<PaymentIntent>), records the payment (private.record_auto_topup_payment: refunds and disputes take the credits back) and emits credits.auto_topup.succeeded; payment_failed / requires_action / canceled fail the attempt (private.auto_topup_failed).';

-- Auto top-ups that succeeded before this migration: their payments, with the charge Stripe
-- already reported for their PaymentIntent.
select private.record_auto_topup_payment(a.id,
         (select max(c.charge_id) from private.stripe_charges c
          where c.payment_intent_id = a.stripe_payment_intent_id and c.charge_id not like 'pi:%'))
from public.auto_topup_attempts a
where a.status = 'succeeded' and a.grant_id is not null and a.stripe_payment_intent_id is not null
order by a.finished_at;
