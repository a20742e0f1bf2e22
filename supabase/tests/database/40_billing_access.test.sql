-- Billing (docs/tables.md#billing): who reads billing_customers, subscriptions, subscription_history,
-- payments, webhook_events and the account_entitlements view, and that nobody writes them
-- through the API. Also: the account's plan follows the live subscription, a retired plan
-- stays visible to its subscribers, and the checkout entry point checks permission, catalog
-- and existing subscriptions.
--
-- Personas: anon, stranger, viewer, member, admin and owner of a team, staff admin, service_role.
begin;
select plan(63);

select tests.team('billing-co', owner => 'owner', admins => '{admin}', members => '{member}', viewers => '{viewer}');
select tests.create_users('stranger', 'staff');
select tests.make_staff_admin('staff');

-- A catalog of our own: a plan on sale and a retired one the team still pays for.
insert into public.plans (key, name, tier, price_cents, stripe_price_id, included_credits, limits, active) values
  ('t40_team', 'Team', 5, 4900, 'price_t40team', 500, '{"quotas": {"api_call": 123}}', true),
  ('t40_legacy', 'Legacy', 4, 1900, 'price_t40legacy', 100, '{"quotas": {"api_call": 77}}', false);

-- The team's billing, as Stripe events would have written it.
select is(private.handle_stripe_event(jsonb_build_object(
  'id', 'evt_t40_sub', 'object', 'event', 'type', 'customer.subscription.created', 'created', 1800000000,
  'data', jsonb_build_object('object', jsonb_build_object(
    'id', 'sub_t40', 'object', 'subscription', 'status', 'active', 'customer', 'cus_t40',
    'metadata', jsonb_build_object('account_id', tests.account_id('billing-co')),
    'cancel_at_period_end', false,
    'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object(
      'id', 'si_t40', 'quantity', 1, 'price', jsonb_build_object('id', 'price_t40legacy'),
      'current_period_start', extract(epoch from now() - interval '1 day')::bigint,
      'current_period_end', extract(epoch from now() + interval '29 days')::bigint))))))),
  'processed', 'a subscription event is processed');
select is(private.handle_stripe_event(jsonb_build_object(
  'id', 'evt_t40_inv', 'object', 'event', 'type', 'invoice.paid', 'created', 1800000001,
  'data', jsonb_build_object('object', jsonb_build_object(
    'id', 'in_t40', 'object', 'invoice', 'customer', 'cus_t40', 'currency', 'usd', 'amount_paid', 1900,
    'amount_due', 1900, 'subtotal', 1900, 'billing_reason', 'subscription_cycle',
    'parent', jsonb_build_object('subscription_details', jsonb_build_object('subscription', 'sub_t40', 'metadata', '{}'::jsonb)),
    'lines', jsonb_build_object('data', jsonb_build_array(jsonb_build_object(
      'quantity', 1, 'pricing', jsonb_build_object('price_details', jsonb_build_object('price', 'price_t40legacy')),
      'period', jsonb_build_object('start', extract(epoch from now() - interval '1 day')::bigint,
                                   'end', extract(epoch from now() + interval '29 days')::bigint)))))))),
  'processed', 'an invoice event is processed');
select is(private.handle_stripe_event(jsonb_build_object(
  'id', 'evt_t40_inv', 'object', 'event', 'type', 'invoice.paid', 'created', 1800000001,
  'data', jsonb_build_object('object', jsonb_build_object('id', 'in_t40')))),
  'duplicate', 'the same event id again is a duplicate, whatever its body');
select is((select payload -> 'data' -> 'object' ->> 'amount_paid' from public.webhook_events where event_id = 'evt_t40_inv'),
  '1900', 'a duplicate leaves the recorded event untouched');

-- Facts as the runner sees them.
select is((select stripe_customer_id from public.billing_customers where account_id = tests.account_id('billing-co')),
  'cus_t40', 'the customer was linked on first sight');
select is((select credits_granted from public.payments where stripe_invoice_id = 'in_t40'), 100::bigint,
  'the paid invoice granted the plan''s included credits');
select is(tests.wallet_invariant(tests.account_id('billing-co')), 'ok',
  'and the team''s wallet agrees with its ledger and lots');
select is((select plan_key from private.account_plan(tests.account_id('billing-co'))), 't40_legacy',
  'the account''s plan follows the live subscription');
select is((select limits from private.account_plan(tests.account_id('billing-co'))), '{"quotas": {"api_call": 77}}'::jsonb,
  'so do the quotas and rate-limit overrides');
select ok((select period_end > now() + interval '28 days' from private.account_plan(tests.account_id('billing-co'))),
  'and the billing period is the subscription''s');
select is((select plan_key from private.account_plan(tests.account_id('stranger'))), 'free',
  'an account without a subscription is on free');
