-- The audit log (docs/audit.md): every audited action writes exactly the expected entries, with
-- the actor, the request context and before/after; nobody can change the log; members with
-- audit.read and staff admins read it; the hash chain exposes tampering.
-- Personas: owner, admin, member, viewer, stranger, staff admin, service_role, anon.
begin;
select plan(44);

select tests.freeze_time('2031-05-01 09:00:00+00');
-- Invitations are the subject here, not the plan's member limit (14_identity_member_limits):
-- the teams are on the free plan, whose max_members is lifted inside this transaction.
update public.plans set max_members = null where key = 'free';
select tests.create_users('owner', 'admin', 'member', 'viewer', 'stranger', 'staff');
select tests.make_staff_admin('staff');

-- Test plumbing: what was logged since the last mark.
create table tests.audit_mark (id bigint);
insert into tests.audit_mark select coalesce(max(id), 0) from public.audit_log;
create function tests.new_audit()
returns table (action text, actor_user_id uuid, actor_role text, account_id uuid, entity_id text, before jsonb, after jsonb, ip text, user_agent text)
language sql stable set search_path = '' as $$
  select a.action, a.actor_user_id, a.actor_role, a.account_id, a.entity_id, a.before, a.after, a.ip, a.user_agent
  from public.audit_log a where a.id > (select m.id from tests.audit_mark m) order by a.id
$$;
create function tests.advance_audit_mark() returns void language sql set search_path = '' as $$
  update tests.audit_mark set id = (select coalesce(max(a.id), 0) from public.audit_log a)
$$;

-- ---------------------------------------------------------------------------
-- Memberships and invitations
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
select public.create_team_account('Audit Team', 'audit-team');
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, actor_role, account_id, after, ip, user_agent from tests.new_audit() $$,
  $$ values ('member.added', tests.user_id('owner'), 'authenticated', tests.account_id('audit-team'),
             jsonb_build_object('role', 'owner', 'user_id', tests.user_id('owner')), '203.0.113.7', 'pgtap') $$,
  'creating a team logs one entry: its owner was added, by the owner, with the request''s IP and user agent');
select tests.advance_audit_mark();

select tests.authenticate_as('owner');
select tests.invite('admin', tests.account_id('audit-team'), 'admin@test.ledgerbase.dev', 'admin');
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, entity_id, after ->> 'email', after ->> 'role', before from tests.new_audit() $$,
  $$ select 'invitation.created', tests.user_id('owner'), invitation_id::text, 'admin@test.ledgerbase.dev', 'admin', null::jsonb
     from tests.invitations where label = 'admin' $$,
  'an invitation logs one invitation.created entry with the email and role, by the inviter');
select tests.advance_audit_mark();

select tests.authenticate_as('admin');
select public.accept_invitation((select token from tests.invitations where label = 'admin'));
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, after ->> 'role' from tests.new_audit() $$,
  $$ values ('member.added', tests.user_id('admin'), 'admin'),
            ('invitation.accepted', tests.user_id('admin'), 'admin') $$,
  'accepting logs member.added and invitation.accepted, once each, by the invitee');

-- The member and the viewer join the same way.
select tests.authenticate_as('admin');
select tests.invite(label, tests.account_id('audit-team'), label || '@test.ledgerbase.dev', role)
from (values ('member', 'member'), ('viewer', 'viewer'), ('nobody', 'member')) v (label, role);
select tests.authenticate_as('member');
select public.accept_invitation((select token from tests.invitations where label = 'member'));
select tests.authenticate_as('viewer');
select public.accept_invitation((select token from tests.invitations where label = 'viewer'));
select tests.clear_authentication();
select tests.advance_audit_mark();

select tests.authenticate_as('owner');
select public.set_member_role(tests.account_id('audit-team'), tests.user_id('viewer'), 'member');
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, entity_id, before, after from tests.new_audit() $$,
  $$ values ('member.role_changed', tests.user_id('owner'), tests.user_id('viewer')::text,
             '{"role": "viewer"}'::jsonb, '{"role": "member"}'::jsonb) $$,
  'a role change logs one entry with the role before and after');
select tests.advance_audit_mark();

select tests.authenticate_as('owner');
select public.set_member_role(tests.account_id('audit-team'), tests.user_id('viewer'), 'member');
select tests.clear_authentication();
select is((select count(*)::int from tests.new_audit()), 0, 'setting the role a member already has logs nothing');

