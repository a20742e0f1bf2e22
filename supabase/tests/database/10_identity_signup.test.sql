-- Signup, email sync and deletion of auth users (docs/accounts.md#signup).
-- Stories: a new user gets every row exactly once; nothing in raw_user_meta_data can
-- break a signup; emails follow auth.users; deleting a user removes their personal
-- account and memberships unless they are the only owner of a team.
-- Personas: Alice signs up with everything; Bob and a dozen others with odd metadata; users
-- made the way GoTrue or a script might (found by email or phone); Dave, Erin, Frank and
-- Gina for deletion (Erin owns Erin Co alone, Frank and Gina co-own Shared Co).
begin;
select plan(46);

-- The seams for the credits and referral migrations are replaced, inside this
-- transaction only, by recorders so we can see each call.
create table tests.seam_calls (seam text, account_id uuid, user_id uuid, referral_code text);
create or replace function private.on_account_created(account_id uuid, user_id uuid)
returns void language sql set search_path = '' as $$
  insert into tests.seam_calls values ('on_account_created', on_account_created.account_id, on_account_created.user_id, null)
$$;
create or replace function private.on_signup(user_id uuid, referral_code text)
returns void language sql set search_path = '' as $$
  insert into tests.seam_calls values ('on_signup', null, on_signup.user_id, on_signup.referral_code)
$$;

-- ---------------------------------------------------------------------------
-- A complete signup: every row, exactly once
-- ---------------------------------------------------------------------------
select tests.create_supabase_user('alice', 'alice@signup.test',
  metadata => '{"username": "Alice_1", "full_name": "  Alice Liddell ", "referral_code": " FRIEND42 "}');

select results_eq(
  $$ select email, username, full_name, referred_by, preferences from public.profiles where id = tests.user_id('alice') $$,
  $$ values ('alice@signup.test', 'alice_1', 'Alice Liddell', null::uuid, '{}'::jsonb) $$,
  'the profile holds the email, the lower-cased username and the trimmed full name; no referrer yet');
select matches(
  (select referral_code from public.profiles where id = tests.user_id('alice')),
  '^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$',
  'the referral code has 8 characters of the unambiguous alphabet');
select results_eq(
  $$ select id, kind, name, slug, primary_owner, created_by from public.accounts
     where primary_owner = tests.user_id('alice') $$,
  $$ values (tests.user_id('alice'), 'personal', 'Alice Liddell', null::text,
             tests.user_id('alice'), tests.user_id('alice')) $$,
  'exactly one account: personal, id = user id, named after the user, no slug');
select results_eq(
  $$ select account_id, role from public.account_members where user_id = tests.user_id('alice') $$,
  $$ values (tests.user_id('alice'), 'owner') $$,
  'exactly one membership: owner of the personal account');
select results_eq(
  $$ select role from public.user_roles where user_id = tests.user_id('alice') $$,
  $$ values ('member') $$,
  'exactly one staff role: member');
select results_eq(
  $$ select code from private.signup_referral_codes where user_id = tests.user_id('alice') $$,
  $$ values ('FRIEND42') $$,
  'the referral code from the metadata is remembered (trimmed) for the referral program');
select results_eq(
  $$ select seam, account_id, user_id, referral_code from tests.seam_calls
     where user_id = tests.user_id('alice') order by seam $$,
  $$ values ('on_account_created', tests.user_id('alice'), tests.user_id('alice'), null::text),
            ('on_signup', null::uuid, tests.user_id('alice'), 'FRIEND42') $$,
  'the wallet seam runs once for the personal account and the referral seam once with the code');

-- ---------------------------------------------------------------------------
-- Referral codes: a duplicate or unknown code never blocks a signup
-- ---------------------------------------------------------------------------
select lives_ok(
  $$ select tests.create_supabase_user('bob', 'bob@signup.test', metadata => '{"referral_code": "FRIEND42"}') $$,
  'a second user with the same referral code signs up');
select is(
  (select count(*)::int from private.signup_referral_codes where code = 'FRIEND42'), 2,
  'the shared code is remembered for both users');
select lives_ok(
  $$ select tests.create_supabase_user('unknown_code', 'unknown@signup.test', metadata => '{"referral_code": "no such code!"}') $$,
  'an unknown, malformed referral code does not block the signup');
select is(
  (select count(*)::int from public.accounts where id = tests.user_id('unknown_code')), 1,
  'the user with an unknown code has their personal account');
select lives_ok(
  $$ select tests.create_supabase_user('long_code', 'long@signup.test',
       metadata => jsonb_build_object('referral_code', repeat('X', 500))) $$,
  'a 500-character referral code does not block the signup');
select is(
  (select char_length(code) from private.signup_referral_codes where user_id = tests.user_id('long_code')), 64,
  'an oversized code is cut to 64 characters');

-- ---------------------------------------------------------------------------
-- Malformed metadata is treated as absent
-- ---------------------------------------------------------------------------
select lives_ok(
  $$ select tests.create_supabase_user('numeric_code', 'numeric@signup.test', metadata => '{"referral_code": 12345}') $$,
  'referral_code as a number does not break the signup');
select lives_ok(
  $$ select tests.create_supabase_user('object_code', 'object@signup.test',
       metadata => '{"referral_code": {"code": "FRIEND42"}, "username": 42, "full_name": ["x"], "name": "Obi Ject"}') $$,
  'referral_code as an object, username as a number and full_name as an array do not break the signup');
select lives_ok(
  $$ select tests.create_supabase_user('empty_code', 'empty@signup.test', metadata => '{"referral_code": "   "}') $$,
  'a blank referral code does not break the signup');
select is(
  (select count(*)::int from private.signup_referral_codes
   where user_id in (tests.user_id('numeric_code'), tests.user_id('object_code'), tests.user_id('empty_code'))),
  0,
  'a referral code that is not a non-blank string is not remembered');
select results_eq(
  $$ select referral_code from tests.seam_calls
     where seam = 'on_signup' and user_id in (tests.user_id('numeric_code'), tests.user_id('object_code'), tests.user_id('empty_code')) $$,
  $$ values (null::text), (null::text), (null::text) $$,
  'the referral seam still runs once per user, with no code');
select results_eq(
  $$ select p.username, p.full_name, a.name from public.profiles p join public.accounts a on a.id = p.id
     where p.id = tests.user_id('object_code') $$,
  $$ values (null::text, 'Obi Ject', 'Obi Ject') $$,
  'a non-string username is ignored and "name" stands in for a non-string full_name');

-- raw_user_meta_data null, a JSON string or an array: inserted the way GoTrue or a script might
select lives_ok(
  $$ insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
     values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
             'null.meta@signup.test', '{}', null, now(), now()) $$,
  'raw_user_meta_data = null does not break the signup');
