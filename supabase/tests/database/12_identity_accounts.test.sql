-- Team accounts through the RPCs: creation, invitations, roles, ownership, removal,
-- leaving and deletion (SPEC §4.1, §4.9, §6). Stories per persona: owner, admin,
-- member, viewer, stranger, and people being invited.
begin;
select plan(112);

select tests.freeze_time('2031-03-01 10:00:00+00');
-- Invitations are the subject here, not the plan's member limit (14_identity_member_limits):
-- the teams are on the free plan, whose max_members is lifted inside this transaction.
update public.plans set max_members = null where key = 'free';

select tests.create_supabase_user('owner', 'owner@accounts.test', '12000000-0000-4000-8000-000000000001');
select tests.create_supabase_user('admin', 'admin@accounts.test', '12000000-0000-4000-8000-000000000002');
select tests.create_supabase_user('member', 'member@accounts.test', '12000000-0000-4000-8000-000000000003');
select tests.create_supabase_user('viewer', 'viewer@accounts.test', '12000000-0000-4000-8000-000000000004');
select tests.create_supabase_user('stranger', 'stranger@accounts.test', '12000000-0000-4000-8000-000000000005');
select tests.create_supabase_user('newbie', 'newbie@accounts.test', '12000000-0000-4000-8000-000000000006');
select tests.create_supabase_user('late', 'late@accounts.test', '12000000-0000-4000-8000-000000000007');
select tests.create_supabase_user('unconfirmed', 'unconfirmed@accounts.test', '12000000-0000-4000-8000-000000000008');
update auth.users set email_confirmed_at = null where id = '12000000-0000-4000-8000-000000000008';

-- Test plumbing: account ids by slug (bypassing RLS) and a place to keep tokens.
create function tests.account_id(slug text) returns uuid
language sql stable security definer set search_path = '' as $$
  select a.id from public.accounts a where a.slug = account_id.slug
$$;
grant execute on function tests.account_id(text) to authenticated;
create table tests.tokens (label text primary key, token text, invitation_id uuid, expires_at timestamptz);
grant select, insert, update on tests.tokens to authenticated;
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
  $$ values ('team', 'Acme Inc', 'acme-hq', '12000000-0000-4000-8000-000000000001'::uuid, '12000000-0000-4000-8000-000000000001'::uuid) $$,
  'create_team_account returns the team: trimmed name, lower-cased slug, the caller as primary owner');
select results_eq(
  $$ select user_id, role from public.account_members where account_id = tests.account_id('acme-hq') $$,
  $$ values ('12000000-0000-4000-8000-000000000001'::uuid, 'owner') $$,
  'the creator is its only member, as owner');