select tests.authenticate_as('admin');
select public.revoke_invitation((select invitation_id from tests.invitations where label = 'nobody'));
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, before ->> 'email', after from tests.new_audit() $$,
  $$ values ('invitation.revoked', tests.user_id('admin'), 'nobody@test.ledgerbase.dev', null::jsonb) $$,
  'revoking an invitation logs one invitation.revoked entry');
select tests.advance_audit_mark();

select tests.authenticate_as('owner');
select public.remove_member(tests.account_id('audit-team'), tests.user_id('viewer'));
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, entity_id, before, after from tests.new_audit() $$,
  $$ values ('member.removed', tests.user_id('owner'), tests.user_id('viewer')::text,
             jsonb_build_object('role', 'member', 'user_id', tests.user_id('viewer')), null::jsonb) $$,
  'removing a member logs one member.removed entry with the membership before');
select tests.advance_audit_mark();

select tests.authenticate_as('owner');
select public.update_account(tests.account_id('audit-team'), name => 'Audit Team Renamed');
select tests.clear_authentication();
select results_eq(
  $$ select action, before, after from tests.new_audit() $$,
  $$ values ('account.updated', '{"name": "Audit Team"}'::jsonb, '{"name": "Audit Team Renamed"}'::jsonb) $$,
  'renaming an account logs only the changed field');
select tests.advance_audit_mark();

select tests.authenticate_as('owner');
select public.transfer_ownership(tests.account_id('audit-team'), tests.user_id('admin'));
select tests.clear_authentication();
select set_eq(
  $$ select action, entity_id, before, after from tests.new_audit() $$,
  $$ values ('account.ownership_transferred', tests.account_id('audit-team')::text,
             jsonb_build_object('primary_owner', tests.user_id('owner')),
             jsonb_build_object('primary_owner', tests.user_id('admin'))),
            ('member.role_changed', tests.user_id('owner')::text, '{"role": "owner"}'::jsonb, '{"role": "admin"}'::jsonb),
            ('member.role_changed', tests.user_id('admin')::text, '{"role": "admin"}'::jsonb, '{"role": "owner"}'::jsonb) $$,
  'a transfer logs the new primary owner and both role changes');
select tests.advance_audit_mark();

-- ---------------------------------------------------------------------------
-- Money: staff adjustments are audited, metering is not
-- ---------------------------------------------------------------------------
select tests.authenticate_as('staff');
select public.admin_adjust_credits(tests.account_id('audit-team'), 100, 'goodwill for the outage', 'adj-1');
select public.admin_adjust_credits(tests.account_id('audit-team'), -30, 'duplicate grant', 'adj-2');
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, actor_role, account_id, before, after - 'idempotency_key' from tests.new_audit() $$,
  $$ values ('credits.adjusted', tests.user_id('staff'), 'authenticated', tests.account_id('audit-team'),
             '{"balance": 0, "available": 0}'::jsonb,
             '{"balance": 100, "available": 100, "delta": 100, "reason": "goodwill for the outage"}'::jsonb),
            ('credits.adjusted', tests.user_id('staff'), 'authenticated', tests.account_id('audit-team'),
             '{"balance": 100, "available": 100}'::jsonb,
             '{"balance": 70, "available": 70, "delta": -30, "reason": "duplicate grant"}'::jsonb) $$,
  'each staff adjustment logs one entry: the staff admin, the balance before and after, the delta and the reason');
select tests.advance_audit_mark();

select tests.authenticate_as_service_role();
select public.admin_adjust_credits(tests.account_id('audit-team'), 5, 'credit from the support tool', 'adj-3');
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, actor_role, after ->> 'delta' from tests.new_audit() $$,
  $$ values ('credits.adjusted', null::uuid, 'service_role', '5') $$,
  'an adjustment by the service role is logged with the service role as actor');
select tests.advance_audit_mark();

select tests.authenticate_as('member');
select public.consume_credits(tests.account_id('audit-team'), 'api_call', 3);
select public.reserve_credits(tests.account_id('audit-team'), 'api_call', 2);
select tests.clear_authentication();
select is((select count(*)::int from tests.new_audit()), 0, 'consuming and reserving credits (the hot path) log nothing');

