-- Credit attacks (docs/credits.md#signup-bonus, docs/credits.md#referrals, docs/errors.md): minting signup bonuses and referral rewards with
-- addresses nobody confirmed, and probing hold ids.
--
-- Personas (by name, no fixed ids): t27_rita refers; t27_zed, t27_yan and t27_xia sign up with
-- Rita's code and never confirm (or confirm later); t27_dan is an anonymous sign-up; t27_walt
-- signs up where confirmation is not required; t27_fay pays before confirming; t27_hugo holds
-- credits; t27_eve is a stranger probing hold ids.
begin;
select plan(21);

select tests.create_users('t27_rita', 't27_hugo', 't27_eve');

-- A sign-up the way GoTrue writes one before the address is confirmed.
-- (raw: the kit's users have a confirmed address; the name goes where the kit looks for it)
create function pg_temp.unconfirmed_signup(name text, email text, code text) returns void language sql as $$
  insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                          raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
  values (extensions.uuid_nil(), gen_random_uuid(), 'authenticated', 'authenticated', email, '', null,
          '{"provider": "email", "providers": ["email"]}',
          jsonb_build_object('referral_code', code, 'test_identifier', name), now(), now(), false)
$$;
create function pg_temp.balance(acc uuid) returns bigint language sql as $$
  select balance from public.credit_balances where account_id = acc
$$;

-- ---------------------------------------------------------------------------
-- 1. Unconfirmed identities earn nothing, neither for themselves nor for their referrer.
-- ---------------------------------------------------------------------------
select pg_temp.unconfirmed_signup('t27_zed', 'zed@throwaway.test',
  (select referral_code from public.profiles where id = tests.user_id('t27_rita')));
select pg_temp.unconfirmed_signup('t27_yan', 'yan@throwaway.test',
  (select referral_code from public.profiles where id = tests.user_id('t27_rita')));
select pg_temp.unconfirmed_signup('t27_xia', 'xia@throwaway.test',
  (select referral_code from public.profiles where id = tests.user_id('t27_rita')));
select is(pg_temp.balance(tests.user_id('t27_rita')), 50::bigint,
  'three never-confirmed sign-ups with Rita''s code pay Rita nothing');
select is(pg_temp.balance(tests.user_id('t27_zed')), 0::bigint,
  'an unconfirmed user gets no signup bonus');
select is((select status from public.referrals where referee_id = tests.user_id('t27_zed')), 'pending',
  'the referral is recorded, pending');

-- Zed confirms his address later: both payments arrive, once.
update auth.users set email_confirmed_at = now() where id = tests.user_id('t27_zed');
select is(pg_temp.balance(tests.user_id('t27_zed')), 50::bigint,
  'confirming the email later pays the signup bonus');
select is(pg_temp.balance(tests.user_id('t27_rita')), 80::bigint,
  'and the referrer''s reward');
select is((select status from public.referrals where referee_id = tests.user_id('t27_zed')), 'rewarded',
  'the referral is rewarded');
update auth.users set email_confirmed_at = now() + interval '1 second', updated_at = now() where id = tests.user_id('t27_zed');
update auth.users set email_confirmed_at = null where id = tests.user_id('t27_zed');
update auth.users set email_confirmed_at = now() where id = tests.user_id('t27_zed');
select is(pg_temp.balance(tests.user_id('t27_zed')) || '/' || pg_temp.balance(tests.user_id('t27_rita')),
  '50/80', 'confirming again pays nothing twice');

-- Yan confirms a phone number instead: that counts too.
update auth.users set phone = '15550001111', phone_confirmed_at = now() where id = tests.user_id('t27_yan');
select is(pg_temp.balance(tests.user_id('t27_yan')) || '/' || pg_temp.balance(tests.user_id('t27_rita')),
  '50/110', 'a confirmed phone pays the bonus and the reward');

-- Xia never confirms; a later unrelated update of her row pays nothing.
update auth.users set raw_user_meta_data = raw_user_meta_data || '{"theme": "dark"}' where id = tests.user_id('t27_xia');
select is(pg_temp.balance(tests.user_id('t27_xia')) || '/' || pg_temp.balance(tests.user_id('t27_rita')),
  '0/110', 'other updates of an unconfirmed user pay nothing');

-- Anonymous users stay excluded, even confirmed.
select tests.create_anonymous_user('t27_dan');
update auth.users set phone_confirmed_at = now() where id = tests.user_id('t27_dan');
select is(pg_temp.balance(tests.user_id('t27_dan')), 0::bigint, 'an anonymous user never gets the signup bonus');

-- A project that does not require confirmation pays at signup.
update private.settings set value = 'false' where key = 'require_confirmed_identity';
select pg_temp.unconfirmed_signup('t27_walt', 'walt@unconfirmed-ok.test',
  (select referral_code from public.profiles where id = tests.user_id('t27_rita')));
select is(pg_temp.balance(tests.user_id('t27_walt')) || '/' || pg_temp.balance(tests.user_id('t27_rita')),
  '50/140', 'with require_confirmed_identity = false, an unconfirmed sign-up is paid at once');
update private.settings set value = 'true' where key = 'require_confirmed_identity';

-- The setting is documented with its default.
select is((select value from private.settings where key = 'require_confirmed_identity'), 'true'::jsonb,
  'require_confirmed_identity exists');

-- Rewards on the first payment: a payment by an unconfirmed referee earns the reward, paid
-- when the confirmation comes.
update private.settings set value = '"first_payment"' where key = 'referral_reward_on';
select pg_temp.unconfirmed_signup('t27_fay', 'fay@throwaway.test',
  (select referral_code from public.profiles where id = tests.user_id('t27_rita')));
insert into public.payments (account_id, kind, settlement, status, stripe_checkout_session_id)
values (tests.user_id('t27_fay'), 'credit_pack', 'paid', 'paid', 'cs_t27fay');
select private.on_payment_succeeded(tests.user_id('t27_fay'));
select is((select status from public.referrals where referee_id = tests.user_id('t27_fay')), 'pending',
  'a payment by an unconfirmed referee pays no reward yet');
update auth.users set email_confirmed_at = now() where id = tests.user_id('t27_fay');
select is((select status from public.referrals where referee_id = tests.user_id('t27_fay')), 'rewarded',
  'confirming afterwards pays the reward the payment earned');
update private.settings set value = '"signup"' where key = 'referral_reward_on';

-- ---------------------------------------------------------------------------
-- 2. Existence oracles: a foreign hold answers like an unknown one.
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t27_hugo');
create temp table hugo_hold as
  select (public.reserve_credits(tests.user_id('t27_hugo'), 'text_to_thumbnail', 1, 't27') ->> 'hold_id')::uuid as id;
select tests.clear_authentication();

select tests.authenticate_as('t27_eve');
select is(tests.caught($$ select public.capture_credits((select id from hugo_hold)) $$) - 'detail',
  tests.caught($$ select public.capture_credits(gen_random_uuid()) $$) - 'detail',
  'capturing someone else''s hold answers as for an unknown id');
select is(tests.caught($$ select public.capture_credits((select id from hugo_hold)) $$) ->> 'message', 'not_found',
  'namely not_found');
select is(tests.caught($$ select public.release_credits((select id from hugo_hold)) $$) - 'detail',
  tests.caught($$ select public.release_credits(gen_random_uuid()) $$) - 'detail',
  'releasing someone else''s hold answers as for an unknown id');
select is(tests.caught($$ select public.release_credits((select id from hugo_hold)) $$) ->> 'message', 'not_found',
  'namely not_found');
select tests.clear_authentication();
select is((select status from public.credit_holds where id = (select id from hugo_hold)), 'held',
  'Hugo''s hold is untouched');

-- Hugo himself still captures it.
select tests.authenticate_as('t27_hugo');
select is((public.capture_credits((select id from hugo_hold))) ->> 'credits_charged', '10', 'the owner of the hold captures it');
select tests.clear_authentication();
select is(pg_temp.balance(tests.user_id('t27_hugo')), 40::bigint, 'and is charged once');

select * from finish();
rollback;
