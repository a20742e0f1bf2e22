-- Billing attacks (docs/accounts.md#accounts, docs/billing.md#checkout): what a paying team's owner, a user farming trials, and a
-- stranger paying through a Checkout Session we never created can no longer do.
--
-- Personas: Paula owns the paying team "Paid Co"; Mallory pays through a Payment Link and
-- names Victor's account in client_reference_id; Victor is the victim.
begin;
select plan(32);

select tests.create_users('paula', 'mallory', 'victor');

-- A plan with a trial, and a credit pack, of our own.
insert into public.plans (key, name, tier, price_cents, stripe_price_id, included_credits, trial_days, active) values
  ('t41_team', 'Team', 5, 4900, 'price_t41team', 500, 14, true);
insert into public.credit_packs (key, name, credits, price_cents, stripe_price_id, active) values
  ('t41_pack', 'Pack', 300, 1000, 'price_t41pack', true);

-- Stripe objects as the webhook receives them.
create function pg_temp.evt(id text, type text, obj jsonb) returns jsonb language sql as $$
  select jsonb_build_object('id', id, 'object', 'event', 'type', type,
                            'created', extract(epoch from now())::bigint, 'data', jsonb_build_object('object', obj))
$$;
create function pg_temp.sub(id text, customer text, account uuid, status text, trial boolean default false) returns jsonb language sql as $$
  select jsonb_build_object(
    'id', id, 'object', 'subscription', 'status', status, 'customer', customer,
    'metadata', jsonb_build_object('account_id', account), 'cancel_at_period_end', false,
    'trial_start', case when trial then extract(epoch from now())::bigint end,
    'trial_end', case when trial then extract(epoch from now() + interval '14 days')::bigint end,
    'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object(
      'id', 'si_' || id, 'quantity', 1, 'price', jsonb_build_object('id', 'price_t41team'),
      'current_period_start', extract(epoch from now() - interval '1 day')::bigint,
      'current_period_end', extract(epoch from now() + interval '29 days')::bigint))))
$$;
create function pg_temp.invoice(id text, customer text, sub text, charge text) returns jsonb language sql as $$
  select jsonb_build_object(
    'id', id, 'object', 'invoice', 'customer', customer, 'currency', 'usd', 'amount_paid', 4900,
    'amount_due', 4900, 'subtotal', 4900, 'total_excluding_tax', 4900, 'billing_reason', 'subscription_cycle',
    'charge', charge,
    'parent', jsonb_build_object('subscription_details', jsonb_build_object('subscription', sub, 'metadata', '{}'::jsonb)),
    'lines', jsonb_build_object('data', jsonb_build_array(jsonb_build_object(
      'quantity', 1, 'pricing', jsonb_build_object('price_details', jsonb_build_object('price', 'price_t41team')),
      'period', jsonb_build_object('start', extract(epoch from now() - interval '1 day')::bigint,
                                   'end', extract(epoch from now() + interval '29 days')::bigint)))))
$$;
create function pg_temp.session(id text, account uuid, customer text, created timestamptz default now()) returns jsonb language sql as $$
  select jsonb_build_object(
    'id', id, 'object', 'checkout.session', 'created', extract(epoch from created)::bigint, 'mode', 'payment', 'status', 'complete', 'payment_status', 'paid',
    'client_reference_id', account, 'customer', customer, 'currency', 'usd', 'amount_subtotal', 1000, 'amount_total', 1000,
    'total_details', jsonb_build_object('amount_tax', 0, 'amount_discount', 0),
    'payment_intent', 'pi_' || id,
    'metadata', jsonb_build_object('account_id', account, 'kind', 'credit_pack', 'item', 't41_pack', 'quantity', '1'))
$$;