select is((select period_start from private.account_plan(tests.account_id('stranger'))),
  date_trunc('month', now(), 'UTC'), 'free runs by calendar month');

-- How many rows of the team a persona reads in each billing table, as "customers|subs|history|payments|events".
create function tests.t40_visible() returns text
language sql stable set search_path = '' as $$
  select concat_ws('|',
    (select count(*) from public.billing_customers where account_id = tests.account_id('billing-co')),
    (select count(*) from public.subscriptions where account_id = tests.account_id('billing-co')),
    (select count(*) from public.subscription_history where account_id = tests.account_id('billing-co')),
    (select count(*) from public.payments where account_id = tests.account_id('billing-co')),
    (select count(*) from public.webhook_events where event_id like 'evt_t40%'))
$$;
grant execute on function tests.t40_visible() to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------
select tests.authenticate_as_anon();
select throws_ok('select count(*) from public.billing_customers', '42501', null, 'anon cannot read billing customers');
select throws_ok('select count(*) from public.subscriptions', '42501', null, 'anon cannot read subscriptions');
select throws_ok('select count(*) from public.subscription_history', '42501', null, 'anon cannot read subscription history');
select throws_ok('select count(*) from public.payments', '42501', null, 'anon cannot read payments');
select throws_ok('select count(*) from public.webhook_events', '42501', null, 'anon cannot read webhook events');
select throws_ok('select count(*) from public.account_entitlements', '42501', null, 'anon cannot read entitlements');
select tests.clear_authentication();

-- A stranger reads none of the team's billing; billing.read (viewer and up) reads it, but not
-- webhook events; a staff admin and service_role read everything.
select * from tests.rls_seen('{stranger,viewer,member,admin,owner,staff,service_role}', 'select tests.t40_visible()',
  '{0|0|0|0|0,1|1|1|1|0,1|1|1|1|0,1|1|1|1|0,1|1|1|1|0,1|1|1|1|2,1|1|1|1|2}',
  'the team''s billing rows it reads, as customers|subscriptions|history|payments|events');

select tests.authenticate_as('stranger');
select is((select count(*) from public.account_entitlements where account_id = tests.account_id('billing-co')), 0::bigint,
  'a stranger reads none of the team''s entitlements');
select results_eq($$select plan_key, status, tier from public.account_entitlements$$,
  $$values ('free'::text, 'free'::text, 0)$$, 'a stranger is entitled to free on their personal account');
select is((select count(*) from public.plans where key = 't40_legacy'), 0::bigint, 'a stranger does not see a retired plan');

select tests.authenticate_as('member');
select results_eq(
  $$select plan_key, status, tier, limits, cancel_at_period_end from public.account_entitlements
    where account_id = tests.account_id('billing-co')$$,
  $$values ('t40_legacy'::text, 'active'::text, 4, '{"quotas": {"api_call": 77}}'::jsonb, false)$$,
  'a member sees the team''s entitlements: its live plan, tier, limits');
select is((select count(*) from public.plans where key = 't40_legacy'), 1::bigint, 'subscribers still see the retired plan they pay for');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Writing: nobody through the API
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
select throws_ok($$insert into public.billing_customers (account_id, stripe_customer_id, status) values (tests.account_id('owner'), 'cus_mine', 'active')$$,
  '42501', null, 'the owner cannot link a customer');
select throws_ok($$update public.subscriptions set plan_key = 't40_team'$$, '42501', null, 'the owner cannot change the plan');
select throws_ok($$update public.payments set credits_granted = 1000000$$, '42501', null, 'the owner cannot change a payment');
select throws_ok($$delete from public.subscription_history$$, '42501', null, 'the owner cannot erase history');
select throws_ok($$insert into public.webhook_events (event_id, type, status, payload) values ('evt_fake', 'x', 'processed', '{}')$$,
  '42501', null, 'the owner cannot forge a webhook event');
select throws_ok($$select private.handle_stripe_event('{}'::jsonb)$$, '42501', null, 'the owner cannot call the Stripe handler');
select tests.authenticate_as('staff');
select throws_ok($$update public.webhook_events set status = 'ignored'$$, '42501', null, 'a staff admin cannot change webhook events');
select tests.authenticate_as_service_role();
select throws_ok($$update public.payments set status = 'paid'$$, '42501', null, 'service_role cannot change payments through the API');
select throws_ok($$delete from public.subscriptions$$, '42501', null, 'service_role cannot delete subscriptions through the API');
select tests.clear_authentication();
select throws_ok($$update public.subscription_history set reason = 'created'$$, '42501', null,
  'subscription history is append-only, even for the owner of the table');

