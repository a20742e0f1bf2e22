-- Rollover (docs/credits.md#rollover): Rita's team is on "Pro Rollover" (1000 credits a month; up to 600
-- unused credits carry into the next month and live one more month). Three months with the
-- clock frozen: what rolls, the cap, rolled credits expiring, a refund of an old invoice, and
-- a cancelled subscription that carries nothing. Kai's team ("Keep": rolled credits live two
-- periods) shows that credits still carried count against the cap.
begin;
select plan(28);

select tests.create_supabase_user('t53_rita', 'rita@rollover.test');
select tests.team('t53-rollover-team', owner => 't53_rita', name => 'Rollover team');
insert into public.plans (key, name, tier, price_cents, stripe_price_id, included_credits, rollover, active) values
  ('t53_pro', 'Pro Rollover', 5, 2000, 'price_t53pro', 1000, '{"max_credits": 600, "periods": 1}', true);
select private.attach_billing_customer(tests.account_id('t53-rollover-team'), 'cus_t53rita', 'rita@rollover.test');

-- Stripe objects, dated by the frozen clock.
create function pg_temp.evt(id text, type text, obj jsonb) returns jsonb language sql as $$
  select jsonb_build_object('id', id, 'object', 'event', 'type', type,
    'created', extract(epoch from private.now())::bigint, 'data', jsonb_build_object('object', obj))
$$;
create function pg_temp.sub(cancelling boolean default false) returns jsonb language sql as $$
  select jsonb_build_object('id', 'sub_t53rita', 'object', 'subscription', 'status', 'active', 'customer', 'cus_t53rita',
    'metadata', jsonb_build_object('account_id', tests.account_id('t53-rollover-team')), 'cancel_at_period_end', cancelling,
    'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object('id', 'si_t53', 'quantity', 1,
      'price', jsonb_build_object('id', 'price_t53pro'),
      'current_period_start', extract(epoch from private.now())::bigint,
      'current_period_end', extract(epoch from private.now() + interval '30 days')::bigint))))
$$;
create function pg_temp.invoice(n int, reason text) returns jsonb language sql as $$
  select jsonb_build_object('id', 'in_t53_' || n, 'object', 'invoice', 'customer', 'cus_t53rita', 'currency', 'usd',
    'amount_paid', 2000, 'amount_due', 2000, 'subtotal', 2000, 'total_excluding_tax', 2000, 'billing_reason', reason,
    'charge', 'ch_t53_' || n,
    'parent', jsonb_build_object('subscription_details', jsonb_build_object('subscription', 'sub_t53rita', 'metadata', '{}'::jsonb)),
    'lines', jsonb_build_object('data', jsonb_build_array(jsonb_build_object('quantity', 1,
      'pricing', jsonb_build_object('price_details', jsonb_build_object('price', 'price_t53pro')),
      'period', jsonb_build_object('start', extract(epoch from timestamptz '2027-01-01 00:00Z' + (n - 1) * interval '30 days')::bigint,
                                   'end', extract(epoch from timestamptz '2027-01-01 00:00Z' + n * interval '30 days')::bigint)))))