-- ---------------------------------------------------------------------------
-- The catalog
-- ---------------------------------------------------------------------------
select tests.authenticate_as('staff');
update public.plans set price_cents = price_cents + 100 where key = 'pro';
update public.plans set name = name where key = 'pro';
insert into public.credit_packs (key, name, credits, price_cents) values ('audit_pack', 'Audit pack', 10, 100);
delete from public.credit_packs where key = 'audit_pack';
update public.billable_actions set credits = 2 where key = 'api_call';
select tests.clear_authentication();
select results_eq(
  $$ select action, entity_id, account_id, actor_user_id from tests.new_audit() $$,
  $$ values ('plan.updated', 'pro', null::uuid, tests.user_id('staff')),
            ('credit_pack.created', 'audit_pack', null::uuid, tests.user_id('staff')),
            ('credit_pack.deleted', 'audit_pack', null::uuid, tests.user_id('staff')),
            ('billable_action.updated', 'api_call', null::uuid, tests.user_id('staff')) $$,
  'catalog changes by a staff admin log one entry each; an update that changes nothing logs nothing');
select is(
  (select before || after from tests.new_audit() where action = 'plan.updated'),
  jsonb_build_object('price_cents', (select price_cents - 100 from public.plans where key = 'pro'))
    || jsonb_build_object('price_cents', (select price_cents from public.plans where key = 'pro')),
  'a catalog update logs only the changed fields');
select is(
  (select (before is null) and after ->> 'credits' = '10' and after ->> 'price_cents' = '100'
   from tests.new_audit() where action = 'credit_pack.created'),
  true, 'a created catalog row is logged whole in after');
select tests.advance_audit_mark();

-- ---------------------------------------------------------------------------
-- Billing's entry point: private.audit from a server, with and without a request
-- ---------------------------------------------------------------------------
select private.audit('subscription.updated', 'subscription', 'sub_123', tests.account_id('audit-team'), '{"status": "trialing"}', '{"status": "active"}');
select results_eq(
  $$ select action, actor_user_id, actor_role, account_id, entity_id, before, after, ip from tests.new_audit() $$,
  $$ values ('subscription.updated', null::uuid, 'system', tests.account_id('audit-team'), 'sub_123',
             '{"status": "trialing"}'::jsonb, '{"status": "active"}'::jsonb, null::text) $$,
  'private.audit from a job records actor system, no user and no request context');
select tests.advance_audit_mark();
-- A server's request context (as the webhook function would set it) is recorded.
select set_config('request.headers', '{"x-forwarded-for": "203.0.113.9, 198.51.100.4", "user-agent": "Stripe/1.0"}', true);
select private.audit('payment.succeeded', 'payment', 'pi_1', tests.account_id('audit-team'), null, '{"amount_cents": 500}');
select results_eq(
  $$ select action, actor_role, ip, user_agent from tests.new_audit() $$,
  $$ values ('payment.succeeded', 'system', '198.51.100.4', 'Stripe/1.0') $$,
  'the request context comes from request.headers: the x-forwarded-for hop the gateway appended and the user agent');
select set_config('request.headers', '', true);
select tests.advance_audit_mark();

-- ---------------------------------------------------------------------------
-- Who reads the log (RLS) — before the team is deleted
-- ---------------------------------------------------------------------------
create table tests.total as select count(*) as n from public.audit_log;
grant select on tests.total to authenticated, service_role;
select tests.authenticate_as('admin');  -- the owner now
select ok((select count(*) from public.audit_log where account_id = tests.account_id('audit-team')) >= 15,
  'the owner (audit.read) reads the team''s entries');
select is((select count(*)::int from public.audit_log where account_id is distinct from tests.account_id('audit-team')), 0,
  'the owner reads nothing of other accounts, nor operator-wide catalog entries');
select tests.authenticate_as('owner');  -- now an admin of the team, who also holds audit.read
select ok((select count(*) from public.audit_log where account_id = tests.account_id('audit-team')) >= 15,
  'an admin (audit.read) reads the team''s entries');
select tests.authenticate_as('member');
select is((select count(*)::int from public.audit_log), 0, 'a member (no audit.read) reads nothing');
select tests.authenticate_as('stranger');
select is((select count(*)::int from public.audit_log), 0, 'a stranger reads nothing');
select tests.authenticate_as('viewer');
select is((select count(*)::int from public.audit_log), 0, 'a former member reads nothing');
select tests.authenticate_as('staff');
select is((select count(*) from public.audit_log), (select n from tests.total),
  'a staff admin reads every entry, catalog included');