select tests.clear_authentication();
select results_eq(
  $$ select account_id, user_id from tests.seam_calls $$,
  $$ select tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000001'::uuid $$,
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
-- Invitations
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
insert into tests.tokens (label, token, invitation_id, expires_at)
select label, r ->> 'token', (r ->> 'invitation_id')::uuid, (r ->> 'expires_at')::timestamptz
from (values
  ('admin', public.invite_member(tests.account_id('acme-hq'), 'Admin@Accounts.test', 'admin')),
  ('member', public.invite_member(account_id => tests.account_id('acme-hq'), email => 'member@accounts.test')),
  ('viewer', public.invite_member(tests.account_id('acme-hq'), 'viewer@accounts.test', 'viewer'))
) v (label, r);
select tests.clear_authentication();

select is(
  (select expires_at from tests.tokens where label = 'member'),
  '2031-03-08 10:00:00+00'::timestamptz,
  'an invitation expires after the invitation_ttl setting (7 days)');
select ok(
  (select bool_and(token ~ '^[A-Za-z0-9_-]{43}$') from tests.tokens),
  'tokens are 32 random bytes in base64url');
select results_eq(
  $$ select i.email, i.role from public.account_invitations i join tests.tokens t on t.invitation_id = i.id where t.label = 'admin' $$,
  $$ values ('admin@accounts.test', 'admin') $$,
  'the invited email is stored lower-case with the role');
select is(
  (select count(*)::int from tests.tokens t join private.invitation_tokens it on it.invitation_id = t.invitation_id
   where it.token_hash = encode(extensions.digest(t.token, 'sha256'), 'hex')),
  3,
  'only the sha256 of each token is stored, out of the API''s reach');
select hasnt_column('public', 'account_invitations', 'token', 'the invitations table has no token column');
select hasnt_column('public', 'account_invitations', 'token_hash', 'the invitations table exposes no token hash either');

-- The right people accept.
select tests.authenticate_as('admin');
select is(public.accept_invitation((select token from tests.tokens where label = 'admin')), tests.account_id('acme-hq'),
  'accept_invitation returns the account id');
select tests.authenticate_as('member');
select lives_ok($$ select public.accept_invitation(token => (select token from tests.tokens where label = 'member')) $$, 'the member accepts');
select tests.authenticate_as('viewer');
select lives_ok($$ select public.accept_invitation((select token from tests.tokens where label = 'viewer')) $$, 'the viewer accepts');
select tests.clear_authentication();
select results_eq(
  $$ select user_id, role from public.account_members where account_id = tests.account_id('acme-hq') order by role $$,
  $$ values ('12000000-0000-4000-8000-000000000002'::uuid, 'admin'), ('12000000-0000-4000-8000-000000000003'::uuid, 'member'),
            ('12000000-0000-4000-8000-000000000001'::uuid, 'owner'), ('12000000-0000-4000-8000-000000000004'::uuid, 'viewer') $$,
  'each joined with the invited role');
select is(
  (select accepted_by from public.account_invitations i join tests.tokens t on t.invitation_id = i.id where t.label = 'member'),
  '12000000-0000-4000-8000-000000000003'::uuid,
  'the invitation records who accepted it');

-- Single use.
select tests.authenticate_as('member');
select throws_ok($$ select public.accept_invitation((select token from tests.tokens where label = 'member')) $$,
  'PT410', 'gone', 'a used invitation is gone');
select throws_ok($$ select public.accept_invitation('not-a-real-token') $$, 'PT404', 'not_found', 'an unknown token is not found');
select throws_ok($$ select public.accept_invitation(null) $$, 'PT404', 'not_found', 'a null token is not found');

-- Only the invited email may accept.
select tests.authenticate_as('owner');
insert into tests.tokens (label, token, invitation_id)
select 'newbie', r ->> 'token', (r ->> 'invitation_id')::uuid
from public.invite_member(tests.account_id('acme-hq'), 'newbie@accounts.test', 'member') r;
select tests.authenticate_as('stranger');
select throws_ok($$ select public.accept_invitation((select token from tests.tokens where label = 'newbie')) $$,
  '42501', 'permission denied', 'someone else holding the token cannot accept it');
select tests.clear_authentication();
select results_eq(
  $$ select (select accepted_at from public.account_invitations i join tests.tokens t on t.invitation_id = i.id where t.label = 'newbie'),
            (select count(*)::int from public.account_members where account_id = tests.account_id('acme-hq') and user_id = '12000000-0000-4000-8000-000000000005') $$,
  $$ values (null::timestamptz, 0) $$,
  'the invitation stays pending and the stranger did not join');

-- Inviting again replaces the pending invitation.
select tests.authenticate_as('owner');
insert into tests.tokens (label, token, invitation_id)
select 'newbie_again', r ->> 'token', (r ->> 'invitation_id')::uuid
from public.invite_member(tests.account_id('acme-hq'), 'NEWBIE@accounts.test', 'viewer') r;
select tests.clear_authentication();
select results_eq(
  $$ select role from public.account_invitations where account_id = tests.account_id('acme-hq') and email = 'newbie@accounts.test' $$,
  $$ values ('viewer') $$,
  're-inviting an email leaves one pending invitation, the new one');
select tests.authenticate_as('newbie');
select throws_ok($$ select public.accept_invitation((select token from tests.tokens where label = 'newbie')) $$,
  'PT404', 'not_found', 'the replaced invitation''s token no longer works');
select lives_ok($$ select public.accept_invitation((select token from tests.tokens where label = 'newbie_again')) $$,
  'the new token works for the invited email (any case)');

-- Expiry: 7 days and 1 second later the invitation is gone.
select tests.authenticate_as('owner');
insert into tests.tokens (label, token, invitation_id)
select 'late', r ->> 'token', (r ->> 'invitation_id')::uuid
from public.invite_member(tests.account_id('acme-hq'), 'late@accounts.test') r;
select tests.freeze_time('2031-03-08 10:00:01+00');
select tests.authenticate_as('late');
select throws_ok($$ select public.accept_invitation((select token from tests.tokens where label = 'late')) $$,
  'PT410', 'gone', 'an expired invitation is gone');
select tests.freeze_time('2031-03-01 10:00:00+00');
select tests.clear_authentication();
select is((select count(*)::int from public.account_members where user_id = '12000000-0000-4000-8000-000000000007' and account_id = tests.account_id('acme-hq')), 0,
  'the late invitee did not join');

-- The TTL is a setting.
update private.settings set value = '"1 hour"' where key = 'invitation_ttl';
select tests.authenticate_as('owner');
select is(
  (public.invite_member(tests.account_id('acme-hq'), 'hourly@accounts.test') ->> 'expires_at')::timestamptz,
  '2031-03-01 11:00:00+00'::timestamptz,
  'changing invitation_ttl changes the expiry of new invitations');
select tests.clear_authentication();
update private.settings set value = '604800' where key = 'invitation_ttl';
select tests.authenticate_as('owner');
select is(
  (public.invite_member(tests.account_id('acme-hq'), 'seconds@accounts.test') ->> 'expires_at')::timestamptz,
  '2031-03-08 10:00:00+00'::timestamptz,
  'invitation_ttl may also be a number of seconds');

-- An unconfirmed email cannot accept.
insert into tests.tokens (label, token, invitation_id)
select 'unconfirmed', r ->> 'token', (r ->> 'invitation_id')::uuid
from public.invite_member(tests.account_id('acme-hq'), 'unconfirmed@accounts.test') r;
select tests.authenticate_as('unconfirmed');
select throws_ok($$ select public.accept_invitation((select token from tests.tokens where label = 'unconfirmed')) $$,
  '42501', 'permission denied', 'a user whose email is not confirmed cannot accept');

-- Who may invite, and with which role.
select tests.authenticate_as('member');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@accounts.test') $$,
  '42501', 'permission denied', 'a member cannot invite');
