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
select tests.create_supabase_user('owner', 'owner@matrix.test', '11000000-0000-4000-8000-000000000001', '{"username": "acme_owner"}');
select tests.create_supabase_user('admin', 'admin@matrix.test', '11000000-0000-4000-8000-000000000002');
select tests.create_supabase_user('member', 'member@matrix.test', '11000000-0000-4000-8000-000000000003');
select tests.create_supabase_user('viewer', 'viewer@matrix.test', '11000000-0000-4000-8000-000000000004');
select tests.create_supabase_user('stranger', 'stranger@matrix.test', '11000000-0000-4000-8000-000000000005');
select tests.create_supabase_user('staff_admin', 'staff@matrix.test', '11000000-0000-4000-8000-000000000006');
update public.user_roles set role = 'admin' where user_id = '11000000-0000-4000-8000-000000000006';

insert into public.accounts (id, kind, name, slug, primary_owner, created_by) values
  ('11000000-0000-4000-8000-0000000000a0', 'team', 'Acme', 'acme', '11000000-0000-4000-8000-000000000001', '11000000-0000-4000-8000-000000000001');
insert into public.account_members (account_id, user_id, role) values
  ('11000000-0000-4000-8000-0000000000a0', '11000000-0000-4000-8000-000000000001', 'owner'),
  ('11000000-0000-4000-8000-0000000000a0', '11000000-0000-4000-8000-000000000002', 'admin'),
  ('11000000-0000-4000-8000-0000000000a0', '11000000-0000-4000-8000-000000000003', 'member'),
  ('11000000-0000-4000-8000-0000000000a0', '11000000-0000-4000-8000-000000000004', 'viewer');
insert into public.account_invitations (id, account_id, email, role, invited_by, expires_at) values
  ('11000000-0000-4000-8000-0000000000b0', '11000000-0000-4000-8000-0000000000a0', 'invitee@matrix.test', 'member',
   '11000000-0000-4000-8000-000000000001', now() + interval '7 days');

-- ---------------------------------------------------------------------------
-- The probe
-- ---------------------------------------------------------------------------

create temp table personas (ord int, persona text) on commit drop;
insert into personas values
  (1, 'anon'), (2, 'stranger'), (3, 'viewer'), (4, 'member'), (5, 'admin'), (6, 'owner'),
  (7, 'staff_admin'), (8, 'service_role');

