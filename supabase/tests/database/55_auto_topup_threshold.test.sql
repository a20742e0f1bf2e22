-- Auto top-up fires at the account's own threshold (docs/billing.md#auto-top-up: when available credits
-- fall below the threshold), not only where the operator's global low_balance_threshold
-- (20) happens to be. Two owners, one story each:
--   Hana tops up below 100: a consumption from 150 to 90 queues the charge at once.
--   Ivo tops up below 5: a consumption from 30 to 15 queues nothing, one from 15 to 3 does.
begin;
select plan(6);

select tests.create_users('hana', 'ivo');
insert into public.credit_packs (key, name, credits, price_cents) values ('threshold_pack', '100 credits', 100, 500);
insert into public.billable_actions (key, name, category, credits, unit_size) values ('threshold_call', 'One credit a unit', 'api', 1, 1);
update private.rate_limit_policies set capacity = 1000, refill_per_second = 1000 where name = 'consume_credits';

-- Brings an account's available credits to exactly `target` with one consumption.
create function pg_temp.consume_down_to(account uuid, target bigint) returns void language sql as $$
  select public.consume_credits(account, 'threshold_call',
    ((select b.available from public.credit_balances b where b.account_id = account) - target)::int)
$$;
create function pg_temp.charges_queued(account uuid) returns int language sql as $$
  select count(*)::int from public.auto_topup_attempts a where a.account_id = account
$$;

-- Both wallets hold well above any threshold first.
select private.grant_credits(tests.user_id('hana'), 500, 'purchase', null, 'fund-hana', null, '{}'::jsonb);
select private.grant_credits(tests.user_id('ivo'), 500, 'purchase', null, 'fund-ivo', null, '{}'::jsonb);

select tests.authenticate_as('hana');
select public.set_auto_topup(tests.user_id('hana'), true, 100, 'threshold_pack');
select tests.authenticate_as('ivo');
select public.set_auto_topup(tests.user_id('ivo'), true, 5, 'threshold_pack');
select tests.clear_authentication();

-- Hana: above her threshold nothing happens; crossing 100 (far above the global 20) charges.
select pg_temp.consume_down_to(tests.user_id('hana'), 150);
select is(pg_temp.charges_queued(tests.user_id('hana')), 0, 'Hana at 150 credits: no charge');
select pg_temp.consume_down_to(tests.user_id('hana'), 90);
select is(pg_temp.charges_queued(tests.user_id('hana')), 1,
  'Hana falls from 150 to 90, below her threshold of 100: one charge is queued at once');
select is((select count(*)::int from private.jobs j where j.kind = 'credits.auto_topup'
            and j.payload ->> 'attempt_id' in (select a.id::text from public.auto_topup_attempts a
                                               where a.account_id = tests.user_id('hana'))),
  1, 'and its job is in the outbox');

-- Ivo: falling past the global threshold is not his; falling past 5 is.
select pg_temp.consume_down_to(tests.user_id('ivo'), 30);
select pg_temp.consume_down_to(tests.user_id('ivo'), 15);
select is(pg_temp.charges_queued(tests.user_id('ivo')), 0,
  'Ivo falls from 30 to 15 (below the global 20, above his 5): no charge');
select pg_temp.consume_down_to(tests.user_id('ivo'), 3);
select is(pg_temp.charges_queued(tests.user_id('ivo')), 1,
  'Ivo falls from 15 to 3, below his threshold of 5: one charge is queued');

-- Turning it off gives the wallet back to the global threshold.
select tests.authenticate_as('ivo');
select public.set_auto_topup(tests.user_id('ivo'), false, 5, 'threshold_pack');
select tests.clear_authentication();
select is((select b.low_balance_threshold from public.credit_balances b where b.account_id = tests.user_id('ivo')),
  null::bigint, 'with auto top-up off, Ivo''s wallet signals at the global threshold again');

select * from finish();
rollback;