select tests.authenticate_as('viewer');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@accounts.test') $$,
  '42501', 'permission denied', 'a viewer cannot invite');
select tests.authenticate_as('stranger');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@accounts.test') $$,
  '42501', 'permission denied', 'a stranger cannot invite');
select tests.authenticate_as('admin');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@accounts.test', 'owner') $$,
  '42501', 'permission denied', 'an admin cannot invite an owner');
select lives_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@accounts.test', 'admin') $$,
  'an admin can invite another admin');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'member@accounts.test') $$,
  'PT409', 'already_member', 'inviting a member is a conflict');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'not an email') $$,
  '22023', 'invalid_email', 'a malformed email is refused');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'y@accounts.test', 'superuser') $$,
  '22023', 'invalid_role', 'an unknown role is refused');
select throws_ok($$ select public.invite_member('12000000-0000-4000-8000-000000000002', 'y@accounts.test') $$,
  '22023', 'personal_account', 'a personal account cannot be shared');
select tests.clear_authentication();
select is((select count(*)::int from public.account_invitations where email = 'y@accounts.test'), 0, 'refused invitations left nothing');

-- Revoking.
select tests.authenticate_as('owner');
insert into tests.tokens (label, token, invitation_id)
select 'revoked', r ->> 'token', (r ->> 'invitation_id')::uuid
from public.invite_member(tests.account_id('acme-hq'), 'revoked@accounts.test') r;
select tests.authenticate_as('member');
select throws_ok($$ select public.revoke_invitation((select invitation_id from tests.tokens where label = 'revoked')) $$,
  '42501', 'permission denied', 'a member cannot revoke an invitation');
select tests.authenticate_as('admin');
select lives_ok($$ select public.revoke_invitation(invitation_id => (select invitation_id from tests.tokens where label = 'revoked')) $$,
  'an admin revokes an invitation');
select throws_ok($$ select public.revoke_invitation((select invitation_id from tests.tokens where label = 'revoked')) $$,
  'PT404', 'not_found', 'a revoked invitation is not found any more');
select throws_ok($$ select public.accept_invitation((select token from tests.tokens where label = 'revoked')) $$,
  'PT404', 'not_found', 'and its token does not work');

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
update public.user_roles set role = 'admin' where user_id = '12000000-0000-4000-8000-000000000005';
select tests.authenticate_as('stranger');
select is(public.is_staff_admin(), true, 'a user with staff role admin is a staff admin');
select is(public.has_permission(tests.account_id('acme-hq'), 'members.read'), false, 'staff admins get no account permission from it');

