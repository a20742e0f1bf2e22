-- The webhook path (migration 20261207040000_webhook_path): an invoice.paid for Acme is
-- recorded once. Ada's team Acme pays its first "Acme Pro" invoice (1000 credits a month)
-- while it still has 70 of 100 credits a staff adjustment gave it. The event's results are
-- the ones the billing stories expect (payment, lot, ledger entry, wallet, audit entry,
-- outgoing events); what this story adds is how many times each row is written:
--   - the payment row is inserted with its final settlement and amounts, then updated once,
--     by the credit sync (grant_id, credits_granted); before, a pending row was inserted and
--     merged by a second update;
--   - the wallet is written once: its balance, its next expiry and the new lot it now draws
--     from (the lot comes first in draw-down order: it expires, the adjustment's lot does
--     not); before, four times (expiry, balance, settling the old lot, loading the new one);
--   - a second report of the same paid invoice (invoice.payment_succeeded) writes nothing.
-- The write counts are the transaction's own statistics (pg_stat_get_xact_tuples_*), which
-- count every row version a statement wrote, including in subtransactions.
begin;
select plan(27);

select tests.create_users('t58_ada');
select tests.team('t58-acme', owner => 't58_ada', name => 'Acme');
insert into public.plans (key, name, tier, price_cents, stripe_price_id, included_credits, active) values
  ('t58_pro', 'Acme Pro', 5, 2000, 'price_t58pro', 1000, true);
select tests.freeze_time('2027-03-01 00:00Z');

-- Stripe objects and the write counters.
create function pg_temp.evt(id text, type text, obj jsonb) returns jsonb language sql as $$
  select jsonb_build_object('id', id, 'object', 'event', 'type', type,
    'created', extract(epoch from private.now())::bigint, 'data', jsonb_build_object('object', obj))
$$;
create function pg_temp.invoice() returns jsonb language sql as $$
  select jsonb_build_object('id', 'in_t58_1', 'object', 'invoice', 'customer', 'cus_t58acme', 'currency', 'usd',
    'status', 'paid', 'amount_paid', 2000, 'amount_due', 2000, 'subtotal', 2000, 'total', 2000,
    'billing_reason', 'subscription_create', 'charge', 'ch_t58_1', 'hosted_invoice_url', 'https://invoice.test/t58',
    'status_transitions', jsonb_build_object('paid_at', extract(epoch from timestamptz '2027-03-01 00:00Z')::bigint),
    'parent', jsonb_build_object('subscription_details', jsonb_build_object('subscription', 'sub_t58acme',
      'metadata', jsonb_build_object('account_id', tests.account_id('t58-acme')))),
    'lines', jsonb_build_object('data', jsonb_build_array(jsonb_build_object('quantity', 1,
      'pricing', jsonb_build_object('price_details', jsonb_build_object('price', 'price_t58pro')),
      'period', jsonb_build_object('start', extract(epoch from timestamptz '2027-03-01 00:00Z')::bigint,
                                   'end', extract(epoch from timestamptz '2027-03-31 00:00Z')::bigint)))))
$$;
create table pg_temp.writes (label text primary key, payments_ins bigint, payments_upd bigint, wallets_upd bigint);
create function pg_temp.count_writes(label text) returns void language sql as $$
  insert into pg_temp.writes values (label,
    pg_stat_get_xact_tuples_inserted('public.payments'::regclass), pg_stat_get_xact_tuples_updated('public.payments'::regclass),
    pg_stat_get_xact_tuples_updated('public.credit_balances'::regclass))
$$;
create function pg_temp.writes_between(a text, b text) returns table (payments_ins bigint, payments_upd bigint, wallets_upd bigint)
language sql as $$
  select y.payments_ins - x.payments_ins, y.payments_upd - x.payments_upd, y.wallets_upd - x.wallets_upd
  from pg_temp.writes x, pg_temp.writes y where x.label = a and y.label = b
$$;
create function pg_temp.payment() returns public.payments language sql as $$
  select p.* from public.payments p where p.stripe_invoice_id = 'in_t58_1'
$$;

