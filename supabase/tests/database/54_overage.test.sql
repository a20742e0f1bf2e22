-- Overage, the SQL rules (docs/credits.md#overage). The Stripe side (meter events, retries, replays) is
-- proved by the Deno story overage_test.ts; here: which actions may run past the wallet, that
-- a covered consumption records nothing, the cap per billing period and its reset, the same
-- results on the explanation path, the plan's settings shape, and who reads the records.
--
-- Persona: Oskar's team (no subscription: the free plan, calendar-month periods) whose free
-- plan lets "t54_render" and the category "t54_video" run up to 50 credits past the wallet.
begin;
select plan(17);

select tests.create_users('t54_oskar', 't54_stranger');
select tests.team('t54-overage-team', owner => 't54_oskar', name => 'Overage team');
insert into public.billable_actions (key, name, category, credits) values
  ('t54_render', 'Render', 'general', 10),
  ('t54_clip', 'Clip', 't54_video', 10),
  ('t54_export', 'Export', 'general', 10);
update public.plans set limits = limits || '{"overage": {"actions": ["t54_render"], "categories": ["t54_video"],
  "max_units_per_period": 50, "stripe_meter_event_name": "t54_meter"}}' where key = 'free';

create function pg_temp.use(action text, units int, key text) returns jsonb language sql as $$
  select public.consume_credits(tests.account_id('t54-overage-team'), action, units, key)
$$;
create function pg_temp.available() returns bigint language sql as $$
  select available from public.credit_balances where account_id = tests.account_id('t54-overage-team')
$$;
create function pg_temp.overages() returns bigint language sql as $$
  select count(*) from public.usage_overages where account_id = tests.account_id('t54-overage-team')
$$;

select tests.freeze_time('2031-03-10 12:00Z');
select private.grant_credits(tests.account_id('t54-overage-team'), 25, 'admin');

-- Covered by the wallet: the ordinary charge, nothing recorded.
select is(pg_temp.use('t54_render', 1, 'k1') ->> 'overage_units', null, 'a render the wallet covers has no overage');
select is(pg_temp.overages(), 0::bigint, 'and records none');

-- An action the plan does not name is refused as before.
select is(tests.caught($$ select pg_temp.use('t54_export', 2, 'k2') $$) ->> 'message', 'insufficient_credits',
  'an action not named in overage is refused with insufficient_credits when the wallet cannot cover it');

-- Half covered: 15 credits left, 20 due.
select is(pg_temp.use('t54_render', 2, 'k3') - 'usage_event_id',
  '{"credits_charged": 20, "overage_units": 5, "balance": 0, "available": 0, "replayed": false}'::jsonb,
  'a render half covered charges the 15 credits left and records 5 as overage');
select is((select overage_units from public.usage_overages o join public.usage_events e on e.id = o.usage_event_id
           where e.idempotency_key = 'k3'), 5::bigint, 'the overage is recorded against its usage event');
select is((select sum(-delta) from public.credit_ledger where account_id = tests.account_id('t54-overage-team') and reason = 'consume'),
  25::numeric, 'the ledger charged only what the wallet had');
select is(pg_temp.available(), 0::bigint, 'available never goes below zero');

-- A category named by the plan, on the explanation path: same rule.
set local ledgerbase.explanation_path = 'on';
select is((pg_temp.use('t54_clip', 3, 'k4') ->> 'overage_units')::int, 30, 'an action of a named category runs past the wallet too (explanation path)');
reset ledgerbase.explanation_path;

-- The cap: 35 of 50 used; 20 more would pass it.
select is(tests.caught($$ select pg_temp.use('t54_render', 2, 'k5') $$) ->> 'detail',
  '{"required": 20, "available": 0, "resets_at": "2031-04-01T00:00:00+00:00", "overage_used": 35, "overage_limit": 50}',
  'past the cap: PT402 insufficient_credits with the cap, what is used and when it resets');
select is(tests.caught($$ select pg_temp.use('t54_render', 2, 'k5') $$) ->> 'code', 'PT402', 'with code PT402');
select is(pg_temp.overages(), 2::bigint, 'the refused render recorded nothing');
select is((select count(*) from private.jobs where kind = 'overage.meter_event'
           and payload ->> 'usage_event_id' in (select usage_event_id::text from public.usage_overages
                                                where account_id = tests.account_id('t54-overage-team'))), 2::bigint,
  'one meter job per overage');

-- A new billing period starts the count again.
select tests.freeze_time('2031-04-01 00:00:01Z');
select is((pg_temp.use('t54_render', 5, 'k6') ->> 'overage_units')::int, 50, 'in the next period the full cap is available again');

-- Who reads the records.
select is(tests.rls_probe('t54_oskar', $$ select count(*) from public.usage_overages where account_id = tests.account_id('t54-overage-team') $$),
  'allow', 'a member with credits.read reads the team''s overage');
select is(tests.rls_probe('t54_stranger', $$ select count(*) from public.usage_overages where account_id = tests.account_id('t54-overage-team') $$),
  'deny', 'a stranger reads none');

-- The plan's settings are checked.
select throws_ok($$ update public.plans set limits = '{"overage": {"actions": ["x"], "max_units_per_period": 10}}' where key = 'free' $$,
  '23514', null, 'an overage without a Stripe meter event name is refused by the catalog');
select throws_ok($$ update public.plans set limits = '{"overage": {"actions": "x", "max_units_per_period": 10, "stripe_meter_event_name": "m"}}' where key = 'free' $$,
  '23514', null, 'actions must be a list');

select * from finish();
rollback;
