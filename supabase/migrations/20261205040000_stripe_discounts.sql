-- Stripe: discounts are not mismatches.
--
-- A coupon or promotion code that Stripe applied lowers what the customer pays, not what the
-- plan or pack is worth (SPEC §4.8): the amount before discounts is what must match the catalog
-- price x quantity. Until now an invoice or checkout session was checked on what was paid after
-- discounts, so every customer with a promotion code was flagged `amount_mismatch` and got no
-- credits. A price that is not the catalog's stays flagged, discount or not.
--
-- Payments flagged before this migration stay flagged (their events are in webhook_events):
-- whether to credit them after all is the operator's call.

-- ---------------------------------------------------------------------------
-- Amounts before discounts
-- ---------------------------------------------------------------------------
create or replace function private.stripe_invoice_list_amount(invoice jsonb)
returns bigint
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- total_excluding_tax is after every discount (line and invoice level) and before tax;
  -- total_discount_amounts lists what each discount took across the lines. Older API
  -- versions without total_excluding_tax: the amount paid less its tax.
  return (
    select coalesce((invoice ->> 'total_excluding_tax')::bigint,
                    (invoice ->> 'amount_paid')::bigint - coalesce((invoice ->> 'tax')::bigint, 0))
         + coalesce((select sum((d.value ->> 'amount')::bigint)
                     from pg_catalog.jsonb_array_elements(
                       case when pg_catalog.jsonb_typeof(invoice -> 'total_discount_amounts') = 'array'
                            then invoice -> 'total_discount_amounts' else '[]'::jsonb end) d(value)), 0)
  );
end
$$;
comment on function private.stripe_invoice_list_amount(jsonb) is
  'What a Stripe invoice amounts to before the discounts Stripe applied (coupons, promotion codes), net of tax: total_excluding_tax plus total_discount_amounts. The amount checked against the catalog.';

create or replace function private.stripe_session_list_amount(session jsonb)
returns bigint
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- amount_total is after discounts and with tax; total_details says how much of each.
  return (
    select (session ->> 'amount_total')::bigint
         - coalesce((session -> 'total_details' ->> 'amount_tax')::bigint, 0)
         + coalesce((session -> 'total_details' ->> 'amount_discount')::bigint, 0)
  );
end
$$;
comment on function private.stripe_session_list_amount(jsonb) is
  'What a Stripe Checkout Session amounts to before the discounts Stripe applied (coupons, promotion codes), net of tax: amount_total less total_details.amount_tax plus total_details.amount_discount. The amount checked against the catalog.';

revoke all on function private.stripe_invoice_list_amount(jsonb), private.stripe_session_list_amount(jsonb) from public;

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
  recorded private.checkout_sessions;
  trusted boolean;
  account uuid;
  pack public.credit_packs;
  quantity integer;
  settlement text;
  expected bigint;
  -- What was paid, net of tax (tax is the customer's business with the tax authority, not
  -- credits), and what the pack cost before the discounts Stripe applied: that is what must
  -- match the catalog (a coupon or promotion code is not a mismatch).
  paid bigint := (obj ->> 'amount_total')::bigint - coalesce((obj -> 'total_details' ->> 'amount_tax')::bigint, 0);
  list_amount bigint := private.stripe_session_list_amount(obj);
  flag text;
begin
  select s.* into recorded from private.checkout_sessions s where s.session_id = obj ->> 'id';
  trusted := recorded.session_id is not null
    or coalesce(private.stripe_ts(obj -> 'created')
                < (private.setting('checkout_sessions_recorded_since') #>> '{}')::timestamptz, false);
  if recorded.session_id is not null then
    account := recorded.account_id;
  elsif trusted then
    -- A session from before sessions were recorded: the account it names, as it always was.
    account := private.stripe_account(array[obj ->> 'client_reference_id', metadata ->> 'account_id'], customer_id);
  else
    -- Not a session of ours (a Payment Link, a pricing table, another integration): anyone
    -- can put any account in client_reference_id. It is recorded on the customer's account,
    -- else the account it names, flagged; it links no customer and credits nothing.
    account := coalesce(private.stripe_account(array[]::text[], customer_id),
                        private.stripe_account(array[obj ->> 'client_reference_id', metadata ->> 'account_id'], null));
  end if;
  if account is null then
    return 'ignored';
  end if;
  if event_type = 'checkout.session.completed' and trusted then
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
  if not trusted then
    flag := pg_catalog.format('unverified_session: %s was not created by our checkout (client_reference_id %s); no credits',
      obj ->> 'id', coalesce(obj ->> 'client_reference_id', 'none'));
  elsif pack.key is null then
    flag := pg_catalog.format('unknown_item: %s', coalesce(metadata ->> 'item', 'none'));
  end if;
  if pack.key is not null then
    expected := pack.price_cents * quantity;
    flag := coalesce(flag, private.check_amount(expected, pack.currency, list_amount, obj ->> 'currency'));
    -- no_payment_required is right only when the discounts left nothing to pay.
    if flag is null and obj ->> 'payment_status' = 'no_payment_required' and coalesce(paid, 0) <> 0 then
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
  'checkout.session.*: for a session our checkout created (private.checkout_sessions), links the customer and, in payment mode, records the credit-pack payment (paid, pending until async_payment_succeeded, or failed), flagging an amount before discounts (private.stripe_session_list_amount: coupons and promotion codes are not mismatches) or currency that does not match the pack price x quantity, and a no_payment_required session that discounts do not explain (no credits then). Any other session is recorded on the customer''s (else the named) account, flagged unverified_session, with no credits and no customer link.';


-- ---------------------------------------------------------------------------
-- Invoices (subscriptions)
-- ---------------------------------------------------------------------------
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
  -- What the invoice amounted to before the discounts Stripe applied, net of tax: that is what
  -- must match the catalog (a coupon or promotion code is not a mismatch).
  list_amount bigint := private.stripe_invoice_list_amount(obj);
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

  -- Plan credits: for paid renewals and first invoices whose amount before discounts matches
  -- the catalog. A $0 trial invoice (nothing invoiced, nothing discounted) earns nothing and is
  -- not flagged; a 100%-off one earns the plan's credits.
  if settlement = 'paid' and reason in ('subscription_create', 'subscription_cycle') and (paid_amount > 0 or list_amount > 0 or subtotal > 0) then
    if plan.key is null then
      flag := 'unknown_item: no plan for the invoice''s price';
    else
      expected := plan.price_cents * quantity;
      flag := private.check_amount(expected, plan.currency, list_amount, obj ->> 'currency');
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
  'invoice.*: records a subscription invoice as a payment (paid, failed or pending); a paid subscription_create / subscription_cycle invoice whose amount before discounts, net of tax (private.stripe_invoice_list_amount), matches the plan price x quantity earns the plan''s included credits x quantity, expiring at the end of the invoiced period, once per invoice. payment_failed notifies the billing managers. Invoices without a subscription are ignored.';
