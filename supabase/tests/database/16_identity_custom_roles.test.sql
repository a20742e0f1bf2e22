-- Custom roles per account (docs/accounts.md#roles-and-permissions): create_role, update_role, delete_role; custom keys
-- in invite_member and set_member_role; the rules that keep account.delete and ownership
-- with owners; who reads custom roles.
--
-- Personas: Olga owns team Acme, Adam is its admin, Mia a member, Vic a viewer, Pat holds
-- the custom role "people" (members.read, members.manage); Sam owns another team (a
-- stranger to Acme); anon. Zoe is invited.
begin;
select plan(70);

select tests.freeze_time('2031-05-01 12:00:00+00');

-- Fixtures, as postgres: the two teams, Acme's members, a catalog plan for checkout, and
-- room for invitations on the free plan.
select tests.team('acme', owner => 'olga', admins => '{adam}', members => '{mia}', viewers => '{vic,pat}');
select tests.team('samco', owner => 'sam', name => 'Sam Co');
insert into public.plans (key, name, tier, price_cents, stripe_price_id, included_credits, limits, active) values
  ('t16_team', 'Team', 5, 4900, 'price_t16team', 500, '{}', true);
update public.plans set max_members = null where key = 'free';

create table tests.roles16 (label text primary key, id uuid);
grant select, insert on tests.roles16 to authenticated;

-- ---------------------------------------------------------------------------
-- An admin creates "billing" and gives it to Mia
-- ---------------------------------------------------------------------------
select tests.authenticate_as('adam');
insert into tests.roles16
select 'billing', public.create_role(tests.account_id('acme'), 'billing', 'Billing', '{billing.manage, billing.read, billing.read}',
                                     'Pays the bills');
select is((select row(key, name, description, rank, account_id)::text from public.roles where id = (select id from tests.roles16 where label = 'billing')),
  row('billing', 'Billing', 'Pays the bills', 25, tests.account_id('acme'))::text,
  'Adam creates the custom role "billing" in Acme: it ranks 25, between member and admin');
select is((select array_agg(permission order by permission) from public.role_permissions
           where role_id = (select id from tests.roles16 where label = 'billing')),
  '{billing.manage,billing.read}'::text[], 'with its permissions, once each');
select lives_ok($$ select public.set_member_role(tests.account_id('acme'), tests.user_id('mia'), 'billing') $$,
  'Adam gives Mia the role by its key');
select is((select role from public.account_members where account_id = tests.account_id('acme') and user_id = tests.user_id('mia')), 'billing',
  'account_members.role reads the custom key, as clients read system keys');

select tests.authenticate_as('mia');
select ok(public.has_permission(tests.account_id('acme'), 'billing.manage'), 'Mia now holds billing.manage');
select ok(not public.has_permission(tests.account_id('acme'), 'credits.consume'), 'and no longer what a member held (credits.consume)');
select lives_ok($$ select public.begin_checkout(tests.account_id('acme'), 't16_team', null, 1) $$, 'Mia can open a checkout for Acme');
select throws_ok($$ select public.invite_member(tests.account_id('acme'), 'zoe@test.ledgerbase.dev', 'viewer') $$,
  '42501', 'permission denied', 'but cannot invite anyone');
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'x_role', 'X', '{billing.read}') $$,
  '42501', 'permission denied', 'nor define roles (members.manage)');

select tests.clear_authentication();
select is((select row(action, actor_user_id, account_id, after)::text from public.audit_log
           where action = 'role.created' and account_id = tests.account_id('acme')),
  row('role.created', tests.user_id('adam'), tests.account_id('acme'),
      '{"key": "billing", "name": "Billing", "description": "Pays the bills", "permissions": ["billing.manage", "billing.read"]}'::jsonb)::text,
  'the creation is audited with the role as created, by Adam');
select is((select count(*)::int from public.audit_log
           where action = 'member.role_changed' and account_id = tests.account_id('acme') and entity_id like '%' || tests.user_id('mia')::text || '%'), 1,
  'and Mia''s new role too');

