-- Identity attacks (docs/accounts.md#accounts, docs/credits.md#rate-limits, docs/errors.md): team floods, spoofing names, oversized
-- preferences, malformed invitation emails, and ids that tell strangers what exists.
--
-- Personas: Olga owns the team "Olga Co"; Felix floods; Eve is a stranger probing ids.
begin;
select plan(31);

update public.plans set max_members = null where key = 'free';
select tests.create_users('felix', 'eve');

-- ---------------------------------------------------------------------------
-- 1. Team floods: create_team_account is rate-limited and capped per user.
-- ---------------------------------------------------------------------------
select is((select capacity from private.rate_limit_policies where name = 'create_team_account'), 5,
  'a create_team_account rate-limit policy exists (5 at once, per user)');
select tests.authenticate_as('felix');
select lives_ok($$ select public.create_team_account('Flood ' || i, 't15-flood-' || i) from generate_series(1, 5) i $$,
  'Felix creates five teams in a burst');
select is((tests.caught($$ select public.create_team_account('Flood 6', 't15-flood-6') $$)) ->> 'message', 'rate_limited',
  'the sixth in the same burst is rate_limited (PT429)');
select tests.clear_authentication();
select is((select count(*) from public.accounts where created_by = tests.user_id('felix') and kind = 'team'),
  5::bigint, 'the refused call created nothing');

-- The cap: max_team_accounts_per_user teams owned at once.
delete from private.rate_limit_buckets where key like 'create_team_account:%';
update private.settings set value = '5' where key = 'max_team_accounts_per_user';
select tests.authenticate_as('felix');
select is(tests.caught($$ select public.create_team_account('Flood 7', 't15-flood-7') $$) - 'detail',
  jsonb_build_object('code', 'PT409', 'message', 'team_limit_reached',
    'hint', 'Delete a team you no longer need, or ask the operator to raise max_team_accounts_per_user.'),
  'a sixth team over a cap of 5 is refused: team_limit_reached');
select tests.clear_authentication();
select is((select value from private.settings where key = 'max_team_accounts_per_user'), '5'::jsonb,
  'the cap is a setting');

-- ---------------------------------------------------------------------------
-- 2. Names other users see: no control, bidi-override or zero-width characters.
-- ---------------------------------------------------------------------------
select tests.team('olga-co', owner => 'olga', name => 'Olga Co');
select tests.authenticate_as('olga');
select is(tests.caught($$ select public.create_team_account(E'Pay\u202Egnp.exe', 't15-rlo') $$) ->> 'message',
  'unsafe_characters', 'a team name with a right-to-left override is refused');
select is(tests.caught($$ select public.create_team_account(E'Ol\u200Bga Co', 't15-zwsp') $$) ->> 'code', '22023',
  'a team name with a zero-width space is refused with 22023');
select is(tests.caught($$ select public.update_account(tests.account_id('olga-co'), E'Olga\u0007Co') $$) ->> 'message',
  'unsafe_characters', 'renaming a team to a name with a control character is refused');
select is(tests.caught($$ select public.update_account(tests.account_id('olga-co'), E'Olga\u2066Co\u2069') $$) ->> 'message',
  'unsafe_characters', 'bidi isolates are refused too');
select is(tests.caught($$ select public.update_account(tests.account_id('olga-co'), repeat('x', 101)) $$) ->> 'message',
  'invalid_name', 'account names stay capped at 100 characters');
select lives_ok($$ select public.update_account(tests.account_id('olga-co'), 'Olga & Søn — Ærø') $$,
  'ordinary punctuation and letters of any script are fine');
select is(tests.caught($$ update public.profiles set full_name = E'Olga\u202Eadmin' where id = auth.uid() $$) ->> 'message',
  'unsafe_characters', 'a full name with a bidi override is refused');
select is(tests.caught($$ update public.profiles set full_name = E'Olga\uFEFF' where id = auth.uid() $$) ->> 'message',
  'unsafe_characters', 'a full name with a zero-width no-break space is refused');
select is(tests.caught($$ update public.profiles set full_name = repeat('x', 201) where id = auth.uid() $$) ->> 'code',
  '22023', 'full names stay capped at 200 characters');
select tests.clear_authentication();
select is((select name from public.accounts where id = tests.account_id('olga-co')), 'Olga & Søn — Ærø',
  'the refused renames changed nothing');

-- A signup whose metadata carries such characters still succeeds, without them.
select lives_ok($$ select tests.create_supabase_user('spoof',
  metadata => jsonb_build_object('full_name', E'Sp\u202Eoof\u200D')) $$, 'unsafe characters in signup metadata never block a signup');
select is((select full_name from public.profiles where id = tests.user_id('spoof')), 'Spoof',
  'they are dropped from the full name');
select is((select name from public.accounts where id = tests.account_id('spoof')), 'Spoof',
  'and from the personal account''s name');

-- ---------------------------------------------------------------------------
-- 3. preferences is size-capped.
-- ---------------------------------------------------------------------------
select tests.authenticate_as('olga');
select is(tests.caught($$ update public.profiles set preferences = jsonb_build_object('junk', repeat('x', 20000)) where id = auth.uid() $$) - 'detail',
  jsonb_build_object('code', '22023', 'message', 'preferences_too_large',
    'hint', 'Keep UI preferences under 16384 bytes (setting profile_preferences_max_bytes).'),
  'preferences over 16 kB are refused: preferences_too_large');
select lives_ok($$ update public.profiles set preferences = '{"theme": "dark"}' where id = auth.uid() $$,
  'small preferences are fine');

-- ---------------------------------------------------------------------------
-- 4. Invitation emails are validated like the waitlist's.
-- ---------------------------------------------------------------------------
select is(tests.caught($$ select public.invite_member(tests.account_id('olga-co'), E'a\\0@x.com') $$) ->> 'message',
  'invalid_email', 'an address with a backslash escape is refused');
select is(tests.caught($$ select public.invite_member(tests.account_id('olga-co'), 'bob@-bad-.com') $$) ->> 'message',
  'invalid_email', 'an address with a malformed domain is refused');
select is(tests.caught($$ select public.invite_member(tests.account_id('olga-co'), E'bob\u202E@x.com') $$) ->> 'code',
  '22023', 'an address with a bidi override is refused with 22023');
select lives_ok($$ select public.invite_member(tests.account_id('olga-co'), ' Bob@Example.COM ') $$,
  'a normal address (trimmed, any case) is accepted');
select is((select email from public.account_invitations where account_id = tests.account_id('olga-co')), 'bob@example.com',
  'and stored normalized, as the waitlist stores it');
create temp table olga_invitation as select id from public.account_invitations where account_id = tests.account_id('olga-co') and email = 'bob@example.com';
create temp table olga_key as select (public.create_api_key(tests.account_id('olga-co'), 'Production') ->> 'id')::uuid as id;
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- 5. Existence oracles: a foreign id answers exactly like an unknown one.
-- ---------------------------------------------------------------------------
select tests.authenticate_as('eve');
select is(tests.caught($$ select public.revoke_invitation((select id from olga_invitation)) $$) - 'detail',
  tests.caught($$ select public.revoke_invitation(gen_random_uuid()) $$) - 'detail',
  'revoking someone else''s invitation answers as for an unknown id');
select is(tests.caught($$ select public.revoke_invitation((select id from olga_invitation)) $$) ->> 'message', 'not_found',
  'namely not_found');
select is(tests.caught($$ select public.revoke_api_key((select id from olga_key)) $$) - 'detail',
  tests.caught($$ select public.revoke_api_key(gen_random_uuid()) $$) - 'detail',
  'revoking someone else''s API key answers as for an unknown id');
select is(tests.caught($$ select public.revoke_api_key((select id from olga_key)) $$) ->> 'message', 'not_found',
  'namely not_found');
select tests.clear_authentication();
select is((select count(*) from public.api_keys where id = (select id from olga_key) and revoked_at is null), 1::bigint,
  'and Olga''s key still works');

select * from finish();
rollback;