-- ---------------------------------------------------------------------------
-- 1. Deleting a paying team (the attack: delete it while Stripe keeps charging, and a later
--    refund or invoice finds nothing).
-- ---------------------------------------------------------------------------
select tests.team('paid-co', owner => 'paula', name => 'Paid Co');
-- Its id, kept for after the deletion.
create temp table paid_co as select tests.account_id('paid-co') as id;
grant select on paid_co to authenticated;
select private.attach_billing_customer((select id from paid_co), 'cus_t41paula', 'paula@test.ledgerbase.dev');
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_sub', 'customer.subscription.created',
  pg_temp.sub('sub_t41paid', 'cus_t41paula', (select id from paid_co), 'active'))), 'processed',
  'Paid Co subscribes');
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_inv', 'invoice.paid',
  pg_temp.invoice('in_t41paid', 'cus_t41paula', 'sub_t41paid', 'ch_t41paid'))), 'processed',
  'and pays its first invoice');

select tests.authenticate_as('paula');
select is(tests.caught($$ select public.delete_account((select id from paid_co)) $$) - 'detail',
  jsonb_build_object('code', 'PT409', 'message', 'billing_active',
    'hint', 'Cancel the subscription in the billing portal first, then delete the account once it has ended.'),
  'a team with a live subscription cannot be deleted: billing_active, with a hint to cancel in the portal first');
select tests.clear_authentication();
select is((select count(*) from public.accounts where id = (select id from paid_co)), 1::bigint,
  'the refused deletion changed nothing');

-- Paula cancels in the portal; Stripe says so. Now the team may go.
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_sub_del', 'customer.subscription.deleted',
  pg_temp.sub('sub_t41paid', 'cus_t41paula', (select id from paid_co), 'canceled'))), 'processed',
  'the subscription is canceled');
select tests.authenticate_as('paula');
select lives_ok($$ select public.delete_account((select id from paid_co)) $$,
  'once the subscription has ended, the team can be deleted');
select tests.clear_authentication();

select is((select count(*) from public.payments where account_id = (select id from paid_co)), 1::bigint,
  'its payments outlive the account');
select is((select count(*) from public.subscriptions where account_id = (select id from paid_co)), 1::bigint,
  'so does its subscription');
select is((select count(*) from public.subscription_history where account_id = (select id from paid_co)), 2::bigint,
  'and the subscription''s history');
select is((select stripe_customer_id from public.billing_customers where account_id = (select id from paid_co)), 'cus_t41paula',
  'and the link to its Stripe customer');
select is((select name || ' / ' || slug from private.closed_accounts where account_id = (select id from paid_co)),
  'Paid Co / paid-co', 'the deleted account is remembered for accounting');

-- Stripe refunds the paid invoice afterwards: the payment is found and marked refunded.
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_refund', 'charge.refunded', jsonb_build_object(
  'id', 'ch_t41paid', 'object', 'charge', 'invoice', 'in_t41paid', 'customer', 'cus_t41paula',
  'amount', 4900, 'amount_refunded', 4900, 'currency', 'usd'))), 'processed',
  'a refund after the deletion is processed (answered 200)');
select is((select status from public.payments where stripe_invoice_id = 'in_t41paid'), 'refunded',
  'and the deleted account''s payment is marked refunded');

-- A late invoice of the deleted team still lands: recorded, flagged, no credits.
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_late', 'invoice.paid',
  pg_temp.invoice('in_t41late', 'cus_t41paula', 'sub_t41paid', 'ch_t41late'))), 'processed',
  'a later invoice.paid of the deleted account is processed, not ignored');
select is((select credits_granted::text || ' ' || flagged_reason from public.payments where stripe_invoice_id = 'in_t41late'),
  '0 account_deleted: the account was deleted; nothing is credited',
  'it is recorded without credits, flagged account_deleted');

-- The same holds when a paying user is deleted with their personal account.
select tests.create_users('carl');
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_carl', 'customer.subscription.created',
  pg_temp.sub('sub_t41carl', 'cus_t41carl', tests.account_id('carl'), 'active'))), 'processed',
  'Carl subscribes on his personal account');