-- ---------------------------------------------------------------------------
-- Roles: no escalation, always an owner
-- ---------------------------------------------------------------------------
select tests.authenticate_as('admin');
select lives_ok($$ select public.set_member_role(account_id => tests.account_id('acme-hq'), user_id => '12000000-0000-4000-8000-000000000004', role => 'member') $$,
  'an admin changes a viewer into a member');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000003', 'owner') $$,
  '42501', 'permission denied', 'an admin cannot promote anyone to owner');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000002', 'owner') $$,
  '42501', 'permission denied', 'an admin cannot promote themselves to owner');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000001', 'viewer') $$,
  '42501', 'permission denied', 'an admin cannot demote the owner');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000004', 'boss') $$,
  '22023', 'invalid_role', 'an unknown role is refused');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000007', 'viewer') $$,
  'PT404', 'not_found', 'a non-member''s role cannot be set');
select tests.authenticate_as('member');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000004', 'admin') $$,
  '42501', 'permission denied', 'a member cannot change roles');
select tests.authenticate_as('owner');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000001', 'admin') $$,
  '22023', 'last_owner', 'the last owner cannot step down');
select throws_ok($$ select public.set_member_role('12000000-0000-4000-8000-000000000001', '12000000-0000-4000-8000-000000000001', 'admin') $$,
  '22023', 'personal_account', 'roles in a personal account cannot change');
select tests.clear_authentication();
select results_eq(
  $$ select user_id, role from public.account_members where account_id = tests.account_id('acme-hq') and user_id in
       ('12000000-0000-4000-8000-000000000001', '12000000-0000-4000-8000-000000000002', '12000000-0000-4000-8000-000000000003', '12000000-0000-4000-8000-000000000004')
     order by user_id $$,
  $$ values ('12000000-0000-4000-8000-000000000001'::uuid, 'owner'), ('12000000-0000-4000-8000-000000000002'::uuid, 'admin'),
            ('12000000-0000-4000-8000-000000000003'::uuid, 'member'), ('12000000-0000-4000-8000-000000000004'::uuid, 'member') $$,
  'only the allowed change happened');

-- A second owner; the primary owner still cannot be demoted, the other owner can step down.
select tests.authenticate_as('owner');
select lives_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000002', 'owner') $$,
  'an owner promotes the admin to owner');
select tests.authenticate_as('admin');
select throws_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000001', 'admin') $$,
  '22023', 'last_owner', 'the primary owner keeps the owner role (transfer ownership first)');
