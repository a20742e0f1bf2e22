-- Plan quotas and rate limits (docs/catalog.md#plan-limits, docs/credits.md#quotas,
-- docs/credits.md#rate-limits, docs/errors.md).
--
-- private.account_plan() puts every account on the 'free' plan for now, so the stories set
-- the free plan's limits inside this transaction (rolled back). Policies are changed the
-- same way, as the runner. Time is frozen; both quotas and buckets follow private.now().
--
-- World: team "t23-team" (tests.team) with t23_owner, t23_admin and t23_member, funded with 100
-- credits; t23_solo, a user on their own personal account.
begin;
select plan(62);

select tests.freeze_time('2031-05-20 10:00:00+00');
update public.plans set limits = '{"quotas": {"api_call": 3, "category:generation": 2}}' where key = 'free';
-- The invitation story is about the rate limit, not the plan's member limit
-- (14_identity_member_limits): the free plan's max_members is lifted in this transaction.
update public.plans set max_members = null where key = 'free';

select tests.create_users('t23_owner', 't23_admin', 't23_member', 't23_solo');
select tests.team('t23-team', owner => 't23_owner', admins => '{t23_admin}', members => '{t23_member}', name => 'Limits Co');
select private.grant_credits(tests.account_id('t23-team'), 100, 'purchase');

-- "balance/usage events" of an account, bypassing RLS.
create function tests.footprint(acc uuid) returns text
language sql stable security definer set search_path = '' as $$
  select (select balance from public.credit_balances where account_id = acc) || '/' ||
         (select count(*) from public.usage_events where account_id = acc)
$$;
grant execute on function tests.footprint(uuid) to authenticated;

-- ---------------------------------------------------------------------------
-- Quotas: units per action or category per billing period (the calendar month for free)
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t23_member');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 2) $$, '2 of 3 api_calls');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 1) $$, 'the 3rd api_call');
select is(tests.footprint(tests.account_id('t23-team')), '97/2', 'the team paid 3 credits for 2 calls (3 units)');
select throws_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 1) $$,
  'PT429', 'quota_exceeded', 'a 4th api_call this month exceeds the quota of 3');
select is(
  tests.caught($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 1) $$) - 'code' - 'message',
  jsonb_build_object('hint', 'resets at 2031-06-01T00:00:00Z',
                     'detail', jsonb_build_object('quota', 'api_call', 'limit', 3, 'resets_at', '2031-06-01T00:00:00+00:00')::text),
  'the hint has the reset time (start of next month, UTC); the detail names the quota and its limit');
select is(tests.footprint(tests.account_id('t23-team')), '97/2', 'a quota refusal charges nothing and records no usage');

-- Category quota: the generation actions share 2 units.
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'text_to_thumbnail') $$, '1st generation');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'youtube_thumbnail') $$, '2nd generation, another action');
select is(
  (tests.caught($$ select public.consume_credits(tests.account_id('t23-team'), 'your_face') $$) ->> 'detail')::jsonb ->> 'quota',
  'category:generation', 'a 3rd generation of any kind exceeds the category quota');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'ai_tokens', 5000) $$,
  'an action of another category without a quota is not limited');
select throws_ok($$ select public.reserve_credits(tests.account_id('t23-team'), 'face_youtube') $$,
  'PT429', 'quota_exceeded', 'reserving a generation is refused too when the quota is used up');
select is(tests.footprint(tests.account_id('t23-team')), '62/5', 'only the allowed calls were charged (3 + 10 + 20 + 5)');
select tests.clear_authentication();
select is(
  (select quota_used from public.credit_balances where account_id = tests.account_id('t23-team')),
  '{"api_call": 3, "category:generation": 2}'::jsonb,
  'the wallet''s counters hold the units used this period, per capped key');

-- Quotas are per account: the owner's personal wallet has its own.
select tests.authenticate_as('t23_owner');
select lives_ok($$ select public.consume_credits(tests.user_id('t23_owner'), 'api_call', 3) $$,
  'the owner''s personal account uses its own 3 api_calls');
select throws_ok($$ select public.consume_credits(tests.user_id('t23_owner'), 'api_call') $$,
  'PT429', 'quota_exceeded', 'and is then capped as well');

-- The next billing period starts from zero.
select tests.freeze_time('2031-06-01 00:00:00+00');
select tests.authenticate_as('t23_member');
select throws_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 4) $$,
  'PT429', 'quota_exceeded', 'in June, 4 api_calls at once still exceed the quota of 3');
select is(public.consume_credits(tests.account_id('t23-team'), 'api_call', 3) ->> 'credits_charged', '3',
  'but 3 are allowed again: the counter is per billing period');
