-- RLS matrix for the identity tables: every table × persona × select/insert/update/delete,
-- then the protected columns attacked directly through the tables.
--
-- World: team account "acme" with owner, admin, member and viewer; a stranger who belongs
-- to nothing of theirs; a staff admin; a pending invitation; plus anon and service_role.
-- Each probe runs one statement as the persona inside a subtransaction that is always
-- rolled back, so probes cannot influence each other. A probe answers
--   allow  the statement saw (select) or changed (insert/update/delete) at least one row
--   deny   permission denied (42501: no grant or RLS check failed) or zero rows
--   error  anything else (reported with SQLSTATE and message, and fails the test).
begin;
select plan(256 + 24);

-- ---------------------------------------------------------------------------
-- The world
-- ---------------------------------------------------------------------------
-- The owner has a username (the case-insensitive uniqueness story below needs one taken).
select tests.create_supabase_user('owner', 'owner@matrix.test', metadata => '{"username": "acme_owner"}');
select tests.team('acme', owner => 'owner', admins => '{admin}', members => '{member}', viewers => '{viewer}');
select tests.create_users('stranger', 'staff_admin');
select tests.make_staff_admin('staff_admin');
insert into public.account_invitations (account_id, email, role, invited_by, expires_at) values
  (tests.account_id('acme'), 'invitee@matrix.test', 'member', tests.user_id('owner'), now() + interval '7 days');

-- ---------------------------------------------------------------------------
-- The probe
-- ---------------------------------------------------------------------------

-- 8 tables × 4 operations × 8 personas = 256 assertions.
select * from tests.rls_matrix('{anon,stranger,viewer,member,admin,owner,staff_admin,service_role}', $matrix$ values
  ('profiles', 'select', $$ select count(*) from public.profiles where id = tests.user_id('owner') $$,
     '{viewer,member,admin,owner,staff_admin,service_role}'),
  ('profiles', 'insert', $$ insert into public.profiles (id, email, referral_code) values (gen_random_uuid(), 'x@matrix.test', 'ZZZZZZZZ') $$,
     '{}'),
  ('profiles', 'update', $$ update public.profiles set full_name = 'Probe' where id = tests.user_id('owner') $$,
     '{owner}'),
  ('profiles', 'delete', $$ delete from public.profiles where id = tests.user_id('owner') $$,
     '{}'),

  ('accounts', 'select', $$ select count(*) from public.accounts where id = tests.account_id('acme') $$,
     '{viewer,member,admin,owner,staff_admin,service_role}'),
  ('accounts', 'insert', $$ insert into public.accounts (kind, name, slug, primary_owner) values ('team', 'Probe', 'probe-team', tests.user_id('stranger')) $$,
     '{}'),
  ('accounts', 'update', $$ update public.accounts set name = 'Probe' where id = tests.account_id('acme') $$,
     '{}'),
  ('accounts', 'delete', $$ delete from public.accounts where id = tests.account_id('acme') $$,
     '{}'),

  ('account_members', 'select', $$ select count(*) from public.account_members where account_id = tests.account_id('acme') and user_id = tests.user_id('owner') $$,
     '{viewer,member,admin,owner,staff_admin,service_role}'),
  ('account_members', 'insert', $$ insert into public.account_members (account_id, user_id, role) values (tests.account_id('acme'), tests.user_id('stranger'), 'member') $$,
     '{}'),
  ('account_members', 'update', $$ update public.account_members set role = 'owner' where account_id = tests.account_id('acme') and user_id = tests.user_id('member') $$,
     '{}'),
  ('account_members', 'delete', $$ delete from public.account_members where account_id = tests.account_id('acme') and user_id = tests.user_id('member') $$,
     '{}'),

  ('account_invitations', 'select', $$ select count(*) from public.account_invitations where email = 'invitee@matrix.test' $$,
     '{admin,owner,staff_admin,service_role}'),
  ('account_invitations', 'insert', $$ insert into public.account_invitations (account_id, email, role, expires_at) values (tests.account_id('acme'), 'probe@matrix.test', 'member', now() + interval '1 day') $$,
     '{}'),
  ('account_invitations', 'update', $$ update public.account_invitations set role = 'owner' where email = 'invitee@matrix.test' $$,
     '{}'),
  ('account_invitations', 'delete', $$ delete from public.account_invitations where email = 'invitee@matrix.test' $$,
     '{}'),

  ('roles', 'select', $$ select count(*) from public.roles where key = 'owner' $$,
     '{stranger,viewer,member,admin,owner,staff_admin,service_role}'),
  ('roles', 'insert', $$ insert into public.roles (key, name, rank) values ('probe', 'Probe', 99) $$,
     '{}'),
  ('roles', 'update', $$ update public.roles set rank = 1000 where key = 'viewer' $$,
     '{}'),
  ('roles', 'delete', $$ delete from public.roles where key = 'viewer' $$,
     '{}'),

  ('permissions', 'select', $$ select count(*) from public.permissions where key = 'account.delete' $$,
     '{stranger,viewer,member,admin,owner,staff_admin,service_role}'),
  ('permissions', 'insert', $$ insert into public.permissions (key, description) values ('probe.run', 'Probe') $$,
     '{}'),
  ('permissions', 'update', $$ update public.permissions set description = 'Probe' where key = 'account.delete' $$,
     '{}'),
  ('permissions', 'delete', $$ delete from public.permissions where key = 'audit.read' $$,
     '{}'),

  ('role_permissions', 'select', $$ select count(*) from public.role_permissions where role = 'owner' and permission = 'account.delete' $$,
     '{stranger,viewer,member,admin,owner,staff_admin,service_role}'),
  ('role_permissions', 'insert', $$ insert into public.role_permissions (role, permission) values ('viewer', 'account.delete') $$,
     '{}'),
  ('role_permissions', 'update', $$ update public.role_permissions set role = 'viewer' where role = 'owner' and permission = 'account.delete' $$,
     '{}'),
  ('role_permissions', 'delete', $$ delete from public.role_permissions where role = 'viewer' and permission = 'credits.read' $$,
     '{}'),

  ('user_roles', 'select', $$ select count(*) from public.user_roles where user_id = tests.user_id('member') $$,
     '{member,staff_admin,service_role}'),
  ('user_roles', 'insert', $$ insert into public.user_roles (user_id, role) values (gen_random_uuid(), 'admin') $$,
     '{}'),
  ('user_roles', 'update', $$ update public.user_roles set role = 'admin' where user_id = tests.user_id('member') $$,
     '{service_role}'),
  ('user_roles', 'delete', $$ delete from public.user_roles where user_id = tests.user_id('member') $$,
     '{}') $matrix$);

