-- Team accounts through the RPCs: creation, permissions by role, roles, ownership, updating,
-- removal, leaving and deletion (docs/accounts.md#accounts, docs/rpc.md#accounts-and-members, docs/errors.md). Invitations have their own story
-- (17_identity_invitations). Personas: owner, admin, member, viewer (newbie a second viewer),
-- stranger, late (never a member).
begin;
select plan(74);

select tests.freeze_time('2031-03-01 10:00:00+00');
-- The plan's member limit is 14_identity_member_limits' subject: lifted inside this transaction.
update public.plans set max_members = null where key = 'free';
select tests.create_users('owner', 'admin', 'member', 'viewer', 'stranger', 'newbie', 'late');

-- The wallet seam is replaced, inside this transaction only, by a recorder.
create table tests.seam_calls (account_id uuid, user_id uuid);
create or replace function private.on_account_created(account_id uuid, user_id uuid)
returns void language sql set search_path = '' as $$
  insert into tests.seam_calls values (on_account_created.account_id, on_account_created.user_id)
$$;

-- ---------------------------------------------------------------------------
-- Creating a team
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
select results_eq(
  $$ select kind, name, slug, primary_owner, created_by from public.create_team_account(name => ' Acme Inc ', slug => ' Acme-HQ ') $$,
  $$ values ('team', 'Acme Inc', 'acme-hq', tests.user_id('owner'), tests.user_id('owner')) $$,
  'create_team_account returns the team: trimmed name, lower-cased slug, the caller as primary owner');
select results_eq(
  $$ select user_id, role from public.account_members where account_id = tests.account_id('acme-hq') $$,
  $$ values (tests.user_id('owner'), 'owner') $$,
  'the creator is its only member, as owner');
select tests.clear_authentication();
select results_eq(
  $$ select account_id, user_id from tests.seam_calls $$,
  $$ select tests.account_id('acme-hq'), tests.user_id('owner') $$,
  'the wallet seam ran once for the new team');
select tests.authenticate_as('owner');
select throws_ok($$ select public.create_team_account('X', 'ab') $$, '22023', 'invalid_slug', 'a 2-character slug is refused');
select throws_ok($$ select public.create_team_account('X', repeat('a', 49)) $$, '22023', 'invalid_slug', 'a 49-character slug is refused');
select throws_ok($$ select public.create_team_account('X', 'under_score') $$, '22023', 'invalid_slug', 'a slug with _ is refused');
select throws_ok($$ select public.create_team_account('X', '-dash') $$, '22023', 'invalid_slug', 'a slug starting with - is refused');
select throws_ok($$ select public.create_team_account('X', 'Billing') $$, '22023', 'invalid_slug', 'a reserved slug is refused, whatever its case');
select throws_ok($$ select public.create_team_account('X', null) $$, '22023', 'invalid_slug', 'a team needs a slug');
select throws_ok($$ select public.create_team_account('   ', 'blank-name') $$, '22023', 'invalid_name', 'a blank name is refused');
select lives_ok($$ select public.create_team_account('Max', repeat('m', 48)) $$, 'a 48-character slug is accepted');
select tests.authenticate_as('stranger');
select throws_ok($$ select public.create_team_account('Copycat', 'ACME-hq') $$, 'PT409', 'slug_taken', 'a taken slug is refused, whatever its case');
select tests.clear_authentication();
select is((select count(*)::int from public.accounts where kind = 'team'), 2, 'the refused attempts created nothing');

-- ---------------------------------------------------------------------------
-- The team, joined (the invitation flow is 17_identity_invitations), with one invitation pending
-- ---------------------------------------------------------------------------
select tests.add_members(tests.account_id('acme-hq'), 'admin', 'admin');
select tests.add_members(tests.account_id('acme-hq'), 'member', 'member');
select tests.add_members(tests.account_id('acme-hq'), 'viewer', 'viewer', 'newbie');
select tests.authenticate_as('owner');
select public.invite_member(tests.account_id('acme-hq'), 'pending@test.ledgerbase.dev');

-- ---------------------------------------------------------------------------
-- Permissions by role
-- ---------------------------------------------------------------------------
select tests.clear_authentication();
create temp table permission_expectations (persona text, permission text, expected boolean) on commit drop;
insert into permission_expectations values
  ('owner', 'account.delete', true), ('owner', 'audit.read', true),
  ('admin', 'account.delete', false), ('admin', 'members.manage', true), ('admin', 'billing.manage', true), ('admin', 'api_keys.manage', true),
  ('member', 'credits.consume', true), ('member', 'members.invite', false), ('member', 'billing.manage', false),
  ('viewer', 'credits.read', true), ('viewer', 'credits.consume', false),
  ('stranger', 'members.read', false);
create function tests.permission_as(persona text, permission text) returns boolean
language plpgsql set search_path = '' as $$
declare answer boolean;
begin
  perform tests.authenticate_as(persona);
  answer := public.has_permission(tests.account_id('acme-hq'), permission);
  perform tests.clear_authentication();
  return answer;
end $$;
select is(tests.permission_as(e.persona, e.permission), e.expected,
  format('has_permission: %s %s %s', e.persona, case when e.expected then 'holds' else 'lacks' end, e.permission))
from permission_expectations e order by e.persona, e.permission;

select tests.authenticate_as('owner');
select is(public.is_staff_admin(), false, 'an ordinary user is not a staff admin');
select tests.clear_authentication();
select tests.make_staff_admin('stranger');
select tests.authenticate_as('stranger');
select is(public.is_staff_admin(), true, 'a user with staff role admin is a staff admin');
select is(public.has_permission(tests.account_id('acme-hq'), 'members.read'), false, 'staff admins get no account permission from it');

-- ---------------------------------------------------------------------------
-- Roles: no escalation, always an owner
-- ---------------------------------------------------------------------------
select tests.authenticate_as('admin');
select lives_ok($$ select public.set_member_role(account_id => tests.account_id('acme-hq'), user_id => tests.user_id('viewer'), role => 'member') $$,
  'an admin changes a viewer into a member');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('member'), 'owner') $$,
  '42501', 'permission denied', 'an admin cannot promote anyone to owner');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('admin'), 'owner') $$,
  '42501', 'permission denied', 'an admin cannot promote themselves to owner');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('owner'), 'viewer') $$,
  '42501', 'permission denied', 'an admin cannot demote the owner');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('viewer'), 'boss') $$,
  '22023', 'invalid_role', 'an unknown role is refused');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('late'), 'viewer') $$,
  'PT404', 'not_found', 'a non-member''s role cannot be set');