select throws_ok($$ delete from auth.users where id = tests.user_id('carl') $$, 'PT409', 'billing_active',
  'a user whose personal account still pays cannot be deleted');

-- ---------------------------------------------------------------------------
-- 2. One trial per user, across the accounts they own (the attack: a new team per trial).
-- ---------------------------------------------------------------------------
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_trial', 'customer.subscription.created',
  pg_temp.sub('sub_t41trial', 'cus_t41paula_personal', tests.account_id('paula'), 'trialing', true))), 'processed',
  'Paula''s personal account starts a trial');
select tests.team('second-co', owner => 'paula');
select tests.authenticate_as('paula');
select is((public.begin_checkout(tests.account_id('second-co'), 't41_team', null, 1)) ->> 'trial_days', '0',
  'a new team of the same owner gets no second trial');
select tests.clear_authentication();
select tests.authenticate_as('victor');
select is((public.begin_checkout(tests.account_id('victor'), 't41_team', null, 1)) ->> 'trial_days', '14',
  'a user who never had a trial still gets one');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- 3. A Checkout Session we never created (the attack: a Payment Link with
--    client_reference_id = the victim's account and a fresh customer).
-- ---------------------------------------------------------------------------
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_foreign', 'checkout.session.completed',
  pg_temp.session('cs_t41foreign', tests.account_id('victor'), 'cus_t41mallory'))), 'processed',
  'Mallory''s session naming Victor is recorded (answered 200)');
select is((select count(*) from public.billing_customers where stripe_customer_id = 'cus_t41mallory'), 0::bigint,
  'it binds Mallory''s customer to no account');
select is((select credits_granted::text || ' ' || split_part(flagged_reason, ':', 1) from public.payments
           where stripe_checkout_session_id = 'cs_t41foreign'), '0 unverified_session',
  'its payment is flagged unverified_session and credits nothing');
select is((select balance from public.credit_balances where account_id = tests.account_id('victor')), 50::bigint,
  'Victor''s wallet is untouched');

-- Victor's own checkout: the function created his customer and recorded the session.
select private.attach_billing_customer(tests.account_id('victor'), 'cus_t41victor', null);
select private.record_checkout_session('cs_t41victor', tests.account_id('victor'), 'cus_t41victor',
  'credit_pack', 't41_pack', 1);
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_own', 'checkout.session.completed',
  pg_temp.session('cs_t41victor', tests.account_id('victor'), 'cus_t41victor'))), 'processed',
  'a session our checkout created is processed');
select is((select balance from public.credit_balances where account_id = tests.account_id('victor')), 350::bigint,
  'and credits the pack');

-- A foreign session with another customer never moves Victor's link.
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_foreign2', 'checkout.session.completed',
  pg_temp.session('cs_t41foreign2', tests.account_id('victor'), 'cus_t41mallory2'))), 'processed',
  'a second foreign session naming Victor');
select is((select stripe_customer_id from public.billing_customers where account_id = tests.account_id('victor')),
  'cus_t41victor', 'Victor keeps his own customer');
select is((select balance from public.credit_balances where account_id = tests.account_id('victor')), 350::bigint,
  'and the foreign session credited nothing');
select is(tests.wallet_invariant(tests.account_id('victor')), 'ok', 'Victor''s wallet agrees with its ledger and lots');

-- A session created before the checkout recorded its sessions (an upgrade with a payment in
-- flight) keeps the old rule: the account it names is credited.
select tests.create_users('olive');
select is(private.handle_stripe_event(pg_temp.evt('evt_t41_legacy', 'checkout.session.completed',
  pg_temp.session('cs_t41legacy', tests.account_id('olive'), 'cus_t41olive',
                  (select (value #>> '{}')::timestamptz - interval '1 hour' from private.settings
                   where key = 'checkout_sessions_recorded_since')))), 'processed',
  'a session from before sessions were recorded is processed');
select is((select balance from public.credit_balances where account_id = tests.account_id('olive')), 350::bigint,
  'and credited as before the upgrade');

select * from finish();
rollback;