-- ---------------------------------------------------------------------------
-- Strangers see nothing of others; anon sees nothing at all
-- ---------------------------------------------------------------------------
select tests.authenticate_as('stranger');
select results_eq(
  $$ select (select count(*)::int from public.accounts), (select count(*)::int from public.account_members),
            (select count(*)::int from public.profiles), (select count(*)::int from public.account_invitations),
            (select count(*)::int from public.user_roles) $$,
  $$ values (1, 1, 1, 0, 1) $$,
  'a stranger sees only their own personal account, membership, profile and staff role');
select tests.authenticate_as('viewer');
select results_eq(
  $$ select (select count(*)::int from public.accounts), (select count(*)::int from public.account_members),
            (select count(*)::int from public.profiles) $$,
  $$ values (2, 5, 4) $$,
  'a viewer sees their two accounts, the team''s four members plus their own personal membership, and the four team profiles');
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from public.accounts $$, '42501', null, 'anon cannot even query accounts');
select throws_ok($$ select public.has_permission(tests.account_id('acme'), 'members.read') $$, '42501', null,
  'anon cannot call has_permission');
select throws_ok($$ select public.create_team_account('Anon Co', 'anon-co') $$, '42501', null,
  'anon cannot call the account RPCs');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Protected columns, attacked directly through the tables
-- ---------------------------------------------------------------------------
select tests.authenticate_as('member');
select throws_ok($$ update public.profiles set referral_code = 'AAAAAAAA' where id = tests.user_id('member') $$,
  '42501', 'permission denied for table profiles', 'a user cannot change their own referral_code');