select is(
  tests.caught($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$) ->> 'hint',
  'resets at 2031-07-01T00:00:00Z', 'and the June quota resets on July 1');
-- A hold counts its units when reserved; capturing all of them changes nothing.
select lives_ok($$ select public.reserve_credits(tests.account_id('t23-team'), 'your_face', 2, 'q-hold') $$,
  'reserving 2 generations fits the quota');
select lives_ok($$ select public.capture_credits((select id from public.credit_holds where idempotency_key = 'q-hold')) $$,
  'capturing them keeps the 2 units counted');
select throws_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'text_to_thumbnail') $$,
  'PT429', 'quota_exceeded', 'the captured hold used up June''s generation quota');
select tests.clear_authentication();
select is(
  (select quota_period_start || ' ' || quota_used from public.credit_balances where account_id = tests.account_id('t23-team')),
  '2031-06-01 00:00:00+00 {"api_call": 3, "category:generation": 2}',
  'the wallet counts June now: May''s counters were left behind when June began');

-- ---------------------------------------------------------------------------
-- Rate limits: GCRA buckets per policy and subject
-- ---------------------------------------------------------------------------
update public.plans set limits = '{}' where key = 'free';
update private.rate_limit_policies set capacity = 3, refill_per_second = 0.5 where name = 'consume_credits';
select tests.freeze_time('2031-06-10 09:00:00+00');

-- consume_credits is counted per account: two users of the team share one bucket of 3.
select tests.authenticate_as('t23_member');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$, 'call 1 of 3');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$, 'call 2 of 3');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 1, 'rl-3') $$, 'call 3 of 3 (keyed)');
select is(tests.footprint(tests.account_id('t23-team')), '16/10', 'three calls charged');
select tests.authenticate_as('t23_owner');
select throws_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$,
  'PT429', 'rate_limited', 'the owner''s call on the same team is the 4th in the bucket: rate_limited');
select is(
  tests.caught($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$) - 'code' - 'message' - 'detail',
  '{"hint": "retry after 2 seconds"}'::jsonb,
  'the hint says to retry after 1 / 0.5 = 2 seconds');
select is(
  (tests.caught($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$) ->> 'detail')::jsonb,
  '{"policy": "consume_credits", "capacity": 3, "refill_per_second": 0.5, "retry_after_seconds": 2}'::jsonb,
  'the detail is JSON with the policy, capacity, refill and retry_after_seconds');
select is(tests.footprint(tests.account_id('t23-team')), '16/10', 'a denied call consumed nothing');
select is(public.consume_credits(tests.account_id('t23-team'), 'api_call', 1, 'rl-3') ->> 'replayed', 'true',
  'replaying an earlier keyed call is answered even while the bucket is empty');
select lives_ok($$ select public.consume_credits(tests.user_id('t23_owner'), 'api_call') $$,
  'the owner''s personal account has its own bucket');
select tests.clear_authentication();
-- The consume_credits policy counts per account, so its GCRA timestamp lives on the
-- wallet row that every consumption locks anyway (one row per account, not two).
select is(
  (select consume_tat from public.credit_balances where account_id = tests.account_id('t23-team')),
  '2031-06-10 09:00:06+00'::timestamptz,
  'the team''s bucket is its wallet: three calls at 2 s each moved consume_tat 6 s past the frozen clock');
select is(
  (select count(*)::int from private.rate_limit_buckets where key like 'consume_credits:%'),
  0, 'and the bucket table holds no consume_credits bucket');

select tests.freeze_time('2031-06-10 09:00:01+00');
select tests.authenticate_as('t23_member');
select is(
  tests.caught($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$) ->> 'hint',
  'retry after 1 second', 'one second later the wait is 1 more second');
select tests.freeze_time('2031-06-10 09:00:02+00');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$,
  'after 1 / refill_per_second = 2 seconds one more call passes');
select throws_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$,
  'PT429', 'rate_limited', 'and only one');
select tests.freeze_time('2031-06-10 09:01:00+00');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 1, 'rl-burst-1') $$,
  'after a long pause the bucket is full again: call 1');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 1, 'rl-burst-2') $$, 'call 2');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 1, 'rl-burst-3') $$, 'call 3');
select throws_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call') $$,
  'PT429', 'rate_limited', 'but the burst is capped at capacity 3');

-- A plan overrides the policy.
select tests.clear_authentication();
update public.plans set limits = '{"rate_limits": {"consume_credits": {"capacity": 2, "refill_per_second": 1}}}' where key = 'free';
select tests.authenticate_as('t23_solo');
select lives_ok($$ select public.consume_credits(tests.user_id('t23_solo'), 'api_call') $$, 'plan override: call 1 of 2');
select lives_ok($$ select public.consume_credits(tests.user_id('t23_solo'), 'api_call') $$, 'plan override: call 2 of 2');
select is(
  tests.caught($$ select public.consume_credits(tests.user_id('t23_solo'), 'api_call') $$) - 'code' - 'detail',
  '{"message": "rate_limited", "hint": "retry after 1 second"}'::jsonb,
  'the plan''s capacity 2 and refill 1/s apply instead of the policy''s 3 and 0.5/s');
