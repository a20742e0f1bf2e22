-- The waitlist (docs/rpc.md#join_waitlist, docs/credits.md#client-ip): a visitor (anon) joins with an e-mail; the answer never
-- tells whether the address was already there; addresses are validated and normalized;
-- one IP cannot flood it; no client reads it.
-- Personas: anon, a signed-in user, service_role.
begin;
select plan(25);

select tests.freeze_time('2031-07-01 10:00:00+00');
select tests.create_users('user');

-- ---------------------------------------------------------------------------
-- Joining
-- ---------------------------------------------------------------------------
select tests.authenticate_as_anon();
select is(public.join_waitlist('  Ada.Lovelace+news@Example.COM ', 'landing', ' abcd2345 '), '{"status": "ok"}'::jsonb,
  'a visitor joins and gets {"status": "ok"}');
select tests.clear_authentication();
select results_eq(
  $$ select email, source, referral_code, created_at from public.waitlist $$,
  $$ values ('ada.lovelace+news@example.com', 'landing', 'ABCD2345', '2031-07-01 10:00:00+00'::timestamptz) $$,
  'the address is stored trimmed and lower-cased, with the source and the referral code (upper-cased)');

select tests.authenticate_as_anon();
select is(public.join_waitlist(email => 'ADA.LOVELACE+NEWS@example.com', source => 'twitter'), '{"status": "ok"}'::jsonb,
  'joining again with the same address (another case) gets the very same answer');
select tests.clear_authentication();
select results_eq(
  $$ select count(*)::int, min(source) from public.waitlist $$,
  $$ values (1, 'landing') $$,
  'joining twice is idempotent: one row, the first sign-up kept');

select tests.authenticate_as('user');
select is(public.join_waitlist('user@test.ledgerbase.dev'), '{"status": "ok"}'::jsonb, 'a signed-in user may join too');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Validation
-- ---------------------------------------------------------------------------
select tests.authenticate_as_anon();
select throws_ok($$ select public.join_waitlist('not-an-email') $$, '22023', 'invalid_email', 'an address without @ is refused');
select throws_ok($$ select public.join_waitlist('a@b') $$, '22023', 'invalid_email', 'a domain without a dot is refused');
select throws_ok($$ select public.join_waitlist('two@@example.com') $$, '22023', 'invalid_email', 'two @ are refused');
select throws_ok($$ select public.join_waitlist('space in@example.com') $$, '22023', 'invalid_email', 'spaces inside are refused');
select throws_ok($$ select public.join_waitlist('dots..@example.com') $$, '22023', 'invalid_email', 'consecutive dots are refused');
select throws_ok($$ select public.join_waitlist(repeat('a', 65) || '@example.com') $$, '22023', 'invalid_email', 'a local part over 64 characters is refused');
select throws_ok($$ select public.join_waitlist('a@' || repeat('b', 250) || '.com') $$, '22023', 'invalid_email', 'an address over 254 characters is refused');
select throws_ok($$ select public.join_waitlist(null) $$, '22023', 'invalid_email', 'a null address is refused');
select throws_ok($$ select public.join_waitlist('ok@example.com', repeat('s', 101)) $$, '22023', 'invalid_input', 'a source over 100 characters is refused');
select throws_ok($$ select public.join_waitlist('ok@example.com', null, repeat('R', 65)) $$, '22023', 'invalid_input', 'a referral code over 64 characters is refused');
select tests.clear_authentication();
select is((select count(*)::int from public.waitlist), 2, 'refused calls stored nothing');

-- ---------------------------------------------------------------------------
-- Nobody reads or writes the table directly
-- ---------------------------------------------------------------------------
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from public.waitlist $$, '42501', null, 'anon cannot read the waitlist');
select throws_ok($$ insert into public.waitlist (email) values ('x@example.com') $$, '42501', null, 'anon cannot insert into it directly');
select tests.authenticate_as('user');
select throws_ok($$ select count(*) from public.waitlist $$, '42501', null, 'a signed-in user cannot read the waitlist');
select throws_ok($$ delete from public.waitlist $$, '42501', null, 'a signed-in user cannot delete from it');
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.waitlist), 2, 'the service role (the operator''s export) reads it');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Rate limit per IP (policy join_waitlist: a burst of 5)
-- ---------------------------------------------------------------------------
delete from private.rate_limit_buckets where key like 'join_waitlist:%';
select tests.authenticate_as_anon();
select public.join_waitlist('burst' || n || '@example.com') from generate_series(1, 5) n;
select throws_ok($$ select public.join_waitlist('burst6@example.com') $$, 'PT429', 'rate_limited',
  'the sixth sign-up from one IP in a burst is rate-limited');
select throws_ok($$ select public.join_waitlist('burst1@example.com') $$, 'PT429', 'rate_limited',
  'a known address is rate-limited the same way (no difference to observe)');
select set_config('request.headers', '{"x-forwarded-for": "198.51.100.99", "user-agent": "pgtap"}', true);
select is(public.join_waitlist('burst6@example.com'), '{"status": "ok"}'::jsonb, 'another IP is not affected');
select tests.clear_authentication();
select is((select count(*)::int from public.waitlist where email like 'burst%'), 6,
  'the limited call stored nothing: five from the first IP, one from the other');

select * from finish();
rollback;