select lives_ok($$ select public.set_member_role(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000002', 'admin') $$,
  'a second owner may step down to admin');

-- ---------------------------------------------------------------------------
-- Transferring ownership
-- ---------------------------------------------------------------------------
select tests.authenticate_as('admin');
select throws_ok($$ select public.transfer_ownership(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000002') $$,
  '42501', 'permission denied', 'an admin cannot take ownership');
select tests.authenticate_as('owner');
select throws_ok($$ select public.transfer_ownership(tests.account_id('acme-hq'), '12000000-0000-4000-8000-000000000007') $$,
  'PT404', 'not_found', 'ownership goes only to a member');
select throws_ok($$ select public.transfer_ownership('12000000-0000-4000-8000-000000000001', '12000000-0000-4000-8000-000000000002') $$,
  '22023', 'personal_account', 'a personal account cannot be transferred');
select lives_ok($$ select public.transfer_ownership(account_id => tests.account_id('acme-hq'), user_id => '12000000-0000-4000-8000-000000000002') $$,
  'the owner transfers the team to the admin');
select tests.clear_authentication();
select results_eq(
  $$ select a.primary_owner,
            (select role from public.account_members where account_id = a.id and user_id = '12000000-0000-4000-8000-000000000002'),
            (select role from public.account_members where account_id = a.id and user_id = '12000000-0000-4000-8000-000000000001')
     from public.accounts a where a.slug = 'acme-hq' $$,
  $$ values ('12000000-0000-4000-8000-000000000002'::uuid, 'owner', 'admin') $$,
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
  $$ select name from public.update_account('12000000-0000-4000-8000-000000000001', name => 'My Space') $$,
  $$ values ('My Space') $$,
  'a user renames their personal account');
select throws_ok($$ select public.update_account('12000000-0000-4000-8000-000000000001', slug => 'my-space') $$,
  '22023', 'personal_account', 'a personal account gets no slug');

-- ---------------------------------------------------------------------------
-- Removing members and leaving
-- ---------------------------------------------------------------------------
-- acme-world now: admin (12..02) primary owner; owner (12..01) admin; member (..03) member;
-- viewer (..04) member; newbie (..06) viewer.
select tests.authenticate_as('member');
select throws_ok($$ select public.remove_member(tests.account_id('acme-world'), '12000000-0000-4000-8000-000000000006') $$,
  '42501', 'permission denied', 'a member cannot remove anyone');
select tests.authenticate_as('owner');
select throws_ok($$ select public.remove_member(tests.account_id('acme-world'), '12000000-0000-4000-8000-000000000002') $$,
  '42501', 'permission denied', 'an admin cannot remove the owner');
select lives_ok($$ select public.remove_member(account_id => tests.account_id('acme-world'), user_id => '12000000-0000-4000-8000-000000000006') $$,
  'an admin removes a viewer');
select throws_ok($$ select public.remove_member(tests.account_id('acme-world'), '12000000-0000-4000-8000-000000000006') $$,
  'PT404', 'not_found', 'a removed member is no longer there');
select throws_ok($$ select public.remove_member('12000000-0000-4000-8000-000000000001', '12000000-0000-4000-8000-000000000003') $$,
  '22023', 'personal_account', 'nobody can be removed from a personal account');
select tests.authenticate_as('viewer');
select lives_ok($$ select public.leave_account(account_id => tests.account_id('acme-world')) $$, 'a member leaves the team');
select throws_ok($$ select public.leave_account(tests.account_id('acme-world')) $$, 'PT404', 'not_found', 'and cannot leave twice');
select throws_ok($$ select public.leave_account('12000000-0000-4000-8000-000000000004') $$,
  '22023', 'personal_account', 'a personal account cannot be left');
select tests.authenticate_as('admin');
select throws_ok($$ select public.leave_account(tests.account_id('acme-world')) $$,
  '22023', 'last_owner', 'the only owner cannot leave');
select tests.clear_authentication();
select results_eq(
  $$ select user_id from public.account_members where account_id = tests.account_id('acme-world') order by user_id $$,
  $$ values ('12000000-0000-4000-8000-000000000001'::uuid), ('12000000-0000-4000-8000-000000000002'::uuid), ('12000000-0000-4000-8000-000000000003'::uuid) $$,
  'the team keeps its owner, the admin and the member');
select results_eq(
  $$ select (select count(*)::int from public.accounts where id = '12000000-0000-4000-8000-000000000004'),
            (select count(*)::int from public.account_members where account_id = '12000000-0000-4000-8000-000000000004') $$,
  $$ values (1, 1) $$,
  'the leaver''s personal account is untouched');

-- A primary owner who leaves while another owner exists hands the team over.
select tests.authenticate_as('admin');
select lives_ok($$ select public.set_member_role(tests.account_id('acme-world'), '12000000-0000-4000-8000-000000000001', 'owner') $$,
  'the owner makes the former owner an owner again');
select lives_ok($$ select public.leave_account(tests.account_id('acme-world')) $$,
  'the primary owner leaves now that another owner exists');
select tests.clear_authentication();
select is((select primary_owner from public.accounts where slug = 'acme-world'), '12000000-0000-4000-8000-000000000001'::uuid,
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
select throws_ok($$ select public.delete_account('12000000-0000-4000-8000-000000000001') $$,
  '22023', 'personal_account', 'a personal account is not deleted by delete_account');
select lives_ok($$ select public.delete_account(account_id => tests.account_id('acme-world')) $$, 'the owner deletes the team');
select tests.clear_authentication();
select results_eq(
  $$ select (select count(*)::int from public.accounts where slug = 'acme-world'),
            (select count(*)::int from public.account_members m where not exists (select 1 from public.accounts a where a.id = m.account_id)),
            (select count(*)::int from public.account_invitations where email in ('hourly@accounts.test', 'seconds@accounts.test', 'x@accounts.test')),
            (select count(*)::int from private.invitation_tokens) $$,
  $$ values (0, 0, 0, 0) $$,
  'the team, its memberships, its invitations and their tokens are gone');
select is((select count(*)::int from public.accounts where id = '12000000-0000-4000-8000-000000000001'), 1,
  'the owner''s personal account remains');

select * from finish();
rollback;