-- ---------------------------------------------------------------------------
-- account.delete stays with owners; nobody grants what they do not hold
-- ---------------------------------------------------------------------------
select tests.authenticate_as('adam');
select is(tests.caught($$ select public.create_role(tests.account_id('acme'), 'deleter', 'Deleter', '{account.delete}') $$) - 'hint',
  jsonb_build_object('code', '22023', 'message', 'invalid_permission',
                     'detail', 'account.delete stays with owners: a custom role cannot carry it'),
  'an admin cannot create a role with account.delete');
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'odd', 'Odd', '{credits.fly}') $$,
  '22023', 'invalid_permission', 'an unknown permission is refused');
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'admin', 'Admin 2', '{billing.read}') $$,
  '22023', 'invalid_role', 'a system key cannot be reused');
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'Bad Key!', 'X', '{billing.read}') $$,
  '22023', 'invalid_role', 'a key is a-z, 0-9 and _');
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'billing', 'Again', '{billing.read}') $$,
  'PT409', 'role_exists', 'a key names one role per account');
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'nameless', E'Evil\u202Ename', '{billing.read}') $$,
  '22023', 'unsafe_characters', 'a name with bidi overrides is refused');
select throws_ok($$ select public.create_role(tests.user_id('adam'), 'solo', 'Solo', '{billing.read}') $$,
  '22023', 'personal_account', 'a personal account has no custom roles');
insert into tests.roles16
select 'people', public.create_role(tests.account_id('acme'), 'people', 'People', '{members.read, members.manage}');
select lives_ok($$ select public.set_member_role(tests.account_id('acme'), tests.user_id('pat'), 'people') $$, 'Adam makes Pat a people manager');

select tests.authenticate_as('olga');
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'deleter', 'Deleter', '{account.delete}') $$,
  '22023', 'invalid_permission', 'not even the owner can put account.delete in a custom role');

select tests.authenticate_as('pat');
select is(tests.caught($$ select public.create_role(tests.account_id('acme'), 'payer', 'Payer', '{billing.manage}') $$) ->> 'detail',
  'you cannot grant permissions you do not hold: billing.manage',
  'Pat (members.manage) cannot create a role granting billing.manage, which Pat lacks');
select throws_ok($$ select public.update_role((select id from tests.roles16 where label = 'people'), permissions => '{members.read, members.manage, billing.manage}') $$,
  '42501', 'permission denied', 'nor add it to his own role');
select throws_ok($$ select public.set_member_role(tests.account_id('acme'), tests.user_id('vic'), 'admin') $$,
  '42501', 'permission denied', 'a custom role ranks below admin: Pat cannot make anyone admin');
select throws_ok($$ select public.set_member_role(tests.account_id('acme'), tests.user_id('vic'), 'billing') $$,
  '42501', 'permission denied', 'nor give a role granting what he lacks');
select throws_ok($$ select public.set_member_role(tests.account_id('acme'), tests.user_id('mia'), 'people') $$,
  '42501', 'permission denied', 'nor change Mia, whose role grants what he lacks');
select throws_ok($$ select public.remove_member(tests.account_id('acme'), tests.user_id('mia')) $$,
  '42501', 'permission denied', 'nor remove her');
select throws_ok($$ select public.transfer_ownership(tests.account_id('acme'), tests.user_id('pat')) $$,
  '42501', 'permission denied', 'ownership transfer stays with owners');
select throws_ok($$ select public.delete_account(tests.account_id('acme')) $$,
  '42501', 'permission denied', 'and so does deleting the account');
select lives_ok($$ select public.create_role(tests.account_id('acme'), 'roster', 'Roster', '{members.read}') $$,
  'Pat may define a role within his own permissions');

-- ---------------------------------------------------------------------------
-- Keys are per account; invitations carry custom roles
-- ---------------------------------------------------------------------------
select tests.authenticate_as('sam');
insert into tests.roles16 select 'sam_billing', public.create_role(tests.account_id('samco'), 'billing', 'Sam''s billing', '{billing.read}');
select isnt((select id from tests.roles16 where label = 'sam_billing'), (select id from tests.roles16 where label = 'billing'),
  'Sam''s team has its own "billing", another role');

select tests.authenticate_as('adam');
select lives_ok($$ select public.invite_member(tests.account_id('acme'), 'zoe@test.ledgerbase.dev', 'billing') $$, 'Adam invites Zoe as billing');
select tests.clear_authentication();
select is((select role_id from public.account_invitations where account_id = tests.account_id('acme') and email = 'zoe@test.ledgerbase.dev'),
  (select id from tests.roles16 where label = 'billing'), 'the invitation holds Acme''s billing role, not Sam''s');
