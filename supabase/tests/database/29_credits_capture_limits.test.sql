-- Capturing a hold never charges or counts more than was reserved (docs/credits.md#holds, docs/rpc.md#capture_credits, docs/errors.md).
--
-- A hold is a promise about a quantity: capture_credits(hold_id, quantity) may charge the
-- reserved quantity or less, and a quantity above the reserved one is invalid_input (22023)
-- that changes nothing. Plan quotas count only the captured units: what a hold reserved
-- and did not use goes back to the quota when it is captured.
--
-- World (time frozen in March 2033, free plan capped at 3 api_calls a month): team "t29-team"
-- with its owner, funded with 100 purchased credits.
begin;
select plan(10);

select tests.freeze_time('2033-03-15 12:00:00+00');
update public.plans set limits = '{"quotas": {"api_call": 3}}' where key = 'free';
update private.rate_limit_policies set capacity = 1000, refill_per_second = 1000 where name in ('consume_credits', 'reserve_credits');

select tests.create_users('t29_owner');
select tests.team('t29-team', owner => 't29_owner', name => 'Capture Co');
select private.grant_credits(tests.account_id('t29-team'), 100, 'purchase', null, 'fund');

-- What the wallet, the hold and the quota counter look like (bypasses RLS).
create function tests.capture_state(key text) returns text
language sql stable security definer set search_path = '' as $$
  select w.balance || '/' || w.held || ' hold ' || h.status || ' used ' || coalesce(w.quota_used ->> 'api_call', '0')
         || ' events ' || (select count(*) from public.usage_events e where e.account_id = w.account_id)
  from public.credit_balances w join public.credit_holds h on h.account_id = w.account_id and h.idempotency_key = key
  where w.account_id = tests.account_id('t29-team')
$$;
grant execute on function tests.capture_state(text) to authenticated;
create function tests.hold29(key text) returns uuid
language sql stable security definer set search_path = '' as $$
  select id from public.credit_holds where idempotency_key = key
$$;
grant execute on function tests.hold29(text) to authenticated;

-- ---------------------------------------------------------------------------
-- A capture above the reserved quantity is refused and changes nothing
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t29_owner');
select lives_ok($$ select public.reserve_credits(tests.account_id('t29-team'), 'api_call', 1, 'one-unit') $$,
  'the owner reserves 1 api_call (1 credit, 1 unit of the quota)');
select is(tests.capture_state('one-unit'), '100/1 hold held used 1 events 0', 'the hold counts 1 unit against the quota');

select throws_ok($$ select public.capture_credits(tests.hold29('one-unit'), 2147483647) $$,
  '22023', 'invalid_input', 'capturing 2,147,483,647 units of a 1-unit hold is invalid_input');
select is(tests.caught($$ select public.capture_credits(tests.hold29('one-unit'), 2) $$) ->> 'detail',
  'quantity must not exceed the 1 unit reserved by the hold',
  'the detail says what the hold allows');
select is(tests.capture_state('one-unit'), '100/1 hold held used 1 events 0',
  'the refused captures charged nothing, counted nothing against the quota and left the hold open');
select lives_ok($$ select public.consume_credits(tests.account_id('t29-team'), 'api_call', 2) $$,
  'the rest of the month''s quota (2 of 3) is still usable: nobody is locked out');

-- ---------------------------------------------------------------------------
-- Quotas count only what is captured
-- ---------------------------------------------------------------------------
select is((public.capture_credits(tests.hold29('one-unit'), 1) ->> 'credits_charged')::int, 1,
  'capturing the reserved unit charges it');
select is(tests.capture_state('one-unit'), '97/0 hold captured used 3 events 2', 'the quota is used up by 3 real units');

-- Next month: a new quota period.
select tests.freeze_time('2033-04-02 12:00:00+00');
select lives_ok($$ select public.reserve_credits(tests.account_id('t29-team'), 'api_call', 3, 'three-units') $$,
  'in April a hold of 3 units takes the whole quota');
select public.capture_credits(tests.hold29('three-units'), 1);
select is(tests.capture_state('three-units'), '96/0 hold captured used 1 events 3',
  'capturing 1 of the 3 reserved units counts 1 against April''s quota');
select tests.clear_authentication();

select * from finish();
rollback;
