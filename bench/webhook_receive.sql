-- The SQL side of the webhook figure alone: one paid subscription invoice (a new invoice of a
-- random account of :accounts, as supabase/functions/stripe-webhook/bench.ts sends them)
-- through private.receive_stripe_event. Needs the plan the webhook bench creates, so run it on
-- a database kept by `npm run bench -- --only=webhook --keep`:
--   pgbench -n -c 1 -T 10 -D accounts=10000 -f bench/webhook_receive.sql <url>
-- One client gives the cost of an event in the database (latency); compare versions of the
-- functions in alternation (old, new, new, old) on the same database.
\set n random(1, :accounts)
\set u random(1, 2000000000)
select private.receive_stripe_event(jsonb_build_object(
  'id', 'evt_pgb_' || :client_id || '_' || :u || '_' || txid_current(), 'object', 'event', 'type', 'invoice.paid',
  'created', extract(epoch from now())::bigint, 'api_version', '2026-10-28.endive', 'livemode', false,
  'data', jsonb_build_object('object', jsonb_build_object(
    'id', 'in_pgb_' || :client_id || '_' || :u || '_' || txid_current(), 'object', 'invoice', 'customer', 'cus_pgb_' || :n,
    'status', 'paid', 'currency', 'usd', 'amount_paid', 1000, 'amount_due', 1000, 'subtotal', 1000, 'total', 1000,
    'billing_reason', 'subscription_cycle', 'livemode', false,
    'status_transitions', jsonb_build_object('paid_at', extract(epoch from now())::bigint),
    'parent', jsonb_build_object('type', 'subscription_details', 'subscription_details', jsonb_build_object(
      'subscription', 'sub_pgb_' || :u,
      'metadata', jsonb_build_object('account_id', '00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')))),
    'lines', jsonb_build_object('object', 'list', 'data', jsonb_build_array(jsonb_build_object(
      'id', 'il_pgb_' || :u, 'object', 'line_item', 'amount', 1000, 'currency', 'usd', 'quantity', 1,
      'period', jsonb_build_object('start', extract(epoch from now())::bigint - 86400,
                                   'end', extract(epoch from now())::bigint + 29 * 86400),
      'pricing', jsonb_build_object('type', 'price_details', 'price_details', jsonb_build_object(
        'price', 'price_bench_webhook', 'product', 'prod_bench_webhook')))))))));
