-- Row-level security reads the caller's permissions from one view, access.caller_permissions
-- (docs/security.md#how-policies-read-permissions): the same answers as before, from the live
-- memberships, for the caller only.
--
-- World: team "t60-team" of Ivy (owner), Jon (member), Vic (viewer) and Ana, whom Ivy gives a
-- custom "billing" role; Mallory, owner of her own team "t60-other"; Sam, a staff admin. The
-- team's wallet is funded, so its ledger has rows to read.
begin;
select plan(23);

select tests.create_users('t60_ana', 't60_sam');
select tests.team('t60-team', owner => 't60_ivy', members => '{t60_jon, t60_ana}', viewers => '{t60_vic}');
select tests.team('t60-other', owner => 't60_mallory');
select tests.make_staff_admin('t60_sam');
select tests.fund_wallet(tests.account_id('t60-team'), 50, 'opening credits');
select tests.fund_wallet(tests.account_id('t60-other'), 20, 'opening credits');

select tests.authenticate_as('t60_ivy');
select public.create_role(tests.account_id('t60-team'), 'billing', 'Billing', '{billing.read, billing.manage}');
select public.set_member_role(tests.account_id('t60-team'), tests.user_id('t60_ana'), 'billing');
select tests.clear_authentication();

-- What a system role grants, read as the test runner (the expected side of the comparisons).
create function tests.t60_role_permissions(role_key text) returns setof text
language sql stable security definer set search_path = '' as $$
  select rp.permission from public.role_permissions rp join public.roles r on r.id = rp.role_id
  where r.key = t60_role_permissions.role_key and r.account_id is null
$$;
grant execute on function tests.t60_role_permissions(text) to authenticated;

-- ---------------------------------------------------------------------------
-- Each caller sees their own permissions, and nobody else's
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t60_jon');
select set_eq(
  $$ select distinct account_id from access.caller_permissions $$,
  array[tests.account_id('t60_jon'), tests.account_id('t60-team')],
  'Jon sees rows for his personal account and the team he belongs to, no other account');
select set_eq(
  $$ select permission from access.caller_permissions where account_id = tests.account_id('t60-team') $$,
  $$ select tests.t60_role_permissions('member') $$,
  'in the team, exactly what the member role grants');

select tests.authenticate_as('t60_ana');
select set_eq(
  $$ select permission from access.caller_permissions where account_id = tests.account_id('t60-team') $$,
  array['billing.manage', 'billing.read'],
  'Ana, on the custom billing role, holds billing.read and billing.manage in the team and nothing else');

select tests.authenticate_as('t60_mallory');
select is((select count(*)::int from access.caller_permissions where account_id = tests.account_id('t60-team')), 0,
  'Mallory, a stranger to the team, sees none of its permissions');
select is((select count(*)::int from access.caller_permissions where account_id <> all (array[tests.account_id('t60_mallory'), tests.account_id('t60-other')])),
  0, 'what she sees is her own accounts only');

select tests.authenticate_as_anon();
select throws_ok($$ select * from access.caller_permissions $$, '42501', null, 'the anon key cannot read the view');
select tests.authenticate_as('t60_jon');
select throws_ok(
  $$ insert into access.caller_permissions (account_id, permission) values (tests.account_id('t60-team'), 'account.delete') $$,
  '55000', null, 'Jon cannot write himself a permission through the view: it is not writable');
select tests.clear_authentication();
select ok(not has_table_privilege('authenticated', 'access.caller_permissions', 'insert, update, delete, truncate'),
  'and no API role is granted a write on it');

-- A view's own filter runs before a caller's conditions only with the barrier: without it, a
-- cheap function of the caller's could be shown other users' rows.
select is((select c.reloptions from pg_catalog.pg_class c where c.oid = 'access.caller_permissions'::regclass),
  '{security_barrier=true}', 'the view is a security barrier');

-- ---------------------------------------------------------------------------
-- has_permission and user_account_ids give the view's answers
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t60_ana');
select ok(public.has_permission(tests.account_id('t60-team'), 'billing.manage')
          and not public.has_permission(tests.account_id('t60-team'), 'credits.read'),
  'has_permission: Ana may manage billing in the team, but not read its credits');
select set_eq($$ select public.user_account_ids('billing.read') $$,
  array[tests.account_id('t60_ana'), tests.account_id('t60-team')],
  'user_account_ids(''billing.read''): her personal account and the team');
select is((select count(*)::int from public.user_account_ids('credits.read') a where a = tests.account_id('t60-team')), 0,
  'user_account_ids(''credits.read'') leaves the team out');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- The policies read the view, and let through what they did before
-- ---------------------------------------------------------------------------
select is(
  (select count(*)::int from pg_catalog.pg_policies
    where coalesce(qual, '') ~ 'user_account_ids\(''' or coalesce(with_check, '') ~ 'user_account_ids\('''),
  0, 'no policy calls user_account_ids for a permission: they all read access.caller_permissions');

select * from tests.rls_seen('{t60_ivy, t60_jon, t60_vic, t60_ana, t60_mallory, t60_sam}',
  $$ select count(*)::int > 0 from public.credit_ledger where account_id = tests.account_id('t60-team') $$,
  '{true, true, true, false, false, true}',
  'the team''s ledger: its members with credits.read and the staff admin see it; Ana (billing only) and Mallory do not');

-- ---------------------------------------------------------------------------
-- Changes to memberships and roles count at once (no token to refresh)
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t60_ivy');
select public.remove_member(tests.account_id('t60-team'), tests.user_id('t60_jon'));
select public.set_member_role(tests.account_id('t60-team'), tests.user_id('t60_ana'), 'viewer');
select tests.authenticate_as('t60_jon');
select is((select count(*)::int from access.caller_permissions where account_id = tests.account_id('t60-team')), 0,
  'Jon, removed from the team, holds nothing in it any more');
select is((select count(*)::int from public.credit_ledger where account_id = tests.account_id('t60-team')), 0,
  'and reads none of its ledger in the same session');
select tests.authenticate_as('t60_ana');
select set_eq(
  $$ select permission from access.caller_permissions where account_id = tests.account_id('t60-team') $$,
  $$ select tests.t60_role_permissions('viewer') $$,
  'Ana, moved to viewer, holds exactly what the viewer role grants');
select ok((select count(*) from public.credit_ledger where account_id = tests.account_id('t60-team')) > 0,
  'and now reads the team''s ledger');
select tests.clear_authentication();

select * from finish();
rollback;