$$;
-- The wallet (its invariant is the kit's: tests.wallet_invariant).
create function pg_temp.balance() returns bigint language sql as $$
  select balance from public.credit_balances where account_id = tests.account_id('t53-rollover-team')
$$;
create function pg_temp.spend(n bigint) returns void language sql as $$
  select private.write_ledger(private.spend(tests.account_id('t53-rollover-team'), n), -n, 'consume')
$$;
create function pg_temp.rolled(n int) returns public.credit_grants language sql as $$
  select g.* from public.credit_grants g
  join public.payments p on p.id = g.payment_id and p.stripe_invoice_id = 'in_t53_' || n
  where g.metadata ? 'rolled_from'
$$;

-- ---------------------------------------------------------------------------
-- Month 1: Rita subscribes and uses 300 of her 1000 credits.
-- ---------------------------------------------------------------------------
select tests.freeze_time('2027-01-01 00:00Z');
select private.handle_stripe_event(pg_temp.evt('evt_t53_sub', 'customer.subscription.created', pg_temp.sub()));
select private.handle_stripe_event(pg_temp.evt('evt_t53_in1', 'invoice.paid', pg_temp.invoice(1, 'subscription_create')));
select pg_temp.spend(300);
select is(pg_temp.balance(), 700::bigint, 'month 1: 1000 plan credits, 300 used');

-- ---------------------------------------------------------------------------
-- The month ends: 600 of the 700 unused roll (the cap), 100 expire. Then the renewal is paid.
-- ---------------------------------------------------------------------------
select tests.freeze_time('2027-01-31 00:00Z');
select is(pg_temp.balance(), 700::bigint, 'at the very end of month 1 nothing has moved yet');
select tests.freeze_time('2027-01-31 00:05Z');
select private.expire_credit_grants();
select is(pg_temp.balance(), 600::bigint, 'the period ended: 600 credits carried over, the 100 above the cap expired');
select is((select array_agg(delta order by id) from public.credit_ledger
           where account_id = tests.account_id('t53-rollover-team') and reason = 'rollover'), array[-600, 600]::bigint[],
  'two ledger entries say rollover: minus 600 on the ended lot, plus 600 on a lot of their own (balance unchanged)');
select is((select -delta from public.credit_ledger
           where account_id = tests.account_id('t53-rollover-team') and reason = 'expire'), 100::bigint,
  'only the part above the cap is recorded as expired');
select is(((pg_temp.rolled(1)).amount, (pg_temp.rolled(1)).expires_at), (600::bigint, timestamptz '2027-03-02 00:00Z'),
  'the rolled lot holds 600 credits and lives one more period (expires at the end of month 2)');
select is((select l.payment_id from public.credit_ledger l where l.grant_id = (pg_temp.rolled(1)).id),
          (select id from public.payments where stripe_invoice_id = 'in_t53_1'),
  'the rolled lot is traceable to the invoice it derives from');
select is(tests.wallet_invariant(tests.account_id('t53-rollover-team')), 'ok', 'balance = sum of the ledger = unexpired remaining, after the roll');

select private.handle_stripe_event(pg_temp.evt('evt_t53_in2', 'invoice.paid', pg_temp.invoice(2, 'subscription_cycle')));
select is(pg_temp.balance(), 1600::bigint, 'month 2 renews: 1000 new plan credits next to the 600 carried');

-- ---------------------------------------------------------------------------
-- Month 2: Rita uses 200; they come from the rolled lot (it was created first, same expiry).
-- ---------------------------------------------------------------------------
select pg_temp.spend(200);
select is((pg_temp.rolled(1)).remaining, 400::bigint, 'the 200 used in month 2 came out of the rolled credits');

-- Month 2 ends: the rolled lot expires (rolled credits never roll again), 600 of month 2's
-- 1000 unused roll.
select tests.freeze_time('2027-03-02 00:05Z');
select private.expire_credit_grants();
select is(pg_temp.balance(), 600::bigint, 'month 2 ends: the 400 left of the rolled lot expire, 600 of 1000 roll, 400 expire');
select is((select sum(-delta)::bigint from public.credit_ledger l where l.reason = 'expire' and l.grant_id = (pg_temp.rolled(1)).id),
  400::bigint, 'the rolled lot of month 1 expired with an expire entry');
select is((pg_temp.rolled(2)).remaining, 600::bigint, 'month 2''s rolled lot holds the capped 600');
select private.handle_stripe_event(pg_temp.evt('evt_t53_in3', 'invoice.paid', pg_temp.invoice(3, 'subscription_cycle')));
select is(pg_temp.balance(), 1600::bigint, 'month 3 renews');
select is(tests.wallet_invariant(tests.account_id('t53-rollover-team')), 'ok', 'the invariant holds over three periods');

-- ---------------------------------------------------------------------------
-- Month 3: Stripe refunds month 2's invoice. What still derives from it is its rolled lot.
-- A promotional grant that ends with the period would come first in draw-down order: the
-- refund must not take it.
-- ---------------------------------------------------------------------------
select private.grant_credits(tests.account_id('t53-rollover-team'), 100, 'promo', '2027-04-01 00:00Z', 't53-promo');
select private.handle_stripe_event(pg_temp.evt('evt_t53_refund', 'charge.refunded', jsonb_build_object(
  'id', 'ch_t53_2', 'object', 'charge', 'invoice', 'in_t53_2', 'customer', 'cus_t53rita',
  'amount', 2000, 'amount_refunded', 2000, 'currency', 'usd')));
select is((select credits_clawed_back from public.payments where stripe_invoice_id = 'in_t53_2'), 600::bigint,
  'the refund of month 2 takes back the 600 still delivered (1000 granted, 400 expired)');
select is((pg_temp.rolled(2)).remaining, 0::bigint, 'taken from the lot rolled out of month 2''s credits');
select is((select sum(remaining)::bigint from public.credit_grants g join public.payments p on p.id = g.payment_id
           where p.stripe_invoice_id = 'in_t53_3'), 1000::bigint,
  'month 3''s own credits are untouched');
select is((select remaining from public.credit_grants where idempotency_key = 't53-promo'), 100::bigint,
  'and so is the promotion drawn first otherwise: the clawback follows the payment''s lots');
select is(tests.wallet_invariant(tests.account_id('t53-rollover-team')), 'ok', 'the invariant holds after the clawback');

-- ---------------------------------------------------------------------------
-- Rita cancels at the period end: month 3's unused credits have nowhere to go and expire.
-- ---------------------------------------------------------------------------
select private.handle_stripe_event(pg_temp.evt('evt_t53_cancel', 'customer.subscription.updated', pg_temp.sub(cancelling => true)));
select tests.freeze_time('2027-04-01 00:05Z');
select private.expire_credit_grants();
select is(pg_temp.balance(), 0::bigint, 'a subscription that ends carries nothing over');

-- ---------------------------------------------------------------------------
-- Kai's team is on "Keep" (1000 a month; up to 500 carried, living two periods). He uses
-- nothing for three months: the cap counts what earlier rolls still carry.
-- ---------------------------------------------------------------------------
select tests.team('t53-keep-team', owner => 't53_rita', name => 'Keep team');
insert into public.plans (key, name, tier, price_cents, stripe_price_id, included_credits, rollover, active) values
  ('t53_keep', 'Keep', 4, 1500, 'price_t53keep', 1000, '{"max_credits": 500, "periods": 2}', true);
select private.attach_billing_customer(tests.account_id('t53-keep-team'), 'cus_t53kai', null);
create function pg_temp.kai_invoice(n int, reason text) returns jsonb language sql as $$
  select (pg_temp.invoice(n, reason) - 'id' - 'customer' - 'charge' - 'amount_paid' - 'amount_due' - 'subtotal' - 'total_excluding_tax')
    || jsonb_build_object('id', 'in_t53kai_' || n, 'customer', 'cus_t53kai', 'charge', 'ch_t53kai_' || n,
         'amount_paid', 1500, 'amount_due', 1500, 'subtotal', 1500, 'total_excluding_tax', 1500)
    || jsonb_build_object('parent', jsonb_build_object('subscription_details', jsonb_build_object('subscription', 'sub_t53kai', 'metadata', '{}'::jsonb)))
    || jsonb_build_object('lines', jsonb_set(pg_temp.invoice(n, reason) -> 'lines', '{data,0,pricing,price_details,price}', '"price_t53keep"'))
$$;
create function pg_temp.kai_balance() returns bigint language sql as $$
  select balance from public.credit_balances where account_id = tests.account_id('t53-keep-team')
$$;
select tests.freeze_time('2027-01-01 00:00Z');
select private.handle_stripe_event(pg_temp.evt('evt_t53kai_sub', 'customer.subscription.created',
  jsonb_set(jsonb_set(jsonb_set(pg_temp.sub(), '{id}', '"sub_t53kai"'), '{customer}', '"cus_t53kai"'),
            '{items,data,0,price,id}', '"price_t53keep"')
  || jsonb_build_object('metadata', jsonb_build_object('account_id', tests.account_id('t53-keep-team')))));
select private.handle_stripe_event(pg_temp.evt('evt_t53kai_in1', 'invoice.paid', pg_temp.kai_invoice(1, 'subscription_create')));
select tests.freeze_time('2027-01-31 00:05Z');
select private.expire_credit_grants();
select private.handle_stripe_event(pg_temp.evt('evt_t53kai_in2', 'invoice.paid', pg_temp.kai_invoice(2, 'subscription_cycle')));
select is(pg_temp.kai_balance(), 1500::bigint, 'Kai: 500 of month 1 carried (the cap), plus month 2''s 1000');
select tests.freeze_time('2027-03-02 00:05Z');
select private.expire_credit_grants();
select is(pg_temp.kai_balance(), 500::bigint,
  'month 2 ends: the 500 carried from month 1 still live and fill the cap, so none of month 2''s 1000 rolls');
select tests.freeze_time('2027-03-31 23:00Z');
select private.expire_credit_grants();
select is(pg_temp.kai_balance(), 500::bigint, 'month 1''s rolled credits live through month 3 (two periods)');
select tests.freeze_time('2027-04-01 00:05Z');
select private.expire_credit_grants();
select is(pg_temp.kai_balance(), 0::bigint, 'and expire when month 3 ends');
select is((select count(*) from public.credit_ledger where account_id = tests.account_id('t53-keep-team') and reason = 'rollover'),
  2::bigint, 'one roll in three months: one pair of rollover entries');

-- A plan's rollover must be a cap and a number of periods.
select throws_ok($$ update public.plans set rollover = '{"max_credits": 0, "periods": 1}' where key = 't53_pro' $$,
  '23514', null, 'a rollover without a positive cap is refused by the catalog');
select throws_ok($$ update public.plans set rollover = '{"max_credits": 100}' where key = 't53_pro' $$,
  '23514', null, 'a rollover without a number of periods is refused');

select * from finish();
rollback;
