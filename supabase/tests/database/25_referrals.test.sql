-- Referrals: Rita refers people; the rules that keep the program from being gamed.
begin;
select plan(32);

-- Personas --------------------------------------------------------------------
select tests.create_users('rita', 'sam', 'stranger');
create temp view codes as select id, referral_code from public.profiles;
grant select on codes to authenticated;

-- 1. A code given at signup (any case) refers the new user and pays the referrer 30.
select tests.create_supabase_user('tess',
  metadata => jsonb_build_object('referral_code', lower((select referral_code from codes where id = tests.user_id('rita')))));
select is((select status from public.referrals where referee_id = tests.user_id('tess')), 'rewarded',
  'a referral code in the signup metadata is applied at signup');
select is((select referred_by from public.profiles where id = tests.user_id('tess')),
  tests.user_id('rita'), 'the referee''s profile remembers who referred them');
select is((select balance from public.credit_balances where account_id = tests.account_id('rita')), 80::bigint,
  'the referrer earned 30 credits on top of the 50 signup credits');
select is((select source || ':' || remaining from public.credit_grants
           where account_id = tests.account_id('rita') and source = 'referral'), 'referral:30',
  'the reward is a promotional referral grant');
select is((select balance from public.credit_balances where account_id = tests.account_id('tess')), 50::bigint,
  'the referee earns nothing by default (referral_referee_reward = 0)');

-- 2. A bad code never blocks a signup.
select lives_ok($$ select tests.create_supabase_user('uma',
  metadata => '{"referral_code": "ZZZZZZZZ"}') $$, 'an unknown referral code does not block the signup');
select lives_ok($$ select tests.create_supabase_user('vic',
  metadata => '{"referral_code": {"nested": true}}') $$, 'a malformed referral code does not block the signup');
select is((select count(*) from public.referrals where referee_id in (tests.user_id('uma'), tests.user_id('vic'))),
  0::bigint, 'and neither creates a referral');

-- 3. Redeeming by RPC: once per user, never one's own, never a cycle.
select tests.authenticate_as('sam');
select is(public.redeem_referral_code((select referral_code from codes where id = tests.user_id('rita'))),
  '{"status": "rewarded", "referee_reward": 0, "referrer_reward": 30}'::jsonb, 'Sam redeems Rita''s code and Rita is rewarded');
select throws_ok($$ select public.redeem_referral_code((select referral_code from codes where id = tests.user_id('tess'))) $$,
  'PT409', 'already_referred', 'a user can be referred only once');
select tests.authenticate_as('uma');
select throws_ok($$ select public.redeem_referral_code((select referral_code from codes where id = tests.user_id('uma'))) $$,
  '22023', 'self_referral', 'nobody can use their own code');
select throws_ok($$ select public.redeem_referral_code('ABCDEFGH') $$, 'PT404', 'not_found', 'an unknown code is not found');
select throws_ok($$ select public.redeem_referral_code('not a code!') $$, 'PT404', 'not_found', 'a malformed code is not found');
select tests.authenticate_as('rita');
select throws_ok($$ select public.redeem_referral_code((select referral_code from codes where id = tests.user_id('sam'))) $$,
  '22023', 'referral_cycle', 'Rita cannot be referred by Sam, whom she referred');
select tests.clear_authentication();
select is((select balance from public.credit_balances where account_id = tests.account_id('rita')), 110::bigint,
  'refused redemptions paid nothing: Rita has 50 + 30 + 30');

-- 4. The window: 30 days after signup.
select tests.freeze_time(now() + interval '31 days');
select tests.authenticate_as('vic');
select throws_ok($$ select public.redeem_referral_code((select referral_code from codes where id = tests.user_id('rita'))) $$,
  '22023', 'referral_window_closed', 'a code cannot be redeemed more than 30 days after signup');
select tests.clear_authentication();
select tests.unfreeze_time();

-- 5. The monthly cap: further referrals are recorded, not rewarded.
update private.settings set value = '2' where key = 'referral_monthly_cap';
select tests.authenticate_as('vic');
select is(public.redeem_referral_code((select referral_code from codes where id = tests.user_id('rita'))) ->> 'status',
  'capped', 'Rita''s third referral this month is recorded as capped');