select throws_ok($$ update public.profiles set referred_by = tests.user_id('owner') where id = tests.user_id('member') $$,
  '42501', 'permission denied for table profiles', 'a user cannot set who referred them');
select throws_ok($$ update public.profiles set email = 'spoof@matrix.test' where id = tests.user_id('member') $$,
  '42501', 'permission denied for table profiles', 'a user cannot change the synced email');
select throws_ok($$ update public.profiles set id = tests.user_id('stranger') where id = tests.user_id('member') $$,
  '42501', 'permission denied for table profiles', 'a user cannot move their profile to another id');
select throws_ok($$ update public.account_members set role = 'owner' where user_id = tests.user_id('member') $$,
  '42501', 'permission denied for table account_members', 'a member cannot promote themselves through the table');
select throws_ok($$ update public.user_roles set role = 'admin' where user_id = tests.user_id('member') $$,
  '42501', 'permission denied for table user_roles', 'a user cannot make themselves staff admin');
select tests.authenticate_as('owner');
select throws_ok($$ update public.accounts set kind = 'personal' where id = tests.account_id('acme') $$,
  '42501', 'permission denied for table accounts', 'even the owner cannot change the account kind through the table');
select throws_ok($$ update public.accounts set primary_owner = tests.user_id('stranger') where id = tests.account_id('acme') $$,
  '42501', 'permission denied for table accounts', 'even the owner cannot hand the account over through the table');
select throws_ok($$ update public.account_invitations set role = 'owner' where email = 'invitee@matrix.test' $$,
  '42501', 'permission denied for table account_invitations', 'the owner cannot rewrite an invitation through the table');
select tests.clear_authentication();
select results_eq(
  $$ select (select referral_code ~ '^[2-9A-HJKMNP-Z]{8}$' and referred_by is null and email = 'member@test.ledgerbase.dev'
             from public.profiles where id = tests.user_id('member')),
            (select role from public.account_members where account_id = tests.account_id('acme') and user_id = tests.user_id('member')),
            (select role from public.user_roles where user_id = tests.user_id('member')),
            (select kind || ':' || primary_owner from public.accounts where id = tests.account_id('acme')) $$,
  $$ values (true, 'member', 'member', 'team:' || tests.user_id('owner')) $$,
  'after those attempts the protected columns are unchanged');

-- What a user may edit on their own profile, and the rules on it.
select tests.authenticate_as('member');
select lives_ok(
  $$ update public.profiles set username = 'Member_One', full_name = ' Mem Ber ', avatar_path = tests.user_id('member') || '/me.png',
            preferences = '{"theme": "dark"}' where id = tests.user_id('member') $$,
  'a user edits username, full_name, avatar_path and preferences of their own profile');
select results_eq(
  $$ select username, full_name, avatar_path, preferences from public.profiles where id = tests.user_id('member') $$,
  $$ values ('member_one', 'Mem Ber', tests.user_id('member') || '/me.png', '{"theme": "dark"}'::jsonb) $$,
  'the username is stored lower-case and the name trimmed');
select throws_ok($$ update public.profiles set username = 'ACME_OWNER' where id = tests.user_id('member') $$,
  'PT409', 'username_taken', 'usernames are unique regardless of case');
select throws_ok($$ update public.profiles set username = 'support' where id = tests.user_id('member') $$,
  '22023', 'invalid_username', 'a reserved username is refused');
select throws_ok($$ update public.profiles set username = 'no spaces!' where id = tests.user_id('member') $$,
  '22023', 'invalid_username', 'a username outside [a-z0-9_] is refused');
select throws_ok($$ update public.profiles set username = 'ab' where id = tests.user_id('member') $$,
  '22023', 'invalid_username', 'a username shorter than 3 characters is refused');
select throws_ok($$ update public.profiles set username = repeat('x', 31) where id = tests.user_id('member') $$,
  '22023', 'invalid_username', 'a username longer than 30 characters is refused');
select throws_ok($$ update public.profiles set preferences = '[1, 2]' where id = tests.user_id('member') $$,
  '22023', 'invalid_input', 'preferences must be a JSON object');
select tests.clear_authentication();
select is(
  (select username from public.profiles where id = tests.user_id('member')),
  'member_one',
  'refused usernames changed nothing');

select * from finish();
rollback;