select tests.authenticate_as('member');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('viewer'), 'admin') $$,
  '42501', 'permission denied', 'a member cannot change roles');
select tests.authenticate_as('owner');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('owner'), 'admin') $$,
  '22023', 'last_owner', 'the last owner cannot step down');
select throws_ok($$ select public.set_member_role(tests.account_id('owner'), tests.user_id('owner'), 'admin') $$,
  '22023', 'personal_account', 'roles in a personal account cannot change');
select tests.clear_authentication();
select set_eq(
  $$ select user_id, role from public.account_members where account_id = tests.account_id('acme-hq') and user_id in
       (tests.user_id('owner'), tests.user_id('admin'), tests.user_id('member'), tests.user_id('viewer')) $$,
  $$ values (tests.user_id('owner'), 'owner'), (tests.user_id('admin'), 'admin'),
            (tests.user_id('member'), 'member'), (tests.user_id('viewer'), 'member') $$,
  'only the allowed change happened');

-- A second owner; the primary owner still cannot be demoted, the other owner can step down.
select tests.authenticate_as('owner');
select lives_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('admin'), 'owner') $$,
  'an owner promotes the admin to owner');
select tests.authenticate_as('admin');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('owner'), 'admin') $$,
  '22023', 'last_owner', 'the primary owner keeps the owner role (transfer ownership first)');