-- ---------------------------------------------------------------------------
-- Checkout entry point and portal (as the user)
-- ---------------------------------------------------------------------------
select tests.authenticate_as('viewer');
select throws_ok($$select public.begin_checkout(tests.account_id('billing-co'), null, 't40_nope', 1)$$,
  '42501', null, 'a viewer cannot start a checkout for the team');
select throws_ok($$select public.billing_portal_customer(tests.account_id('billing-co'))$$,
  '42501', null, 'a viewer cannot open the team''s billing portal');
select tests.authenticate_as('owner');
select throws_ok($$select public.begin_checkout(tests.account_id('billing-co'), 't40_team', null, 1)$$,
  'PT409', 'already_subscribed', 'a second subscription is refused: use the portal');
select throws_ok($$select public.begin_checkout(tests.account_id('billing-co'), 't40_legacy', null, 1)$$,
  'PT404', 'not_found', 'a retired plan is not for sale');
select throws_ok($$select public.begin_checkout(tests.account_id('billing-co'), 't40_team', 'pack_250', 1)$$,
  '22023', 'invalid_input', 'exactly one of plan and pack');
select is(public.billing_portal_customer(tests.account_id('billing-co')), 'cus_t40', 'the owner gets the portal customer');
select throws_ok($$select public.billing_portal_customer(tests.account_id('owner'))$$,
  'PT404', 'not_found', 'no customer, no portal');
select is((public.begin_checkout(tests.account_id('owner'), 't40_team', null, 1)) ->> 'customer_idempotency_key',
  'customer-create:' || tests.user_id('owner'), 'a first checkout reserves the customer with a key derived from the account');
select is((public.begin_checkout(tests.account_id('owner'), 't40_team', null, 1)) ->> 'stripe_price_id',
  'price_t40team', 'and names the plan''s Stripe price');
select tests.clear_authentication();
select is((select status from public.billing_customers where account_id = tests.account_id('owner')), 'pending',
  'the reservation is one pending row per account');

-- ---------------------------------------------------------------------------
-- The ordering guard, in SQL
-- ---------------------------------------------------------------------------
create function tests.t40_sub_event(event_id text, created bigint, status text, cancel boolean, type text default 'customer.subscription.updated')
returns text language sql set search_path = '' as $$
  select private.handle_stripe_event(jsonb_build_object(
    'id', event_id, 'object', 'event', 'type', type, 'created', created,
    'data', jsonb_build_object('object', jsonb_build_object(
      'id', 'sub_t40', 'object', 'subscription', 'status', status, 'customer', 'cus_t40', 'metadata', '{}'::jsonb,
      'cancel_at_period_end', cancel,
      'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object(
        'id', 'si_t40', 'quantity', 1, 'price', jsonb_build_object('id', 'price_t40legacy'),
        'current_period_start', extract(epoch from now() - interval '1 day')::bigint,
        'current_period_end', extract(epoch from now() + interval '29 days')::bigint)))))))
$$;
select is(tests.t40_sub_event('evt_t40_b', 1800000100, 'active', true), 'processed', 'a newer update applies');
select is((select cancel_at_period_end from public.subscriptions where stripe_subscription_id = 'sub_t40'), true, 'cancellation scheduled');
select is(tests.t40_sub_event('evt_t40_a', 1800000050, 'active', false), 'processed', 'an older update is accepted as received');
select is((select cancel_at_period_end from public.subscriptions where stripe_subscription_id = 'sub_t40'), true,
  'but does not overwrite the newer state');
select is(tests.t40_sub_event('evt_t40_c', 1800000100, 'past_due', false), 'processed', 'a same-second update');
select is((select status from public.subscriptions where stripe_subscription_id = 'sub_t40'), 'past_due',
  'wins the tie when its status is further along the lifecycle');
select is(tests.t40_sub_event('evt_t40_d', 1800000100, 'active', false), 'processed', 'a same-second update with an earlier status');
select is((select status from public.subscriptions where stripe_subscription_id = 'sub_t40'), 'past_due', 'loses the tie');
select is(tests.t40_sub_event('evt_t40_z', 1800000200, 'canceled', false, 'customer.subscription.deleted'), 'processed', 'the subscription ends');
select is(tests.t40_sub_event('evt_t40_y', 1800000300, 'active', false), 'processed', 'even a later non-final event');
select is((select status from public.subscriptions where stripe_subscription_id = 'sub_t40'), 'canceled', 'never resurrects it');
select is((select plan_key from private.account_plan(tests.account_id('billing-co'))), 'free', 'and the team is back on free');
select is((select array_agg(reason order by id) from public.subscription_history where stripe_subscription_id = 'sub_t40'),
  array['created', 'cancellation_scheduled', 'status_changed', 'canceled'], 'history records each change with its reason');

select * from finish();
rollback;