-- Acme has 100 credits from a staff adjustment (a lot that never expires) and used 30: its
-- wallet carries that lot with 70 left; the lot's own row still says 100 until it is settled.
select tests.fund_wallet(tests.account_id('t58-acme'), 100, 'welcome credits');
select public.consume_credits(tests.account_id('t58-acme'), 'api_call', 30);
select is((select (w.lot_remaining, g.remaining) from public.credit_balances w join ledger.lots g on g.id = w.lot_id
           where w.account_id = tests.account_id('t58-acme')), (70::bigint, 100::bigint),
  'before the invoice: the wallet carries the welcome lot with 70 left, its row in ledger.lots still says 100');

-- Acme listens to every event type.
select tests.authenticate_as('t58_ada');
select public.create_webhook_endpoint(tests.account_id('t58-acme'), 'https://hooks.acme.test/ledgerbase', array['*']);
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- The invoice is paid: one event, through the stripe-webhook function's call
-- ---------------------------------------------------------------------------
select pg_temp.count_writes('before');
select is(private.receive_stripe_event(pg_temp.evt('evt_t58_paid', 'invoice.paid', pg_temp.invoice())), 'processed',
  'the invoice.paid is processed');
select pg_temp.count_writes('paid');

select is((select payments_ins from pg_temp.writes_between('before', 'paid')), 1::bigint,
  'the payment row is inserted once');
select is((select payments_upd from pg_temp.writes_between('before', 'paid')), 1::bigint,
  'and updated once, by the credit sync: it was inserted paid, with its amounts (no pending row merged afterwards)');
select is((select wallets_upd from pg_temp.writes_between('before', 'paid')), 1::bigint,
  'the wallet is written once: balance, next expiry and the new lot in one update');

-- The results are the ones every billing story expects.
select is(((pg_temp.payment()).status, (pg_temp.payment()).settlement, (pg_temp.payment()).amount, (pg_temp.payment()).currency,
           (pg_temp.payment()).item_key, (pg_temp.payment()).quantity, (pg_temp.payment()).expected_amount),
          ('paid'::text, 'paid'::text, 2000::bigint, 'usd'::text, 't58_pro'::text, 1, 2000::bigint),
  'the payment: paid, 20.00 USD for one Acme Pro, as the catalog expects');
select is(((pg_temp.payment()).credits_due, (pg_temp.payment()).credits_granted, (pg_temp.payment()).flagged_reason,
           (pg_temp.payment()).billing_reason, (pg_temp.payment()).invoice_url),
          (1000::bigint, 1000::bigint, null::text, 'subscription_create'::text, 'https://invoice.test/t58'::text),
  'it earned and was granted 1000 credits, nothing flagged, with the invoice''s reason and link');
select is(((pg_temp.payment()).paid_at, (pg_temp.payment()).period_start, (pg_temp.payment()).period_end),
          (timestamptz '2027-03-01 00:00Z', timestamptz '2027-03-01 00:00Z', timestamptz '2027-03-31 00:00Z'),
  'paid at the invoice''s time, for the invoiced period');
select is(((pg_temp.payment()).stripe_charge_id, (pg_temp.payment()).stripe_subscription_id, (pg_temp.payment()).stripe_customer_id),
          ('ch_t58_1'::text, 'sub_t58acme'::text, 'cus_t58acme'::text),
  'with the Stripe ids of the invoice');
select is((select (g.amount, g.remaining, g.expires_at, g.source, g.payment_id) from ledger.lots g
           where g.id = (pg_temp.payment()).grant_id),
          (1000::bigint, 1000::bigint, timestamptz '2027-03-31 00:00Z', 'subscription'::text, (pg_temp.payment()).id),
  'the lot: 1000 subscription credits of this payment, expiring at the end of the period');
select is((select (l.delta, l.balance_after, l.reason, l.payment_id) from public.credit_ledger l
           where l.grant_id = (pg_temp.payment()).grant_id),
          (1000::bigint, 1070::bigint, 'subscription'::text, (pg_temp.payment()).id),
  'one ledger entry: +1000, balance 1070 after it');
select is((select (w.balance, w.lot_id, w.lot_remaining, w.next_expiry_at) from public.credit_balances w
           where w.account_id = tests.account_id('t58-acme')),
          (1070::bigint, (pg_temp.payment()).grant_id, 1000::bigint, timestamptz '2027-03-31 00:00Z'),
  'the wallet: 1070 credits, drawing from the new lot first (it expires), the next expiry at its end');
select is((select g.remaining from ledger.lots g where g.account_id = tests.account_id('t58-acme') and g.source <> 'subscription'),
          70::bigint,
  'the welcome lot it displaced is settled: its row says the 70 it has left');