select lives_ok(
  $$ insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
     values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
             'string.meta@signup.test', '{}', '"referral_code"', now(), now()),
            ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
             'array.meta@signup.test', '{}', '[{"referral_code": "FRIEND42"}]', now(), now()) $$,
  'raw_user_meta_data as a JSON string or array does not break the signup');
select lives_ok(
  $$ insert into auth.users (instance_id, id, aud, role, phone, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
     values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
             '+15555550100', '{}', '{}', now(), now()) $$,
  'a phone signup without an email works');
select results_eq(
  $$ select u.email::text, a.name, p.email, p.username from auth.users u
     join public.accounts a on a.id = u.id join public.profiles p on p.id = a.id
     where u.email in ('null.meta@signup.test', 'string.meta@signup.test', 'array.meta@signup.test') or u.phone = '+15555550100'
     order by u.email nulls last $$,
  $$ values ('array.meta@signup.test', 'array.meta', 'array.meta@signup.test', null::text),
            ('null.meta@signup.test', 'null.meta', 'null.meta@signup.test', null::text),
            ('string.meta@signup.test', 'string.meta', 'string.meta@signup.test', null::text),
            (null::text, 'Personal', null::text, null::text) $$,
  'each of them got a profile and a personal account named after the email (or "Personal")');
select is(
  (select count(*)::int from private.signup_referral_codes
   where user_id in (select id from auth.users
                     where email in ('null.meta@signup.test', 'string.meta@signup.test', 'array.meta@signup.test'))),
  0,
  'no referral code is read out of non-object metadata');