select lives_ok($$ select public.set_member_role(tests.account_id('acme-hq'), tests.user_id('admin'), 'admin') $$,
  'a second owner may step down to admin');

-- ---------------------------------------------------------------------------
-- Transferring ownership
-- ---------------------------------------------------------------------------
select tests.authenticate_as('admin');
select throws_ok($$ select public.transfer_ownership(tests.account_id('acme-hq'), tests.user_id('admin')) $$,
  '42501', 'permission denied', 'an admin cannot take ownership');
select tests.authenticate_as('owner');
select throws_ok($$ select public.transfer_ownership(tests.account_id('acme-hq'), tests.user_id('late')) $$,
  'PT404', 'not_found', 'ownership goes only to a member');
select throws_ok($$ select public.transfer_ownership(tests.account_id('owner'), tests.user_id('admin')) $$,
  '22023', 'personal_account', 'a personal account cannot be transferred');
select lives_ok($$ select public.transfer_ownership(account_id => tests.account_id('acme-hq'), user_id => tests.user_id('admin')) $$,
  'the owner transfers the team to the admin');
select tests.clear_authentication();
select results_eq(
  $$ select a.primary_owner,
            (select role from public.account_members where account_id = a.id and user_id = tests.user_id('admin')),
            (select role from public.account_members where account_id = a.id and user_id = tests.user_id('owner'))
     from public.accounts a where a.slug = 'acme-hq' $$,
  $$ values (tests.user_id('admin'), 'owner', 'admin') $$,
  'the new owner is primary owner with the owner role; the old owner is now admin');
select tests.authenticate_as('owner');
select throws_ok($$ select public.delete_account(tests.account_id('acme-hq')) $$,
  '42501', 'permission denied', 'the former owner can no longer delete the team');

-- ---------------------------------------------------------------------------
-- Updating an account
-- ---------------------------------------------------------------------------
select tests.authenticate_as('member');
select throws_ok($$ select public.update_account(tests.account_id('acme-hq'), 'Hacked') $$,
  '42501', 'permission denied', 'a member cannot rename the team');
select tests.authenticate_as('owner');  -- now an admin of acme-hq
select results_eq(
  $$ select name, slug from public.update_account(account_id => tests.account_id('acme-hq'), name => 'Acme Worldwide', slug => 'ACME-World') $$,
  $$ values ('Acme Worldwide', 'acme-world') $$,
  'an admin renames the team and changes its slug');
select throws_ok($$ select public.update_account(tests.account_id('acme-world'), slug => 'no') $$,
  '22023', 'invalid_slug', 'an invalid new slug is refused');
select throws_ok($$ select public.update_account(tests.account_id('acme-world'), slug => repeat('m', 48)) $$,
  'PT409', 'slug_taken', 'a taken slug is refused');
select results_eq(
  $$ select name, slug from public.update_account(tests.account_id('acme-world')) $$,
  $$ values ('Acme Worldwide', 'acme-world') $$,
  'null arguments leave the account unchanged');
select results_eq(
  $$ select name from public.update_account(tests.account_id('owner'), name => 'My Space') $$,
  $$ values ('My Space') $$,
  'a user renames their personal account');
select throws_ok($$ select public.update_account(tests.account_id('owner'), slug => 'my-space') $$,
  '22023', 'personal_account', 'a personal account gets no slug');

-- ---------------------------------------------------------------------------
-- Removing members and leaving
-- ---------------------------------------------------------------------------
-- acme-world now: admin is its primary owner; owner an admin; member and viewer members;
-- newbie a viewer.
select tests.authenticate_as('member');
select throws_ok($$ select public.remove_member(tests.account_id('acme-world'), tests.user_id('newbie')) $$,
  '42501', 'permission denied', 'a member cannot remove anyone');