select tests.authenticate_as('sam');
select throws_ok($$ select public.set_member_role(tests.account_id('samco'), tests.user_id('sam'), 'people') $$,
  '22023', 'invalid_role', 'another account''s custom key means nothing in Sam''s team');

-- ---------------------------------------------------------------------------
-- Editing a role changes what its members may do at once
-- ---------------------------------------------------------------------------
select tests.authenticate_as('adam');
select lives_ok($$ select public.update_role((select id from tests.roles16 where label = 'billing'), name => 'Finance',
                                             permissions => '{billing.read, billing.manage, credits.read}') $$,
  'Adam renames billing to Finance and adds credits.read');
select tests.authenticate_as('mia');
select ok(public.has_permission(tests.account_id('acme'), 'credits.read'), 'Mia reads credits from then on');
select tests.clear_authentication();
select is((select before ->> 'name' || ' -> ' || (after ->> 'name') || ', ' || (after -> 'permissions')::text from public.audit_log
           where action = 'role.updated' and entity_id = (select id::text from tests.roles16 where label = 'billing')),
  'Billing -> Finance, ["billing.manage", "billing.read", "credits.read"]', 'the change is audited, before and after');
select tests.authenticate_as('adam');
select throws_ok($$ select public.update_role((select id from tests.roles16 where label = 'billing'), name => '') $$,
  '22023', 'invalid_name', 'a blank name is refused');

-- ---------------------------------------------------------------------------
-- System roles are immutable
-- ---------------------------------------------------------------------------
select tests.authenticate_as('olga');
select throws_ok($$ select public.update_role((select id from public.roles where key = 'admin' and account_id is null), name => 'Boss') $$,
  '22023', 'system_role', 'the owner cannot rename admin');
select throws_ok($$ select public.update_role((select id from public.roles where key = 'member' and account_id is null), permissions => '{members.read}') $$,
  '22023', 'system_role', 'nor change what a member may do');
select throws_ok($$ select public.delete_role((select id from public.roles where key = 'viewer' and account_id is null)) $$,
  '22023', 'system_role', 'nor delete viewer');
select tests.clear_authentication();
select is((select array_agg(key || ':' || rank order by rank) from public.roles where account_id is null),
  '{viewer:10,member:20,admin:30,owner:40}', 'the system roles stay as they were');

-- ---------------------------------------------------------------------------
-- Deleting a role in use
-- ---------------------------------------------------------------------------
select tests.authenticate_as('adam');
select is(tests.caught($$ select public.delete_role((select id from tests.roles16 where label = 'billing')) $$) - 'hint',
  jsonb_build_object('code', 'PT409', 'message', 'role_in_use',
                     'detail', '1 member(s) and 1 pending invitation(s) hold role billing'),
  'deleting billing while Mia holds it and Zoe is invited with it is refused, with the counts');
select throws_ok($$ select public.delete_role((select id from tests.roles16 where label = 'billing'), 'nope') $$,
  '22023', 'invalid_role', 'a replacement must be a role of the account');
select throws_ok($$ select public.delete_role((select id from tests.roles16 where label = 'billing'), 'owner') $$,
  '42501', 'permission denied', 'and one the caller may give');
select is(public.delete_role((select id from tests.roles16 where label = 'billing'), 'member'), 1,
  'with replacement member it moves one member and deletes the role');
select tests.clear_authentication();
select is((select role || '/' || (role_id = (select id from public.roles where key = 'member' and account_id is null))
           from public.account_members where account_id = tests.account_id('acme') and user_id = tests.user_id('mia')),
  'member/true', 'Mia is a member again');
select is((select role from public.account_invitations where account_id = tests.account_id('acme') and email = 'zoe@test.ledgerbase.dev'),
  'member', 'Zoe''s invitation now gives member');
select ok(not exists (select 1 from public.roles where id = (select id from tests.roles16 where label = 'billing')),
  'the role is gone, with its permissions');
select is((select after from public.audit_log where action = 'role.deleted' and account_id = tests.account_id('acme')),
  '{"replacement": "member", "members_moved": 1}'::jsonb, 'the deletion is audited with where the members went');
select tests.authenticate_as('adam');
select is(public.delete_role((select id from public.roles where account_id = tests.account_id('acme') and key = 'roster')), 0,
  'a role nobody holds is deleted without a replacement');