-- ---------------------------------------------------------------------------
-- Usernames from metadata: taken only when valid and free, never blocking
-- ---------------------------------------------------------------------------
select lives_ok(
  $$ select tests.create_supabase_user('u_taken', 'taken@signup.test', metadata => '{"username": "ALICE_1"}');
     select tests.create_supabase_user('u_reserved', 'reserved@signup.test', metadata => '{"username": "admin"}');
     select tests.create_supabase_user('u_short', 'short@signup.test', metadata => '{"username": "ab"}');
     select tests.create_supabase_user('u_chars', 'chars@signup.test', metadata => '{"username": "bad name!"}');
     select tests.create_supabase_user('u_long', 'long.name@signup.test', metadata => jsonb_build_object('username', repeat('a', 31))) $$,
  'taken (in another case), reserved, short, ill-formed and long usernames do not block signups');
select is(
  (select count(*)::int from public.profiles
   where id in (tests.user_id('u_taken'), tests.user_id('u_reserved'), tests.user_id('u_short'),
                tests.user_id('u_chars'), tests.user_id('u_long'))
     and username is null),
  5,
  'those users get no username (they can choose one later)');

-- ---------------------------------------------------------------------------
-- The referral seam cannot block a signup; the wallet seam is part of it
-- ---------------------------------------------------------------------------
create or replace function private.on_signup(user_id uuid, referral_code text)
returns void language plpgsql set search_path = '' as $$
begin
  raise exception 'referral program exploded';
end
$$;
select lives_ok(
  $$ select tests.create_supabase_user('seam_fails', 'seam@signup.test', metadata => '{"referral_code": "FRIEND42"}') $$,
  'an error in the referral seam does not block the signup');
select results_eq(
  $$ select (select count(*)::int from public.profiles where id = tests.user_id('seam_fails')),
            (select count(*)::int from public.accounts where id = tests.user_id('seam_fails')),
            (select count(*)::int from private.signup_referral_codes where user_id = tests.user_id('seam_fails')) $$,
  $$ values (1, 1, 1) $$,
  'that user still has profile, personal account and remembered code');

create or replace function private.on_account_created(account_id uuid, user_id uuid)
returns void language plpgsql set search_path = '' as $$
begin
  raise exception using errcode = 'XX001', message = 'wallet could not be created';
end
$$;
select throws_ok(
  $$ select tests.create_supabase_user('wallet_fails', 'wallet@signup.test') $$,
  'XX001', 'wallet could not be created',
  'a failure to create the wallet aborts the signup: the rows are created in one transaction');
select is(
  (select count(*)::int from public.profiles where email = 'wallet@signup.test')
  + (select count(*)::int from auth.users where email = 'wallet@signup.test'),
  0,
  'and leaves neither a user nor a profile behind');
create or replace function private.on_account_created(account_id uuid, user_id uuid)
returns void language sql set search_path = '' as $$ select $$;
create or replace function private.on_signup(user_id uuid, referral_code text)
returns void language sql set search_path = '' as $$ select $$;

-- ---------------------------------------------------------------------------
-- Referral codes are unique
-- ---------------------------------------------------------------------------
select tests.create_supabase_user('bulk_' || i, 'bulk' || i || '@signup.test') from generate_series(1, 200) i;
select is(
  (select count(distinct referral_code)::int from public.profiles),
  (select count(*)::int from public.profiles),
  'every profile has a distinct referral code (200+ users)');
select is(
  (select count(*)::int from public.profiles where referral_code !~ '^[2-9A-HJKMNP-Z]{8}$'),
  0,
  'every referral code uses only the unambiguous alphabet');

-- ---------------------------------------------------------------------------
-- Email changes flow to profiles
-- ---------------------------------------------------------------------------
update auth.users set email = 'alice.new@signup.test' where id = tests.user_id('alice');
select is(
  (select email from public.profiles where id = tests.user_id('alice')),
  'alice.new@signup.test',
  'a changed auth email is copied to the profile');
update auth.users set last_sign_in_at = now() where id = tests.user_id('alice');
select is(
  (select email from public.profiles where id = tests.user_id('alice')),
  'alice.new@signup.test',
  'other auth.users updates leave the profile email alone');