select is(tests.wallet_invariant(tests.account_id('t58-acme')), 'ok',
  'balance = sum of the ledger = the lots'' remaining credits');
select results_eq(
  $$ select action, after ->> 'status', after ->> 'credits_granted', before is null from public.audit_log
     where entity = 'payment' and entity_id = (pg_temp.payment()).id::text $$,
  $$ values ('payment.paid', 'paid', '1000', true) $$,
  'one audit entry: payment.paid, new, with the credits granted');
select results_eq(
  $$ select type, payload -> 'data' ->> 'status', payload -> 'data' ->> 'credits_granted', payload -> 'data' ->> 'amount'
     from public.webhook_deliveries where account_id = tests.account_id('t58-acme') and type like 'payment.%' $$,
  $$ values ('payment.succeeded', 'paid', '0', '2000') $$,
  'Acme''s endpoint gets one payment.succeeded, as it was sent when the payment became paid (before its credits)');
select results_eq(
  $$ select payload -> 'data' ->> 'amount', payload -> 'data' ->> 'source', payload -> 'data' ->> 'grant_id'
     from public.webhook_deliveries where account_id = tests.account_id('t58-acme') and type = 'credits.granted'
       and payload -> 'data' ->> 'source' = 'subscription' $$,
  $$ select '1000', 'subscription', (pg_temp.payment()).grant_id::text $$,
  'and one credits.granted for the new lot');
select is((select count(*) from public.webhook_events where event_id = 'evt_t58_paid' and status = 'processed'), 1::bigint,
  'the event is in the event ledger once, processed');

-- ---------------------------------------------------------------------------
-- Stripe reports the same paid invoice again, as another event type
-- ---------------------------------------------------------------------------
select is(private.receive_stripe_event(pg_temp.evt('evt_t58_succeeded', 'invoice.payment_succeeded', pg_temp.invoice())),
  'processed', 'invoice.payment_succeeded for the same invoice is processed');
select pg_temp.count_writes('again');
select is((select (payments_ins, payments_upd, wallets_upd) from pg_temp.writes_between('paid', 'again')),
          (0::bigint, 0::bigint, 0::bigint),
  'it changes nothing, so it writes nothing: no payment version, no wallet update');
select is((select count(*) from public.audit_log where entity = 'payment' and entity_id = (pg_temp.payment()).id::text), 1::bigint,
  'and no second audit entry');
select is((select count(*) from public.webhook_deliveries where account_id = tests.account_id('t58-acme')
           and type in ('payment.succeeded', 'credits.granted') and payload -> 'data' ->> 'source' is distinct from 'staff_adjustment'), 2::bigint,
  'and no second outgoing event');

-- ---------------------------------------------------------------------------
-- An account with no endpoint: the same results, no outgoing event
-- ---------------------------------------------------------------------------
select tests.create_users('t58_bo');
select tests.team('t58-bolt', owner => 't58_bo', name => 'Bolt');
select is(private.receive_stripe_event(pg_temp.evt('evt_t58_bolt', 'invoice.paid',
  jsonb_set(jsonb_set(pg_temp.invoice(), '{id}', '"in_t58_bolt"'), '{parent,subscription_details}',
    jsonb_build_object('subscription', 'sub_t58bolt', 'metadata', jsonb_build_object('account_id', tests.account_id('t58-bolt')))))),
  'processed', 'Bolt''s invoice.paid is processed');
select is((select (p.status, p.credits_granted) from public.payments p where p.stripe_invoice_id = 'in_t58_bolt'),
          ('paid'::text, 1000::bigint), 'Bolt''s payment is paid and granted its credits');
select is((select count(*) from public.webhook_deliveries where account_id = tests.account_id('t58-bolt')), 0::bigint,
  'Bolt has no endpoint: nothing is queued for it');
select is((select (w.balance, w.lot_id, w.lot_remaining) from public.credit_balances w where w.account_id = tests.account_id('t58-bolt')),
          (1000::bigint, (select p.grant_id from public.payments p where p.stripe_invoice_id = 'in_t58_bolt'), 1000::bigint),
  'Bolt''s wallet had no lot: it now draws from the new one (loaded as before)');
select is(tests.wallet_invariant(tests.account_id('t58-bolt')), 'ok', 'and Bolt''s wallet invariant holds');

select * from finish();
rollback;