select tests.authenticate_as_service_role();
select is((select count(*) from public.audit_log), (select n from tests.total),
  'the service role reads every entry');
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from public.audit_log $$, '42501', null, 'anon cannot read the audit log');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Append-only for every role
-- ---------------------------------------------------------------------------
select tests.authenticate_as('staff');
select throws_ok($$ update public.audit_log set action = 'x.y' $$, '42501', null, 'a staff admin cannot update entries');
select throws_ok($$ delete from public.audit_log $$, '42501', null, 'a staff admin cannot delete entries');
select throws_ok($$ insert into public.audit_log (actor_role, action, entity, prev_hash, hash) values ('system', 'x.y', 'x', repeat('0', 64), repeat('1', 64)) $$,
  '42501', null, 'a staff admin cannot insert entries directly');
select tests.authenticate_as('admin');
select throws_ok($$ update public.audit_log set after = null where account_id = tests.account_id('audit-team') $$, '42501', null, 'an owner cannot update entries');
select throws_ok($$ delete from public.audit_log where account_id = tests.account_id('audit-team') $$, '42501', null, 'an owner cannot delete entries');
select tests.authenticate_as_service_role();
select throws_ok($$ update public.audit_log set action = 'x.y' $$, '42501', null, 'the service role cannot update entries');
select throws_ok($$ delete from public.audit_log $$, '42501', null, 'the service role cannot delete entries');
select throws_ok($$ truncate public.audit_log $$, '42501', null, 'the service role cannot truncate the log');
select throws_ok($$ insert into public.audit_log (actor_role, action, entity, prev_hash, hash) values ('system', 'x.y', 'x', repeat('0', 64), repeat('1', 64)) $$,
  '42501', null, 'the service role cannot insert entries directly');
select tests.authenticate_as_anon();
select throws_ok($$ delete from public.audit_log $$, '42501', null, 'anon cannot delete entries');
select tests.clear_authentication();
-- Even the table owner (the migration role) is refused by the trigger.
select throws_ok($$ update public.audit_log set action = 'x.y' where id = (select max(id) from public.audit_log) $$,
  '42501', 'permission denied', 'the table owner cannot update entries either');
select throws_ok($$ delete from public.audit_log where id = (select max(id) from public.audit_log) $$,
  '42501', 'permission denied', 'the table owner cannot delete entries either');
select throws_ok($$ truncate public.audit_log $$, '42501', 'permission denied', 'the table owner cannot truncate the log');

-- ---------------------------------------------------------------------------
-- Account deletion: one entry, not one per cascaded row
-- ---------------------------------------------------------------------------
select tests.advance_audit_mark();
select tests.authenticate_as('admin');
select public.delete_account(tests.account_id('audit-team'));
select tests.clear_authentication();
select results_eq(
  $$ select action, actor_user_id, entity_id, before ->> 'kind', before ->> 'slug', after from tests.new_audit() $$,
  $$ values ('account.deleted', tests.user_id('admin'),
             (select entity_id from public.audit_log where action = 'account.updated' order by id desc limit 1),
             'team', 'audit-team', null::jsonb) $$,
  'deleting a team logs exactly one account.deleted entry (memberships and invitations go with it silently)');
select ok((select count(*) from public.audit_log where account_id = (select entity_id::uuid from tests.new_audit())) >= 16,
  'the deleted team''s entries survive it');
select tests.advance_audit_mark();

create temp table deleted_stranger on commit drop as select tests.user_id('stranger')::text as id;
delete from auth.users where id = tests.user_id('stranger');
select results_eq(
  $$ select action, entity_id, before ->> 'kind', actor_role from tests.new_audit() $$,
  $$ select 'account.deleted', id, 'personal', 'system' from deleted_stranger $$,
  'deleting a user logs the deletion of their personal account');
select tests.advance_audit_mark();

-- ---------------------------------------------------------------------------
-- The hash chain (tampering is the subject of 34_audit_chain)
-- ---------------------------------------------------------------------------
select private.seal_audit_log();
select is((select count(*)::int from public.audit_log where sealed_at is null), 0,
  'one sealer run links every entry written here into the chain');
select is_empty($$ select * from private.verify_audit_chain() $$, 'after all of this the chain is intact');

select * from finish();
rollback;
