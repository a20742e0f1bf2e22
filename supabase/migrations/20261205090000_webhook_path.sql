-- The stripe-webhook path, lighter per event (same behaviour).
--
-- A paid invoice used to write its payment row three times with every index each time, and
-- to queue its audit entries in a transaction-local setting (serialized to JSON and parsed
-- back per entry) so that the old audit chain's global lock was held only at the end. The
-- chain takes no lock any more (20261205050000_audit_chain.sql), so:
--   - billing audit entries are written at once, in the order they happen; the queue
--     (ledgerbase.billing_audit_defer / _queue, private.flush_billing_audit) is gone;
--   - a new payment row is inserted with its Stripe ids, so the merge that follows changes
--     no indexed column and is a heap-only update;
--   - payments_grant_id_idx goes: nothing looks payments up by grant (no foreign key, no
--     query), and with it the credit sync's update (which sets grant_id) is heap-only too.

-- ---------------------------------------------------------------------------
-- Billing audit: written at once
-- ---------------------------------------------------------------------------
create or replace function private.billing_audit(
  action text, entity text, entity_id text, account_id uuid, before jsonb, after jsonb
) returns void
language plpgsql
set search_path = ''
as $$
begin
  perform private.audit(action, entity, entity_id, account_id, before, after);
end
$$;
comment on function private.billing_audit(text, text, text, uuid, jsonb, jsonb) is
  'private.audit for billing (subscriptions, payments, refunds, disputes): one entry, written at once.';

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

drop function private.flush_billing_audit();

-- ---------------------------------------------------------------------------
-- Payments: one index write per row, heap-only updates after it
-- ---------------------------------------------------------------------------
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
  -- Create the row once (keyed by checkout session or invoice), then lock it. A new row gets its
  -- Stripe ids at once (the update below would only fill them in): the update then changes no
  -- indexed column and stays a heap-only (HOT) update.
  if kind = 'credit_pack' then
    insert into public.payments (account_id, kind, settlement, stripe_checkout_session_id, stripe_payment_intent_id,
                                 stripe_charge_id, stripe_subscription_id, stripe_customer_id)
    values (upsert_payment.account_id, kind, 'pending', source_id, fields ->> 'payment_intent_id', fields ->> 'charge_id',
            fields ->> 'subscription_id', fields ->> 'customer_id')
    on conflict (stripe_checkout_session_id) do nothing
    returning true into inserted;
    select x.* into p from public.payments x where x.stripe_checkout_session_id = source_id for update;
  else
    insert into public.payments (account_id, kind, settlement, stripe_invoice_id, stripe_payment_intent_id, stripe_charge_id,
                                 stripe_subscription_id, stripe_customer_id)
    values (upsert_payment.account_id, kind, 'pending', source_id, fields ->> 'payment_intent_id', fields ->> 'charge_id',
            fields ->> 'subscription_id', fields ->> 'customer_id')
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

drop index public.payments_grant_id_idx;