select tests.authenticate_as('owner');
select throws_ok($$ select public.remove_member(tests.account_id('acme-world'), tests.user_id('admin')) $$,
  '42501', 'permission denied', 'an admin cannot remove the owner');
select lives_ok($$ select public.remove_member(account_id => tests.account_id('acme-world'), user_id => tests.user_id('newbie')) $$,
  'an admin removes a viewer');
select throws_ok($$ select public.remove_member(tests.account_id('acme-world'), tests.user_id('newbie')) $$,
  'PT404', 'not_found', 'a removed member is no longer there');
select throws_ok($$ select public.remove_member(tests.account_id('owner'), tests.user_id('member')) $$,
  '22023', 'personal_account', 'nobody can be removed from a personal account');
select tests.authenticate_as('viewer');
select lives_ok($$ select public.leave_account(account_id => tests.account_id('acme-world')) $$, 'a member leaves the team');
select throws_ok($$ select public.leave_account(tests.account_id('acme-world')) $$, 'PT404', 'not_found', 'and cannot leave twice');
select throws_ok($$ select public.leave_account(tests.account_id('viewer')) $$,
  '22023', 'personal_account', 'a personal account cannot be left');
select tests.authenticate_as('admin');
select throws_ok($$ select public.leave_account(tests.account_id('acme-world')) $$,
  '22023', 'last_owner', 'the only owner cannot leave');
select tests.clear_authentication();
select set_eq(
  $$ select user_id from public.account_members where account_id = tests.account_id('acme-world') $$,
  $$ values (tests.user_id('owner')), (tests.user_id('admin')), (tests.user_id('member')) $$,
  'the team keeps its owner, the admin and the member');
select results_eq(
  $$ select (select count(*)::int from public.accounts where id = tests.account_id('viewer')),
            (select count(*)::int from public.account_members where account_id = tests.account_id('viewer')) $$,
  $$ values (1, 1) $$,
  'the leaver''s personal account is untouched');

-- A primary owner who leaves while another owner exists hands the team over.
select tests.authenticate_as('admin');
select lives_ok($$ select public.set_member_role(tests.account_id('acme-world'), tests.user_id('owner'), 'owner') $$,
  'the owner makes the former owner an owner again');
select lives_ok($$ select public.leave_account(tests.account_id('acme-world')) $$,
  'the primary owner leaves now that another owner exists');
select tests.clear_authentication();
select is((select primary_owner from public.accounts where slug = 'acme-world'), tests.user_id('owner'),
  'the remaining owner became primary owner');
select tests.authenticate_as('admin');
select is((select count(*)::int from public.accounts where slug = 'acme-world'), 0, 'the leaver no longer sees the team');

-- ---------------------------------------------------------------------------
-- Deleting a team
-- ---------------------------------------------------------------------------
select tests.authenticate_as('member');
select throws_ok($$ select public.delete_account(tests.account_id('acme-world')) $$,
  '42501', 'permission denied', 'a member cannot delete the team');
select tests.authenticate_as('owner');
select throws_ok($$ select public.delete_account(tests.account_id('owner')) $$,
  '22023', 'personal_account', 'a personal account is not deleted by delete_account');
select lives_ok($$ select public.delete_account(account_id => tests.account_id('acme-world')) $$, 'the owner deletes the team');
select tests.clear_authentication();
select results_eq(
  $$ select (select count(*)::int from public.accounts where slug = 'acme-world'),
            (select count(*)::int from public.account_members m where not exists (select 1 from public.accounts a where a.id = m.account_id)),
            (select count(*)::int from public.account_invitations where email = 'pending@test.ledgerbase.dev'),
            (select count(*)::int from private.invitation_tokens) $$,
  $$ values (0, 0, 0, 0) $$,
  'the team, its memberships, its invitations and their tokens are gone');
select is((select count(*)::int from public.accounts where id = tests.account_id('owner')), 1,
  'the owner''s personal account remains');

select * from finish();
rollback;
