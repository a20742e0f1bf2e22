-- The stripe-webhook path: less work per event, the same results.
--
-- Measured per paid subscription invoice (pg_stat_statements, bench/README.md "The webhook
-- path, per event"), an event
--   - checked the shape of the event twice (receive_stripe_event, then handle_stripe_event);
--   - wrote its payment row three times: inserted pending, merged, then synced with its credits;
--   - updated the wallet up to four times for one grant: its next expiry, its balance, then
--     settled its lot and loaded the new one, when the new lot comes first in draw-down order;
--   - built the payload of payment.succeeded and credits.granted and called emit_event even
--     when the account has no webhook endpoint, which is every account that set none up.
-- Now
--   - receive_stripe_event checks the event once and calls private.process_stripe_event (the
--     body handle_stripe_event had); handle_stripe_event is that check plus the same call;
--   - a new payment row is inserted with its values merged in (private.merge_payment, the one
--     rule for a new and an existing row); an existing row is written only when the merge
--     changes it; the sync that follows (credits granted) is the row's one update;
--   - a grant writes the wallet once: private.set_wallet takes the new lot's expiry and, when
--     the lot comes first in draw-down order, puts it on the wallet in the same update; the lot
--     it displaces is settled into ledger.lots as private.settle_lot would, without clearing
--     the wallet first (set_wallet gains two optional arguments: the three-argument function
--     is replaced, its callers are unchanged);
--   - the payment and lot triggers skip emit_event when the account has no active endpoint
--     (private.has_webhook_endpoint).
-- The payment, the lot, the ledger entry, the wallet, the audit entry and the outgoing events
-- are the same as before.

-- ---------------------------------------------------------------------------
-- One check per event
-- ---------------------------------------------------------------------------
create or replace function private.process_stripe_event(event jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  recorded public.webhook_events;
  outcome text;
  reason text;
begin
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
comment on function private.process_stripe_event(jsonb) is
  'private.handle_stripe_event for an event already checked (private.check_stripe_event): records it in webhook_events and applies it.';

create or replace function private.handle_stripe_event(event jsonb)
returns text
language plpgsql
set search_path = ''
as $$
begin
  perform private.check_stripe_event(event);
  return private.process_stripe_event(event);
end
$$;

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
    return private.process_stripe_event(payload);
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
comment on function private.receive_stripe_event(jsonb) is 'The stripe-webhook function''s one call (after it verified the signature): checks the event once, then handle_stripe_event''s work (private.process_stripe_event) in a subtransaction. Returns processed | duplicate | ignored, or failed when processing raised: the work is rolled back, the event is recorded as failed with the error, and the webhook answers 500 so Stripe retries.';

-- ---------------------------------------------------------------------------
-- The payment row: written once per change
-- ---------------------------------------------------------------------------
create or replace function private.merge_payment(x public.payments, settlement text, fields jsonb)
returns public.payments
language plpgsql
set search_path = ''
as $$
begin
  -- Ids only ever fill in; amounts and details come from the highest settlement seen.
  if private.settlement_rank(merge_payment.settlement) >= private.settlement_rank(x.settlement) then
    if x.status in ('pending', 'failed', 'paid') then
      x.status := merge_payment.settlement;
    end if;
    x.settlement := merge_payment.settlement;
    x.item_key := coalesce(fields ->> 'item_key', x.item_key);
    x.quantity := coalesce((fields ->> 'quantity')::integer, x.quantity);
    x.amount := coalesce((fields ->> 'amount')::bigint, x.amount);
    x.currency := coalesce(fields ->> 'currency', x.currency);
    x.expected_amount := coalesce((fields ->> 'expected_amount')::bigint, x.expected_amount);
    x.flagged_reason := fields ->> 'flagged_reason';
    x.credits_due := coalesce((fields ->> 'credits_due')::bigint, x.credits_due);
  end if;
  x.billing_reason := coalesce(fields ->> 'billing_reason', x.billing_reason);
  x.invoice_url := coalesce(fields ->> 'invoice_url', x.invoice_url);
  x.invoice_pdf := coalesce(fields ->> 'invoice_pdf', x.invoice_pdf);
  x.receipt_url := coalesce(fields ->> 'receipt_url', x.receipt_url);
  x.period_start := coalesce((fields ->> 'period_start')::timestamptz, x.period_start);
  x.period_end := coalesce((fields ->> 'period_end')::timestamptz, x.period_end);
  if merge_payment.settlement = 'paid' then
    x.paid_at := coalesce(x.paid_at, (fields ->> 'paid_at')::timestamptz, private.now());
  end if;
  x.stripe_payment_intent_id := coalesce(x.stripe_payment_intent_id, fields ->> 'payment_intent_id');
  x.stripe_charge_id := coalesce(x.stripe_charge_id, fields ->> 'charge_id');
  x.stripe_subscription_id := coalesce(x.stripe_subscription_id, fields ->> 'subscription_id');
  x.stripe_customer_id := coalesce(x.stripe_customer_id, fields ->> 'customer_id');
  x.stripe_invoice_id := coalesce(x.stripe_invoice_id, fields ->> 'invoice_id');
  x.livemode := coalesce((fields ->> 'livemode')::boolean, x.livemode);
  return x;
end
$$;
comment on function private.merge_payment(public.payments, text, jsonb) is
  'What a payment becomes when an event reports it (private.upsert_payment): settlement only moves up (pending < failed < paid) and amounts and details come from the highest settlement seen; ids only fill in; paid_at is set once when paid. Pure: writes nothing.';

create or replace function private.upsert_payment(account_id uuid, kind text, settlement text, source_id text, fields jsonb)
returns public.payments
language plpgsql
set search_path = ''
as $$
declare
  p public.payments;
  before public.payments;
  inserted boolean;
begin
  -- A new row (keyed by checkout session or invoice) is inserted with the event merged into a
  -- pending row (the table's defaults); an existing one is locked, merged, and written only
  -- when the merge changes it.
  p.account_id := upsert_payment.account_id;
  p.kind := upsert_payment.kind;
  p.settlement := 'pending';
  p.status := 'pending';
  p.quantity := 1;
  p.amount := 0;
  p.currency := 'usd';
  p.credits_due := 0;
  if kind = 'credit_pack' then
    p.stripe_checkout_session_id := source_id;
  else
    p.stripe_invoice_id := source_id;
  end if;
  p := private.merge_payment(p, upsert_payment.settlement, fields);
  if kind = 'credit_pack' then
    insert into public.payments (account_id, kind, settlement, status, item_key, quantity, amount, currency, expected_amount,
                                 flagged_reason, credits_due, billing_reason, invoice_url, invoice_pdf, receipt_url,
                                 period_start, period_end, paid_at, stripe_checkout_session_id, stripe_invoice_id,
                                 stripe_payment_intent_id, stripe_charge_id, stripe_subscription_id, stripe_customer_id, livemode)
    values (p.account_id, p.kind, p.settlement, p.status, p.item_key, p.quantity, p.amount, p.currency, p.expected_amount,
            p.flagged_reason, p.credits_due, p.billing_reason, p.invoice_url, p.invoice_pdf, p.receipt_url,
            p.period_start, p.period_end, p.paid_at, p.stripe_checkout_session_id, p.stripe_invoice_id,
            p.stripe_payment_intent_id, p.stripe_charge_id, p.stripe_subscription_id, p.stripe_customer_id, p.livemode)
    on conflict (stripe_checkout_session_id) do nothing
    returning * into p;
    inserted := found;
    if not inserted then
      select x.* into p from public.payments x where x.stripe_checkout_session_id = source_id for update;
    end if;
  else
    insert into public.payments (account_id, kind, settlement, status, item_key, quantity, amount, currency, expected_amount,
                                 flagged_reason, credits_due, billing_reason, invoice_url, invoice_pdf, receipt_url,
                                 period_start, period_end, paid_at, stripe_checkout_session_id, stripe_invoice_id,
                                 stripe_payment_intent_id, stripe_charge_id, stripe_subscription_id, stripe_customer_id, livemode)
    values (p.account_id, p.kind, p.settlement, p.status, p.item_key, p.quantity, p.amount, p.currency, p.expected_amount,
            p.flagged_reason, p.credits_due, p.billing_reason, p.invoice_url, p.invoice_pdf, p.receipt_url,
            p.period_start, p.period_end, p.paid_at, p.stripe_checkout_session_id, p.stripe_invoice_id,
            p.stripe_payment_intent_id, p.stripe_charge_id, p.stripe_subscription_id, p.stripe_customer_id, p.livemode)
    on conflict (stripe_invoice_id) do nothing
    returning * into p;
    inserted := found;
    if not inserted then
      select x.* into p from public.payments x where x.stripe_invoice_id = source_id for update;
    end if;
  end if;

  if not inserted then
    before := p;
    p := private.merge_payment(before, upsert_payment.settlement, fields);
    if p is distinct from before then
      update public.payments x set
        settlement = p.settlement, status = p.status, item_key = p.item_key, quantity = p.quantity, amount = p.amount,
        currency = p.currency, expected_amount = p.expected_amount, flagged_reason = p.flagged_reason,
        credits_due = p.credits_due, billing_reason = p.billing_reason, invoice_url = p.invoice_url,
        invoice_pdf = p.invoice_pdf, receipt_url = p.receipt_url, period_start = p.period_start, period_end = p.period_end,
        paid_at = p.paid_at, stripe_payment_intent_id = p.stripe_payment_intent_id, stripe_charge_id = p.stripe_charge_id,
        stripe_subscription_id = p.stripe_subscription_id, stripe_customer_id = p.stripe_customer_id,
        stripe_invoice_id = p.stripe_invoice_id, livemode = p.livemode
      where x.id = p.id
      returning x.* into p;
    end if;
  end if;

  if p.settlement = 'paid' and (inserted or before.settlement <> 'paid') then
    perform private.on_payment_succeeded(p.account_id);
  end if;
  p := private.sync_payment(p.id, audit => false);
  perform private.audit_payment(case when inserted then null else before end, p);
  return p;
end
$$;
comment on function private.upsert_payment(uuid, text, text, text, jsonb) is 'Records a credit-pack checkout (keyed by session) or a subscription invoice (keyed by invoice), merging monotonically (private.merge_payment: settlement pending < failed < paid; ids only fill in; a new row is inserted merged, an existing one written only when the merge changes it), calls the referral hook on the first successful payment, audits, and syncs credits (private.sync_payment).';

-- ---------------------------------------------------------------------------
-- A grant: one wallet update
-- ---------------------------------------------------------------------------
drop function private.set_wallet(uuid, bigint, bigint);
create function private.set_wallet(
  account_id uuid, balance_delta bigint, held_delta bigint default 0, expires_at timestamptz default null,
  lot ledger.lots default null
) returns public.credit_balances
language plpgsql
set search_path = ''
as $$
declare
  threshold bigint := private.low_balance_threshold();
  wallet public.credit_balances;
begin
  update public.credit_balances w
     set balance = w.balance + balance_delta,
         held = w.held + held_delta,
         updated_at = private.now(),
         low_balance_since = case when w.balance + balance_delta - w.held - held_delta
                                       < coalesce(w.low_balance_threshold, threshold)
                                  then coalesce(w.low_balance_since, private.now()) end,
         next_expiry_at = case when set_wallet.expires_at is null then w.next_expiry_at
                               else least(w.next_expiry_at, set_wallet.expires_at) end,
         lot_id = case when set_wallet.lot.id is null then w.lot_id else set_wallet.lot.id end,
         lot_remaining = case when set_wallet.lot.id is null then w.lot_remaining else set_wallet.lot.remaining end
   where w.account_id = set_wallet.account_id
  returning w.* into wallet;
  perform private.signal_low_balance(wallet, held_delta - balance_delta, threshold);
  return wallet;
end
$$;
comment on function private.set_wallet(uuid, bigint, bigint, timestamptz, ledger.lots) is 'Applies a change to a wallet its caller has locked and returns the new row, signalling once when available falls below the wallet''s low-balance threshold (private.signal_low_balance). A grant passes its lot''s expiry (next_expiry_at becomes the sooner) and, when the lot is the first to draw from now, the lot (it goes on the wallet): one update.';

create or replace function private.grant_credits(
  account_id uuid, amount bigint, source text, expires_at timestamptz default null, idempotency_key text default null,
  payment_id uuid default null, metadata jsonb default '{}'::jsonb
) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  existing uuid;
  wallet public.credit_balances;
  debt ledger.lots;
  lot ledger.lots;
  repaid bigint := 0;
  grant_id uuid;
  goes_first boolean;
  swapped boolean := false;
begin
  if amount is null or amount <= 0 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a grant must be a positive number of credits';
  end if;
  if source is null or source = 'clawback' then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('invalid grant source %L', source);
  end if;
  if expires_at is not null and expires_at <= private.now() then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a grant cannot expire in the past';
  end if;
  wallet := private.lock_wallet(grant_credits.account_id);
  if idempotency_key is not null then
    select g.id into existing from ledger.lots g
    where g.account_id = grant_credits.account_id and g.idempotency_key = grant_credits.idempotency_key;
    if found then
      return existing;
    end if;
  end if;

  -- New credits repay a debt first.
  select g.* into debt from ledger.lots g
  where g.account_id = grant_credits.account_id and g.source = 'clawback' and g.remaining < 0;
  if found then
    repaid := least(amount, -debt.remaining);
    update ledger.lots set remaining = remaining + repaid where id = debt.id;
  end if;

  insert into ledger.lots (account_id, source, amount, remaining, expires_at, payment_id, idempotency_key, metadata)
  values (grant_credits.account_id, source, amount, amount - repaid, expires_at, payment_id, idempotency_key, coalesce(metadata, '{}'::jsonb))
  returning * into lot;
  grant_id := lot.id;
  -- (a debt lot is never the one on the wallet: the wallet's figure stays right)

  -- The new lot goes on the wallet when it comes first in draw-down order.
  goes_first := wallet.lot_id is null or private.lot_precedes(grant_credits.account_id, grant_id, wallet.lot_id);
  if goes_first and wallet.lot_id is not null and lot.remaining > 0 then
    -- It comes before the wallet's lot, the first live lot in draw-down order, and is live
    -- itself (credits left, not expired): it is the first now. The wallet's lot is settled
    -- into ledger.lots (as private.settle_lot does); set_wallet puts the new one on the wallet.
    swapped := true;
    update ledger.lots g set remaining = wallet.lot_remaining where g.id = wallet.lot_id;
  end if;
  wallet := private.set_wallet(grant_credits.account_id, amount,
    expires_at => case when amount > repaid then grant_credits.expires_at end,
    lot => case when swapped then lot end);
  perform private.write_ledger(wallet, amount, source, grant_id => grant_id, payment_id => grant_credits.payment_id,
                               idempotency_key => grant_credits.idempotency_key, metadata => grant_credits.metadata);
  if goes_first and not swapped then
    perform private.settle_lot(grant_credits.account_id);
    perform private.load_lot(grant_credits.account_id);
  end if;
  return grant_id;
end
$$;

-- ---------------------------------------------------------------------------
-- Outgoing events: nothing to build when nobody listens
-- ---------------------------------------------------------------------------
create or replace function private.has_webhook_endpoint(account_id uuid)
returns boolean
language sql
stable
set search_path = ''
as $$
  select exists (select from public.webhook_endpoints w where w.account_id = has_webhook_endpoint.account_id and w.active)
$$;
comment on function private.has_webhook_endpoint(uuid) is
  'Whether the account has an active webhook endpoint: when it has none, private.emit_event would queue nothing, and the triggers that emit on the webhook path skip building the event.';

create or replace function private.payments_emit()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  event_type text;
begin
  if new.account_id is null then
    return null;
  end if;
  if new.status = 'paid' and (tg_op = 'INSERT' or old.status is distinct from 'paid') then
    event_type := 'payment.succeeded';
  elsif new.status = 'failed' and (tg_op = 'INSERT' or old.status is distinct from 'failed') then
    event_type := 'payment.failed';
  elsif tg_op = 'UPDATE' and new.amount_refunded > old.amount_refunded then
    event_type := 'payment.refunded';
  else
    return null;
  end if;
  if not private.has_webhook_endpoint(new.account_id) then
    return null;
  end if;
  perform private.emit_event(new.account_id, event_type, pg_catalog.jsonb_build_object(
    'account_id', new.account_id, 'payment_id', new.id, 'kind', new.kind, 'item_key', new.item_key,
    'quantity', new.quantity, 'amount', new.amount, 'currency', new.currency, 'status', new.status,
    'amount_refunded', new.amount_refunded, 'credits_granted', new.credits_granted,
    'stripe_invoice_id', new.stripe_invoice_id, 'stripe_payment_intent_id', new.stripe_payment_intent_id));
  return null;
end
$$;

create or replace function private.credit_grants_emit()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if private.has_webhook_endpoint(new.account_id) then
    perform private.emit_credits_granted(new.account_id, new.id, new.source, new.amount, new.expires_at);
  end if;
  return null;
end
$$;