-- ---------------------------------------------------------------------------
-- Who reads custom roles (RLS), per persona
-- ---------------------------------------------------------------------------
select tests.clear_authentication();
select is(tests.rls_probe('olga', $$ select count(*) from public.roles where account_id = tests.account_id('acme') $$), 'allow', 'the owner reads Acme''s custom roles');
select is(tests.rls_probe('adam', $$ select count(*) from public.roles where account_id = tests.account_id('acme') $$), 'allow', 'the admin reads them');
select is(tests.rls_probe('mia', $$ select count(*) from public.roles where account_id = tests.account_id('acme') $$), 'allow', 'a member reads them (members.read)');
select is(tests.rls_probe('vic', $$ select count(*) from public.roles where account_id = tests.account_id('acme') $$), 'allow', 'a viewer reads them');
select is(tests.rls_probe('sam', $$ select count(*) from public.roles where account_id = tests.account_id('acme') $$), 'deny', 'a stranger sees no custom role of Acme');
select is(tests.rls_probe('anon', $$ select count(*) from public.roles where account_id = tests.account_id('acme') $$), 'deny', 'anon sees none');
select is(tests.rls_probe('vic', $$ select count(*) from public.role_permissions rp join tests.roles16 t on t.id = rp.role_id where t.label = 'people' $$),
  'allow', 'a viewer reads what Acme''s roles grant');
select is(tests.rls_probe('sam', $$ select count(*) from public.role_permissions rp join tests.roles16 t on t.id = rp.role_id where t.label = 'people' $$),
  'deny', 'a stranger does not');
select is(tests.rls_probe('sam', $$ select count(*) from public.roles where key = 'owner' and account_id is null $$), 'allow', 'everyone signed in reads the system roles');
select is(tests.rls_probe('adam', $$ update public.roles set name = 'x' where account_id = tests.account_id('acme') $$), 'deny', 'nobody writes roles but through the RPCs');
select is(tests.rls_probe('adam', $$ delete from public.role_permissions where role = 'people' $$), 'deny', 'nor their permissions');

select tests.authenticate_as('sam');
select throws_ok($$ select public.update_role((select id from tests.roles16 where label = 'people'), name => 'Mine') $$,
  'PT404', 'not_found', 'a stranger editing Acme''s role finds nothing, as for an unknown id');
select throws_ok($$ select public.delete_role((select id from tests.roles16 where label = 'people')) $$,
  'PT404', 'not_found', 'nor can he delete it');
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'spy', 'Spy', '{members.read}') $$,
  '42501', 'permission denied', 'nor create one there');
select tests.authenticate_as_anon();
select throws_ok($$ select public.create_role(tests.account_id('acme'), 'anon', 'Anon', '{members.read}') $$,
  '42501', null, 'anon cannot call create_role');

-- ---------------------------------------------------------------------------
-- Role permissions inserted by key still name the system roles
-- ---------------------------------------------------------------------------
select tests.clear_authentication();
insert into public.permissions (key, description) values ('reports.read', 'Read reports.');
insert into public.role_permissions (role, permission) values ('admin', 'reports.read');
select is((select role_id from public.role_permissions where role = 'admin' and permission = 'reports.read'),
  (select id from public.roles where key = 'admin' and account_id is null),
  'an insert by system key (as migrations write them) resolves to the system role');
select throws_ok($$ insert into public.role_permissions (role, permission) values ('people', 'reports.read') $$,
  '23503', 'invalid_role', 'a custom key alone is not enough: custom roles are named by id');

-- ---------------------------------------------------------------------------
-- Deleting the account takes its custom roles along
-- ---------------------------------------------------------------------------
select tests.authenticate_as('olga');
select lives_ok($$ select public.invite_member(tests.account_id('acme'), 'yan@test.ledgerbase.dev', 'people') $$,
  'Olga invites Yan as a people manager');
select tests.clear_authentication();
create temp table deleted_acme on commit drop as select tests.account_id('acme') as id;
select lives_ok($$ delete from public.accounts where id = tests.account_id('acme') $$,
  'Acme is deleted with members and a pending invitation holding its custom role');
select is((select count(*)::int from public.roles where account_id = (select id from deleted_acme)), 0, 'and its custom roles are gone');

select * from finish();
rollback;
