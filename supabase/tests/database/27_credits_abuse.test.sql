-- Credit attacks (docs/credits.md#signup-bonus, docs/credits.md#referrals, docs/errors.md): minting signup bonuses and referral rewards with
-- addresses nobody confirmed, and probing hold ids.
--
-- Personas: Rita refers; Zed, Yan and Xia sign up with Rita's code and never confirm (or
-- confirm later); Hugo holds credits; Eve is a stranger probing hold ids.
begin;
select plan(21);

select tests.create_supabase_user('t27_rita', 'rita@credits-abuse.test', '27000000-0000-4000-8000-000000000001');
select tests.create_supabase_user('t27_hugo', 'hugo@credits-abuse.test', '27000000-0000-4000-8000-000000000002');
select tests.create_supabase_user('t27_eve', 'eve@credits-abuse.test', '27000000-0000-4000-8000-000000000003');

-- A sign-up the way GoTrue writes one before the address is confirmed.
create function pg_temp.unconfirmed_signup(id uuid, email text, code text) returns void language sql as $$
  insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                          raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
  values ('00000000-0000-0000-0000-000000000000', id, 'authenticated', 'authenticated', email, '', null,
          '{"provider": "email", "providers": ["email"]}', jsonb_build_object('referral_code', code), now(), now(), false)
$$;
create function pg_temp.balance(acc uuid) returns bigint language sql as $$
  select balance from public.credit_balances where account_id = acc
$$;

-- ---------------------------------------------------------------------------
-- 1. Unconfirmed identities earn nothing, neither for themselves nor for their referrer.
-- ---------------------------------------------------------------------------
select pg_temp.unconfirmed_signup('27000000-0000-4000-8000-00000000000a', 'zed@throwaway.test',
  (select referral_code from public.profiles where id = '27000000-0000-4000-8000-000000000001'));
select pg_temp.unconfirmed_signup('27000000-0000-4000-8000-00000000000b', 'yan@throwaway.test',
  (select referral_code from public.profiles where id = '27000000-0000-4000-8000-000000000001'));
select pg_temp.unconfirmed_signup('27000000-0000-4000-8000-00000000000c', 'xia@throwaway.test',
  (select referral_code from public.profiles where id = '27000000-0000-4000-8000-000000000001'));
select is(pg_temp.balance('27000000-0000-4000-8000-000000000001'), 50::bigint,
  'three never-confirmed sign-ups with Rita''s code pay Rita nothing');
select is(pg_temp.balance('27000000-0000-4000-8000-00000000000a'), 0::bigint,
  'an unconfirmed user gets no signup bonus');
select is((select status from public.referrals where referee_id = '27000000-0000-4000-8000-00000000000a'), 'pending',
  'the referral is recorded, pending');

-- Zed confirms his address later: both payments arrive, once.
update auth.users set email_confirmed_at = now() where id = '27000000-0000-4000-8000-00000000000a';
select is(pg_temp.balance('27000000-0000-4000-8000-00000000000a'), 50::bigint,
  'confirming the email later pays the signup bonus');
select is(pg_temp.balance('27000000-0000-4000-8000-000000000001'), 80::bigint,
  'and the referrer''s reward');
select is((select status from public.referrals where referee_id = '27000000-0000-4000-8000-00000000000a'), 'rewarded',
  'the referral is rewarded');
update auth.users set email_confirmed_at = now() + interval '1 second', updated_at = now() where id = '27000000-0000-4000-8000-00000000000a';
update auth.users set email_confirmed_at = null where id = '27000000-0000-4000-8000-00000000000a';
update auth.users set email_confirmed_at = now() where id = '27000000-0000-4000-8000-00000000000a';
select is(pg_temp.balance('27000000-0000-4000-8000-00000000000a') || '/' || pg_temp.balance('27000000-0000-4000-8000-000000000001'),
  '50/80', 'confirming again pays nothing twice');

