-- Invitations to a team account (docs/accounts.md#invitations, docs/rpc.md, docs/errors.md): who may invite with which role, the
-- token (shown once, stored hashed), who may accept, single use, replacement, expiry and its
-- setting, confirmation, revocation.
-- Personas: the owner of team acme-hq; admin, member and viewer join through invitations;
-- newbie is invited twice; late too late; unconfirmed has not confirmed the email; a stranger.
begin;
select plan(38);

select tests.freeze_time('2031-03-01 10:00:00+00');
-- Invitations are the subject here, not the plan's member limit (14_identity_member_limits):
-- the teams are on the free plan, whose max_members is lifted inside this transaction.
update public.plans set max_members = null where key = 'free';
select tests.team('acme-hq', owner => 'owner', name => 'Acme Inc');
select tests.create_users('admin', 'member', 'viewer', 'stranger', 'newbie', 'late', 'unconfirmed');
update auth.users set email_confirmed_at = null where id = tests.user_id('unconfirmed');

-- ---------------------------------------------------------------------------
-- Invitations
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
insert into tests.invitations (label, token, invitation_id, expires_at)
select label, r ->> 'token', (r ->> 'invitation_id')::uuid, (r ->> 'expires_at')::timestamptz
from (values
  ('admin', public.invite_member(tests.account_id('acme-hq'), 'Admin@Test.ledgerbase.dev', 'admin')),
  ('member', public.invite_member(account_id => tests.account_id('acme-hq'), email => 'member@test.ledgerbase.dev')),
  ('viewer', public.invite_member(tests.account_id('acme-hq'), 'viewer@test.ledgerbase.dev', 'viewer'))
) v (label, r);
select tests.clear_authentication();

select is(
  (select expires_at from tests.invitations where label = 'member'),
  '2031-03-08 10:00:00+00'::timestamptz,
  'an invitation expires after the invitation_ttl setting (7 days)');
select ok(
  (select bool_and(token ~ '^[A-Za-z0-9_-]{43}$') from tests.invitations),
  'tokens are 32 random bytes in base64url');
select results_eq(
  $$ select i.email, i.role from public.account_invitations i join tests.invitations t on t.invitation_id = i.id where t.label = 'admin' $$,
  $$ values ('admin@test.ledgerbase.dev', 'admin') $$,
  'the invited email is stored lower-case with the role');
select is(
  (select count(*)::int from tests.invitations t join private.invitation_tokens it on it.invitation_id = t.invitation_id
   where it.token_hash = encode(extensions.digest(t.token, 'sha256'), 'hex')),
  3,
  'only the sha256 of each token is stored, out of the API''s reach');
select hasnt_column('public', 'account_invitations', 'token', 'the invitations table has no token column');
select hasnt_column('public', 'account_invitations', 'token_hash', 'the invitations table exposes no token hash either');

-- The right people accept.
select tests.authenticate_as('admin');
select is(public.accept_invitation((select token from tests.invitations where label = 'admin')), tests.account_id('acme-hq'),
  'accept_invitation returns the account id');
select tests.authenticate_as('member');
select lives_ok($$ select public.accept_invitation(token => (select token from tests.invitations where label = 'member')) $$, 'the member accepts');
select tests.authenticate_as('viewer');
select lives_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'viewer')) $$, 'the viewer accepts');
select tests.clear_authentication();
select results_eq(
  $$ select user_id, role from public.account_members where account_id = tests.account_id('acme-hq') order by role $$,
  $$ values (tests.user_id('admin'), 'admin'), (tests.user_id('member'), 'member'),
            (tests.user_id('owner'), 'owner'), (tests.user_id('viewer'), 'viewer') $$,
  'each joined with the invited role');
select is(
  (select accepted_by from public.account_invitations i join tests.invitations t on t.invitation_id = i.id where t.label = 'member'),
  tests.user_id('member'),
  'the invitation records who accepted it');

-- Single use.
select tests.authenticate_as('member');
select throws_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'member')) $$,
  'PT410', 'gone', 'a used invitation is gone');
select throws_ok($$ select public.accept_invitation('not-a-real-token') $$, 'PT404', 'not_found', 'an unknown token is not found');
select throws_ok($$ select public.accept_invitation(null) $$, 'PT404', 'not_found', 'a null token is not found');

-- Only the invited email may accept.
select tests.authenticate_as('owner');
select tests.invite('newbie', tests.account_id('acme-hq'), 'newbie@test.ledgerbase.dev', 'member');
select tests.authenticate_as('stranger');
select throws_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'newbie')) $$,
  '42501', 'permission denied', 'someone else holding the token cannot accept it');
select tests.clear_authentication();
select results_eq(
  $$ select (select accepted_at from public.account_invitations i join tests.invitations t on t.invitation_id = i.id where t.label = 'newbie'),
            (select count(*)::int from public.account_members where account_id = tests.account_id('acme-hq') and user_id = tests.user_id('stranger')) $$,
  $$ values (null::timestamptz, 0) $$,
  'the invitation stays pending and the stranger did not join');