-- ---------------------------------------------------------------------------
-- Deleting a user
-- ---------------------------------------------------------------------------
-- erin owns team "erin-co" alone; dave is a member of it; frank and gina co-own
-- "shared-co", frank being its primary owner.
select tests.create_supabase_user('dave', 'dave@signup.test', metadata => '{"referral_code": "FRIEND42"}');
select tests.team('erin-co', owner => 'erin', members => '{dave}');
select tests.team('shared-co', owner => 'frank', owners => '{gina}', viewers => '{dave}');
-- Their ids, kept for after the deletions.
create temp table gone on commit drop as
select name, tests.user_id(name) as id from unnest(array['dave', 'erin', 'frank']) name;
create function pg_temp.gone(person text) returns uuid language sql stable as $$ select g.id from gone g where g.name = person $$;

-- A plain member is deleted: personal account, memberships and every per-user row go.
select lives_ok(
  $$ delete from auth.users where id = pg_temp.gone('dave') $$,
  'a user who owns no team can be deleted');
select results_eq(
  $$ select (select count(*)::int from public.accounts where id = pg_temp.gone('dave')),
            (select count(*)::int from public.account_members where user_id = pg_temp.gone('dave')),
            (select count(*)::int from public.profiles where id = pg_temp.gone('dave')),
            (select count(*)::int from public.user_roles where user_id = pg_temp.gone('dave')),
            (select count(*)::int from private.signup_referral_codes where user_id = pg_temp.gone('dave')) $$,
  $$ values (0, 0, 0, 0, 0) $$,
  'their personal account, both team memberships, profile, staff role and remembered code are gone');
select results_eq(
  $$ select (select count(*)::int from public.accounts where id = tests.account_id('erin-co')),
            (select count(*)::int from public.account_members where account_id = tests.account_id('erin-co')) $$,
  $$ values (1, 1) $$,
  'the team they belonged to stays, with its owner');

-- The only owner of a team cannot be deleted.
select throws_ok(
  $$ delete from auth.users where id = pg_temp.gone('erin') $$,
  '23503', 'owns_team_accounts',
  'deleting the only owner of a team fails with owns_team_accounts');
select results_eq(
  $$ select (select count(*)::int from auth.users where id = pg_temp.gone('erin')),
            (select count(*)::int from public.accounts where id in (pg_temp.gone('erin'), tests.account_id('erin-co'))),
            (select count(*)::int from public.account_members where user_id = pg_temp.gone('erin')) $$,
  $$ values (1, 2, 2) $$,
  'and changes nothing: user, personal account, team and memberships remain');
select throws_like(
  $$ delete from auth.users where id = pg_temp.gone('erin') $$,
  '%owns_team_accounts%',
  'the error names the problem') ;

-- A co-owner who is the primary owner can be deleted: primary ownership passes on.
select lives_ok(
  $$ delete from auth.users where id = pg_temp.gone('frank') $$,
  'a primary owner whose team has another owner can be deleted');
select results_eq(
  $$ select a.primary_owner, (select count(*)::int from public.account_members m where m.account_id = a.id)
     from public.accounts a where a.id = tests.account_id('shared-co') $$,
  $$ values (tests.user_id('gina'), 1) $$,
  'the other owner becomes primary owner and the deleted user''s membership is gone');

-- After deleting the team, its former sole owner can go.
delete from public.accounts where id = tests.account_id('erin-co');
select lives_ok(
  $$ delete from auth.users where id = pg_temp.gone('erin') $$,
  'once the team is gone its former owner can be deleted');
select is(
  (select count(*)::int from public.accounts where id = pg_temp.gone('erin')),
  0,
  'with their personal account');

-- ---------------------------------------------------------------------------
-- A referral-code collision is retried (the generator is forced to collide once)
-- ---------------------------------------------------------------------------
-- (a sequence, not a table: the retry rolls back a subtransaction, a sequence survives it)
create sequence tests.code_attempts;
create table tests.code_queue (n int primary key, code text);
insert into tests.code_queue
select 1, referral_code from public.profiles where id = tests.user_id('alice')
union all select 2, 'ZZZZ2345';
create or replace function private.generate_referral_code()
returns text language sql set search_path = '' as $$
  select q.code from tests.code_queue q where q.n = (select nextval('tests.code_attempts'))
$$;
select lives_ok(
  $$ select tests.create_supabase_user('collider', 'collider@signup.test') $$,
  'a signup whose first referral code collides succeeds');
select is(
  (select referral_code from public.profiles where id = tests.user_id('collider')),
  'ZZZZ2345',
  'with the next generated code');

select * from finish();
rollback;