-- One row per table and operation: the statement, and the personas it is allowed for.
-- Targets: the owner's profile, the team, the owner's membership, the pending invitation,
-- catalog rows, the member's staff role.
create temp table matrix (ord serial, tbl text, op text, statement text, allowed text[]) on commit drop;
insert into matrix (tbl, op, statement, allowed) values
  ('profiles', 'select', $$ select count(*) from public.profiles where id = '11000000-0000-4000-8000-000000000001' $$,
     '{viewer,member,admin,owner,staff_admin,service_role}'),
  ('profiles', 'insert', $$ insert into public.profiles (id, email, referral_code) values ('11000000-0000-4000-8000-0000000000ff', 'x@matrix.test', 'ZZZZZZZZ') $$,
     '{}'),
  ('profiles', 'update', $$ update public.profiles set full_name = 'Probe' where id = '11000000-0000-4000-8000-000000000001' $$,
     '{owner}'),
  ('profiles', 'delete', $$ delete from public.profiles where id = '11000000-0000-4000-8000-000000000001' $$,
     '{}'),

  ('accounts', 'select', $$ select count(*) from public.accounts where id = '11000000-0000-4000-8000-0000000000a0' $$,
     '{viewer,member,admin,owner,staff_admin,service_role}'),
  ('accounts', 'insert', $$ insert into public.accounts (kind, name, slug, primary_owner) values ('team', 'Probe', 'probe-team', '11000000-0000-4000-8000-000000000005') $$,
     '{}'),
  ('accounts', 'update', $$ update public.accounts set name = 'Probe' where id = '11000000-0000-4000-8000-0000000000a0' $$,
     '{}'),
  ('accounts', 'delete', $$ delete from public.accounts where id = '11000000-0000-4000-8000-0000000000a0' $$,
     '{}'),

  ('account_members', 'select', $$ select count(*) from public.account_members where account_id = '11000000-0000-4000-8000-0000000000a0' and user_id = '11000000-0000-4000-8000-000000000001' $$,
     '{viewer,member,admin,owner,staff_admin,service_role}'),
  ('account_members', 'insert', $$ insert into public.account_members (account_id, user_id, role) values ('11000000-0000-4000-8000-0000000000a0', '11000000-0000-4000-8000-000000000005', 'member') $$,
     '{}'),
  ('account_members', 'update', $$ update public.account_members set role = 'owner' where account_id = '11000000-0000-4000-8000-0000000000a0' and user_id = '11000000-0000-4000-8000-000000000003' $$,
     '{}'),
  ('account_members', 'delete', $$ delete from public.account_members where account_id = '11000000-0000-4000-8000-0000000000a0' and user_id = '11000000-0000-4000-8000-000000000003' $$,
     '{}'),

  ('account_invitations', 'select', $$ select count(*) from public.account_invitations where id = '11000000-0000-4000-8000-0000000000b0' $$,
     '{admin,owner,staff_admin,service_role}'),
  ('account_invitations', 'insert', $$ insert into public.account_invitations (account_id, email, role, expires_at) values ('11000000-0000-4000-8000-0000000000a0', 'probe@matrix.test', 'member', now() + interval '1 day') $$,
     '{}'),
  ('account_invitations', 'update', $$ update public.account_invitations set role = 'owner' where id = '11000000-0000-4000-8000-0000000000b0' $$,
     '{}'),
  ('account_invitations', 'delete', $$ delete from public.account_invitations where id = '11000000-0000-4000-8000-0000000000b0' $$,
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

  ('user_roles', 'select', $$ select count(*) from public.user_roles where user_id = '11000000-0000-4000-8000-000000000003' $$,
     '{member,staff_admin,service_role}'),
  ('user_roles', 'insert', $$ insert into public.user_roles (user_id, role) values ('11000000-0000-4000-8000-0000000000ff', 'admin') $$,
     '{}'),
  ('user_roles', 'update', $$ update public.user_roles set role = 'admin' where user_id = '11000000-0000-4000-8000-000000000003' $$,
     '{service_role}'),
  ('user_roles', 'delete', $$ delete from public.user_roles where user_id = '11000000-0000-4000-8000-000000000003' $$,
     '{}');

-- 8 tables × 4 operations × 8 personas = 256 assertions.
select is(
  tests.rls_probe(p.persona, m.statement),
  case when p.persona = any (m.allowed) then 'allow' else 'deny' end,
  format('%s × %s × %s: %s', m.tbl, p.persona, m.op, case when p.persona = any (m.allowed) then 'allow' else 'deny' end))
from matrix m cross join personas p
order by m.ord, p.ord;

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
select throws_ok($$ select public.has_permission('11000000-0000-4000-8000-0000000000a0', 'members.read') $$, '42501', null,
  'anon cannot call has_permission');
select throws_ok($$ select public.create_team_account('Anon Co', 'anon-co') $$, '42501', null,
  'anon cannot call the account RPCs');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Protected columns, attacked directly through the tables
-- ---------------------------------------------------------------------------
select tests.authenticate_as('member');
select throws_ok($$ update public.profiles set referral_code = 'AAAAAAAA' where id = '11000000-0000-4000-8000-000000000003' $$,
  '42501', 'permission denied for table profiles', 'a user cannot change their own referral_code');
select throws_ok($$ update public.profiles set referred_by = '11000000-0000-4000-8000-000000000001' where id = '11000000-0000-4000-8000-000000000003' $$,
  '42501', 'permission denied for table profiles', 'a user cannot set who referred them');
select throws_ok($$ update public.profiles set email = 'spoof@matrix.test' where id = '11000000-0000-4000-8000-000000000003' $$,
  '42501', 'permission denied for table profiles', 'a user cannot change the synced email');
select throws_ok($$ update public.profiles set id = '11000000-0000-4000-8000-000000000005' where id = '11000000-0000-4000-8000-000000000003' $$,
  '42501', 'permission denied for table profiles', 'a user cannot move their profile to another id');
select throws_ok($$ update public.account_members set role = 'owner' where user_id = '11000000-0000-4000-8000-000000000003' $$,
  '42501', 'permission denied for table account_members', 'a member cannot promote themselves through the table');
select throws_ok($$ update public.user_roles set role = 'admin' where user_id = '11000000-0000-4000-8000-000000000003' $$,
  '42501', 'permission denied for table user_roles', 'a user cannot make themselves staff admin');
select tests.authenticate_as('owner');
select throws_ok($$ update public.accounts set kind = 'personal' where id = '11000000-0000-4000-8000-0000000000a0' $$,
  '42501', 'permission denied for table accounts', 'even the owner cannot change the account kind through the table');
select throws_ok($$ update public.accounts set primary_owner = '11000000-0000-4000-8000-000000000005' where id = '11000000-0000-4000-8000-0000000000a0' $$,
  '42501', 'permission denied for table accounts', 'even the owner cannot hand the account over through the table');
select throws_ok($$ update public.account_invitations set role = 'owner' where id = '11000000-0000-4000-8000-0000000000b0' $$,
  '42501', 'permission denied for table account_invitations', 'the owner cannot rewrite an invitation through the table');
select tests.clear_authentication();
select results_eq(
  $$ select (select referral_code ~ '^[2-9A-HJKMNP-Z]{8}$' and referred_by is null and email = 'member@matrix.test'
             from public.profiles where id = '11000000-0000-4000-8000-000000000003'),
            (select role from public.account_members where account_id = '11000000-0000-4000-8000-0000000000a0' and user_id = '11000000-0000-4000-8000-000000000003'),
            (select role from public.user_roles where user_id = '11000000-0000-4000-8000-000000000003'),
            (select kind || ':' || primary_owner from public.accounts where id = '11000000-0000-4000-8000-0000000000a0') $$,
  $$ values (true, 'member', 'member', 'team:11000000-0000-4000-8000-000000000001') $$,
  'after those attempts the protected columns are unchanged');

-- What a user may edit on their own profile, and the rules on it.
select tests.authenticate_as('member');
select lives_ok(
  $$ update public.profiles set username = 'Member_One', full_name = ' Mem Ber ', avatar_path = '11000000-0000-4000-8000-000000000003/me.png',
            preferences = '{"theme": "dark"}' where id = '11000000-0000-4000-8000-000000000003' $$,
  'a user edits username, full_name, avatar_path and preferences of their own profile');
select results_eq(
  $$ select username, full_name, avatar_path, preferences from public.profiles where id = '11000000-0000-4000-8000-000000000003' $$,
  $$ values ('member_one', 'Mem Ber', '11000000-0000-4000-8000-000000000003/me.png', '{"theme": "dark"}'::jsonb) $$,
  'the username is stored lower-case and the name trimmed');
select throws_ok($$ update public.profiles set username = 'ACME_OWNER' where id = '11000000-0000-4000-8000-000000000003' $$,
  'PT409', 'username_taken', 'usernames are unique regardless of case');
select throws_ok($$ update public.profiles set username = 'support' where id = '11000000-0000-4000-8000-000000000003' $$,
  '22023', 'invalid_username', 'a reserved username is refused');
select throws_ok($$ update public.profiles set username = 'no spaces!' where id = '11000000-0000-4000-8000-000000000003' $$,
  '22023', 'invalid_username', 'a username outside [a-z0-9_] is refused');
select throws_ok($$ update public.profiles set username = 'ab' where id = '11000000-0000-4000-8000-000000000003' $$,
  '22023', 'invalid_username', 'a username shorter than 3 characters is refused');
select throws_ok($$ update public.profiles set username = repeat('x', 31) where id = '11000000-0000-4000-8000-000000000003' $$,
  '22023', 'invalid_username', 'a username longer than 30 characters is refused');
select throws_ok($$ update public.profiles set preferences = '[1, 2]' where id = '11000000-0000-4000-8000-000000000003' $$,
  '22023', 'invalid_input', 'preferences must be a JSON object');
select tests.clear_authentication();
select is(
  (select username from public.profiles where id = '11000000-0000-4000-8000-000000000003'),
  'member_one',
  'refused usernames changed nothing');

select * from finish();
rollback;