-- Inviting again replaces the pending invitation.
select tests.authenticate_as('owner');
select tests.invite('newbie_again', tests.account_id('acme-hq'), 'NEWBIE@test.ledgerbase.dev', 'viewer');
select tests.clear_authentication();
select results_eq(
  $$ select role from public.account_invitations where account_id = tests.account_id('acme-hq') and email = 'newbie@test.ledgerbase.dev' $$,
  $$ values ('viewer') $$,
  're-inviting an email leaves one pending invitation, the new one');
select tests.authenticate_as('newbie');
select throws_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'newbie')) $$,
  'PT404', 'not_found', 'the replaced invitation''s token no longer works');
select lives_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'newbie_again')) $$,
  'the new token works for the invited email (any case)');

-- Expiry: 7 days and 1 second later the invitation is gone.
select tests.authenticate_as('owner');
select tests.invite('late', tests.account_id('acme-hq'), 'late@test.ledgerbase.dev');
select tests.freeze_time('2031-03-08 10:00:01+00');
select tests.authenticate_as('late');
select throws_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'late')) $$,
  'PT410', 'gone', 'an expired invitation is gone');
select tests.freeze_time('2031-03-01 10:00:00+00');
select tests.clear_authentication();
select is((select count(*)::int from public.account_members where user_id = tests.user_id('late') and account_id = tests.account_id('acme-hq')), 0,
  'the late invitee did not join');

-- The TTL is a setting.
update private.settings set value = '"1 hour"' where key = 'invitation_ttl';
select tests.authenticate_as('owner');
select is(
  (public.invite_member(tests.account_id('acme-hq'), 'hourly@test.ledgerbase.dev') ->> 'expires_at')::timestamptz,
  '2031-03-01 11:00:00+00'::timestamptz,
  'changing invitation_ttl changes the expiry of new invitations');
select tests.clear_authentication();
update private.settings set value = '604800' where key = 'invitation_ttl';
select tests.authenticate_as('owner');
select is(
  (public.invite_member(tests.account_id('acme-hq'), 'seconds@test.ledgerbase.dev') ->> 'expires_at')::timestamptz,
  '2031-03-08 10:00:00+00'::timestamptz,
  'invitation_ttl may also be a number of seconds');

-- An unconfirmed email cannot accept.
select tests.invite('unconfirmed', tests.account_id('acme-hq'), 'unconfirmed@test.ledgerbase.dev');
select tests.authenticate_as('unconfirmed');
select throws_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'unconfirmed')) $$,
  '42501', 'permission denied', 'a user whose email is not confirmed cannot accept');

-- Who may invite, and with which role.
select tests.authenticate_as('member');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@test.ledgerbase.dev') $$,
  '42501', 'permission denied', 'a member cannot invite');
select tests.authenticate_as('viewer');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@test.ledgerbase.dev') $$,
  '42501', 'permission denied', 'a viewer cannot invite');
select tests.authenticate_as('stranger');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@test.ledgerbase.dev') $$,
  '42501', 'permission denied', 'a stranger cannot invite');
select tests.authenticate_as('admin');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@test.ledgerbase.dev', 'owner') $$,
  '42501', 'permission denied', 'an admin cannot invite an owner');
select lives_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'x@test.ledgerbase.dev', 'admin') $$,
  'an admin can invite another admin');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'member@test.ledgerbase.dev') $$,
  'PT409', 'already_member', 'inviting a member is a conflict');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'not an email') $$,
  '22023', 'invalid_email', 'a malformed email is refused');
select throws_ok($$ select public.invite_member(tests.account_id('acme-hq'), 'y@test.ledgerbase.dev', 'superuser') $$,
  '22023', 'invalid_role', 'an unknown role is refused');
select throws_ok($$ select public.invite_member(tests.account_id('admin'), 'y@test.ledgerbase.dev') $$,
  '22023', 'personal_account', 'a personal account cannot be shared');
select tests.clear_authentication();
select is((select count(*)::int from public.account_invitations where email = 'y@test.ledgerbase.dev'), 0, 'refused invitations left nothing');

-- Revoking.
select tests.authenticate_as('owner');
select tests.invite('revoked', tests.account_id('acme-hq'), 'revoked@test.ledgerbase.dev');
select tests.authenticate_as('member');
select throws_ok($$ select public.revoke_invitation((select invitation_id from tests.invitations where label = 'revoked')) $$,
  '42501', 'permission denied', 'a member cannot revoke an invitation');
select tests.authenticate_as('admin');
select lives_ok($$ select public.revoke_invitation(invitation_id => (select invitation_id from tests.invitations where label = 'revoked')) $$,
  'an admin revokes an invitation');
select throws_ok($$ select public.revoke_invitation((select invitation_id from tests.invitations where label = 'revoked')) $$,
  'PT404', 'not_found', 'a revoked invitation is not found any more');
select throws_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'revoked')) $$,
  'PT404', 'not_found', 'and its token does not work');

select * from finish();
rollback;