-- Yan confirms a phone number instead: that counts too.
update auth.users set phone = '15550001111', phone_confirmed_at = now() where id = '27000000-0000-4000-8000-00000000000b';
select is(pg_temp.balance('27000000-0000-4000-8000-00000000000b') || '/' || pg_temp.balance('27000000-0000-4000-8000-000000000001'),
  '50/110', 'a confirmed phone pays the bonus and the reward');

-- Xia never confirms; a later unrelated update of her row pays nothing.
update auth.users set raw_user_meta_data = raw_user_meta_data || '{"theme": "dark"}' where id = '27000000-0000-4000-8000-00000000000c';
select is(pg_temp.balance('27000000-0000-4000-8000-00000000000c') || '/' || pg_temp.balance('27000000-0000-4000-8000-000000000001'),
  '0/110', 'other updates of an unconfirmed user pay nothing');

-- Anonymous users stay excluded, even confirmed.
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
values ('00000000-0000-0000-0000-000000000000', '27000000-0000-4000-8000-00000000000d', 'authenticated', 'authenticated',
        null, '', null, '{}', '{}', now(), now(), true);
update auth.users set phone_confirmed_at = now() where id = '27000000-0000-4000-8000-00000000000d';
select is(pg_temp.balance('27000000-0000-4000-8000-00000000000d'), 0::bigint, 'an anonymous user never gets the signup bonus');

-- A project that does not require confirmation pays at signup.
update private.settings set value = 'false' where key = 'require_confirmed_identity';
select pg_temp.unconfirmed_signup('27000000-0000-4000-8000-00000000000e', 'walt@unconfirmed-ok.test',
  (select referral_code from public.profiles where id = '27000000-0000-4000-8000-000000000001'));
select is(pg_temp.balance('27000000-0000-4000-8000-00000000000e') || '/' || pg_temp.balance('27000000-0000-4000-8000-000000000001'),
  '50/140', 'with require_confirmed_identity = false, an unconfirmed sign-up is paid at once');
update private.settings set value = 'true' where key = 'require_confirmed_identity';

-- The setting is documented with its default.
select is((select value from private.settings where key = 'require_confirmed_identity'), 'true'::jsonb,
  'require_confirmed_identity exists');

-- Rewards on the first payment: a payment by an unconfirmed referee earns the reward, paid
-- when the confirmation comes.
update private.settings set value = '"first_payment"' where key = 'referral_reward_on';
select pg_temp.unconfirmed_signup('27000000-0000-4000-8000-00000000000f', 'fay@throwaway.test',
  (select referral_code from public.profiles where id = '27000000-0000-4000-8000-000000000001'));
insert into public.payments (account_id, kind, settlement, status, stripe_checkout_session_id)
values ('27000000-0000-4000-8000-00000000000f', 'credit_pack', 'paid', 'paid', 'cs_t27fay');
select private.on_payment_succeeded('27000000-0000-4000-8000-00000000000f');
select is((select status from public.referrals where referee_id = '27000000-0000-4000-8000-00000000000f'), 'pending',
  'a payment by an unconfirmed referee pays no reward yet');
update auth.users set email_confirmed_at = now() where id = '27000000-0000-4000-8000-00000000000f';
select is((select status from public.referrals where referee_id = '27000000-0000-4000-8000-00000000000f'), 'rewarded',
  'confirming afterwards pays the reward the payment earned');
update private.settings set value = '"signup"' where key = 'referral_reward_on';

-- ---------------------------------------------------------------------------
-- 2. Existence oracles: a foreign hold answers like an unknown one.
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t27_hugo');
create temp table hugo_hold as
  select (public.reserve_credits('27000000-0000-4000-8000-000000000002', 'text_to_thumbnail', 1, 't27') ->> 'hold_id')::uuid as id;
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
select is(pg_temp.balance('27000000-0000-4000-8000-000000000002'), 40::bigint, 'and is charged once');

select * from finish();
rollback;