select is(tests.footprint(tests.user_id('t23_solo')), '48/2', 'the solo user paid for 2 calls only');

-- reserve_credits has its own policy.
select tests.clear_authentication();
update private.rate_limit_policies set capacity = 1, refill_per_second = 0.001 where name = 'reserve_credits';
select tests.authenticate_as('t23_solo');
select lives_ok($$ select public.reserve_credits(tests.user_id('t23_solo'), 'api_call', 1, 'r-1') $$, 'one reservation');
select is(
  (tests.caught($$ select public.reserve_credits(tests.user_id('t23_solo'), 'api_call', 1, 'r-2') $$) ->> 'detail')::jsonb ->> 'policy',
  'reserve_credits', 'a second reservation is rate_limited by the reserve_credits policy');
select is((select count(*)::int from public.credit_holds where account_id = tests.user_id('t23_solo')), 1,
  'the denied reservation created no hold');

-- invite_member (a trigger on account_invitations) is counted per inviting user.
select tests.clear_authentication();
select has_trigger('public', 'account_invitations', 'account_invitations_rate_limit',
  'every invitation insert passes the invite_member rate limit (trigger)');
update private.rate_limit_policies set capacity = 2, refill_per_second = 0.001 where name = 'invite_member';
select tests.authenticate_as('t23_owner');
select lives_ok($$ select public.invite_member(tests.account_id('t23-team'), 'one@limits.test') $$, 'invitation 1 of 2');
select lives_ok($$ select public.invite_member(tests.account_id('t23-team'), 'two@limits.test') $$, 'invitation 2 of 2');
select throws_ok($$ select public.invite_member(tests.account_id('t23-team'), 'three@limits.test') $$,
  'PT429', 'rate_limited', 'a 3rd invitation by the owner is rate_limited');
select tests.authenticate_as('t23_admin');
select lives_ok($$ select public.invite_member(tests.account_id('t23-team'), 'three@limits.test') $$,
  'another user (the admin) has their own invitation bucket');
select tests.clear_authentication();
select results_eq(
  $$ select email from public.account_invitations where account_id = tests.account_id('t23-team') order by email $$,
  $$ values ('one@limits.test'), ('three@limits.test'), ('two@limits.test') $$,
  'the denied invitation was not created');

-- ---------------------------------------------------------------------------
-- Holds and quotas: a hold counts its units when reserved, so holds cannot overrun the
-- quota together; units not used go back when it settles.
-- ---------------------------------------------------------------------------
select tests.freeze_time('2032-08-10 09:00:00+00');
update public.plans set limits = '{"quotas": {"api_call": 3}}' where key = 'free';
update private.rate_limit_policies set capacity = 1000, refill_per_second = 1000 where name in ('consume_credits', 'reserve_credits');
select tests.authenticate_as('t23_member');
select lives_ok($$ select public.reserve_credits(tests.account_id('t23-team'), 'api_call', 2, 'qh-1') $$,
  'a hold of 2 api_calls fits August''s quota of 3');
select throws_ok($$ select public.reserve_credits(tests.account_id('t23-team'), 'api_call', 2, 'qh-2') $$,
  'PT429', 'quota_exceeded', 'a second hold of 2 would overrun the quota: refused while the first is open');
select lives_ok($$ select public.release_credits((select id from public.credit_holds where idempotency_key = 'qh-1')) $$,
  'releasing the first hold');
select lives_ok($$ select public.reserve_credits(tests.account_id('t23-team'), 'api_call', 3, 'qh-3') $$,
  'gave its 2 units back: a hold of 3 now fits');
select lives_ok($$ select public.capture_credits((select id from public.credit_holds where idempotency_key = 'qh-3'), 1) $$,
  'capturing 1 of the 3 reserved units');
select lives_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 2) $$,
  'the 2 unused units went back to the quota');
select throws_ok($$ select public.consume_credits(tests.account_id('t23-team'), 'api_call', 1) $$,
  'PT429', 'quota_exceeded', 'and the quota is exactly used up: 1 captured + 2 consumed');
select tests.clear_authentication();
select is((select (quota_used ->> 'api_call')::bigint from public.credit_balances
           where account_id = tests.account_id('t23-team') and quota_period_start = '2032-08-01 00:00+00'), 3::bigint,
  'August''s api_call counter holds the 3 units really used');

select * from finish();
rollback;