select tests.clear_authentication();
select is((select balance from public.credit_balances where account_id = tests.account_id('rita')), 110::bigint,
  'a capped referral pays nothing');

-- 6. Rewards on the referee's first payment instead of signup, paid once.
update private.settings set value = '"first_payment"' where key = 'referral_reward_on';
update private.settings set value = '10' where key = 'referral_referee_reward';
select tests.create_supabase_user('walt',
  metadata => jsonb_build_object('referral_code', (select referral_code from codes where id = tests.user_id('sam'))));
select is((select status from public.referrals where referee_id = tests.user_id('walt')), 'pending',
  'with first_payment, a signup referral waits');
select private.on_payment_succeeded(tests.user_id('walt'));
select private.on_payment_succeeded(tests.user_id('walt'));
select is((select status from public.referrals where referee_id = tests.user_id('walt')), 'rewarded',
  'the first payment pays the referral');
select is((select balance from public.credit_balances where account_id = tests.account_id('sam')), 80::bigint,
  'Sam (the referrer) earned 30 once, though the payment hook ran twice');
select is((select balance from public.credit_balances where account_id = tests.account_id('walt')), 60::bigint,
  'Walt (the referee) earned the referee reward of 10 once');

-- 7. Who can read referrals: both parties, staff admins; not strangers or anon.
select tests.authenticate_as('rita');
select is((select count(*) from public.referrals), 3::bigint, 'the referrer sees the referrals she made');
select tests.authenticate_as('tess');
select is((select count(*) from public.referrals), 1::bigint, 'the referee sees the referral she came from');
select tests.authenticate_as('stranger');
select is((select count(*) from public.referrals), 0::bigint, 'a stranger sees none');
select throws_ok($$ update public.referrals set referrer_reward = 1000 $$, '42501', null, 'nobody changes a referral directly');
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from public.referrals $$, '42501', null, 'anon cannot read referrals');
select tests.clear_authentication();

-- 8. Anonymous sign-ups (auth.users.is_anonymous) are never referees: they cost nothing to make.
select tests.create_anonymous_user('anonymous',
  jsonb_build_object('referral_code', (select referral_code from codes where id = tests.user_id('tess'))));
select is((select count(*) from public.referrals where referee_id = tests.user_id('anonymous')), 0::bigint,
  'a referral code in an anonymous sign-up''s metadata is not applied (and the signup went through)');
select is((select code from private.signup_referral_codes where user_id = tests.user_id('anonymous')),
  (select referral_code from codes where id = tests.user_id('tess')),
  'the code is still remembered with the signup');
select tests.authenticate_as('anonymous');
select throws_ok($$ select public.redeem_referral_code((select referral_code from codes where id = tests.user_id('tess'))) $$,
  '22023', 'anonymous_user', 'an anonymous user cannot redeem a referral code');
select tests.clear_authentication();
select results_eq(
  $$ select (select count(*) from public.referrals where referee_id = tests.user_id('anonymous')),
            (select referred_by from public.profiles where id = tests.user_id('anonymous')),
            (select balance from public.credit_balances where account_id = tests.account_id('tess')),
            (select balance from public.credit_balances where account_id = tests.account_id('anonymous')) $$,
  $$ values (0::bigint, null::uuid, 50::bigint, 0::bigint) $$,
  'nothing was written and nobody was paid: Tess keeps 50, the anonymous user has no signup bonus');
-- Once the user signs up with an email (GoTrue clears is_anonymous), the code can be redeemed.
update auth.users set is_anonymous = false, email = 'converted@test.ledgerbase.dev', email_confirmed_at = now()
where id = tests.user_id('anonymous');
select tests.authenticate_as('anonymous');
select is(public.redeem_referral_code((select referral_code from codes where id = tests.user_id('tess'))) ->> 'status',
  'pending', 'after converting to an email account, the user redeems the code (rewards wait for the first payment)');
select tests.clear_authentication();

select * from finish();
rollback;
