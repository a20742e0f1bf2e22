-- The member limit of team accounts (docs/accounts.md#invitations, docs/catalog.md#plans for max_members, docs/errors.md): invite_member and
-- accept_invitation refuse, under the account lock, what would exceed plans.max_members of
-- the account's plan (private.account_plan; the owner counts; for invitations, so do the
-- pending unexpired ones). Teams here are on the free plan (no subscription), whose
-- max_members the stories change inside this transaction (rolled back).
-- Personas: Olga owns the team; Ann, Ben, Cal, Dee and Eve are invited.
begin;
select plan(35);

select tests.freeze_time('2031-04-01 12:00:00+00');

select tests.create_users('olga', 'ann', 'ben', 'cal', 'dee', 'eve');

-- Test plumbing: the team's footprint (members and pending unexpired invitations, bypassing
-- RLS). Tokens are kept by tests.invite in tests.invitations.
create function tests.footprint() returns text
language sql stable security definer set search_path = '' as $$
  select (select count(*) from public.account_members m where m.account_id = tests.account_id('limits-14')) || ' members, '
      || (select count(*) from public.account_invitations i where i.account_id = tests.account_id('limits-14')
                                                        and i.accepted_at is null and i.expires_at > private.now())
      || ' pending'
$$;
grant execute on function tests.footprint() to authenticated;

select is((select max_members from public.plans where key = 'free'), 1,
  'the free plan allows one member: a team on it has its owner only');
select is((select plan_key from private.account_plan(tests.user_id('olga'))), 'free',
  'an account without a subscription is on the free plan');

-- ---------------------------------------------------------------------------
-- A team on free cannot grow past its owner
-- ---------------------------------------------------------------------------
select tests.authenticate_as('olga');
select lives_ok($$ select public.create_team_account('Limits', 'limits-14') $$, 'Olga creates a team on the free plan');
select throws_ok($$ select public.invite_member(tests.account_id('limits-14'), 'ann@test.ledgerbase.dev') $$,
  'PT409', 'member_limit_reached', 'on free (max_members 1), inviting anyone is refused');
select is(
  tests.caught($$ select public.invite_member(tests.account_id('limits-14'), 'ann@test.ledgerbase.dev') $$) - 'code' - 'message',
  jsonb_build_object(
    'detail', 'the free plan allows at most 1 member(s), the owner included; pending invitations count',
    'hint', 'upgrade the plan or remove a member'),
  'the error names the plan and its limit, and says what to do');
select is(tests.footprint(), '1 members, 0 pending', 'the refused invitation wrote nothing');
select tests.clear_authentication();
select is((select count(*)::int from public.audit_log where action = 'invitation.created' and account_id = tests.account_id('limits-14')), 0,
  'and logged no invitation');

-- ---------------------------------------------------------------------------
-- Inviting: members plus pending unexpired invitations fit max_members
-- ---------------------------------------------------------------------------
update public.plans set max_members = 3 where key = 'free';
select tests.authenticate_as('olga');
select tests.invite('ann', tests.account_id('limits-14'), 'ann@test.ledgerbase.dev');
select tests.freeze_time('2031-04-05 12:00:00+00');
select tests.invite('ben', tests.account_id('limits-14'), 'ben@test.ledgerbase.dev');
select is(tests.footprint(), '1 members, 2 pending', 'with max_members 3, the owner invites two people');
select throws_ok($$ select public.invite_member(tests.account_id('limits-14'), 'cal@test.ledgerbase.dev') $$,
  'PT409', 'member_limit_reached', 'a third invitation would make four: refused');
select is(tests.footprint(), '1 members, 2 pending', 'the refused invitation wrote nothing');
select lives_ok($$ select public.invite_member(tests.account_id('limits-14'), 'BEN@test.ledgerbase.dev', 'viewer') $$,
  'inviting a pending email again replaces its invitation: it is not counted twice');
select is(tests.footprint(), '1 members, 2 pending', 'still two pending invitations');
select tests.invite('ben', tests.account_id('limits-14'), 'ben@test.ledgerbase.dev');

-- Ann's invitation (sent 2031-04-01, valid 7 days) expires; it stops counting.
select tests.freeze_time('2031-04-09 12:00:00+00');
select tests.invite('cal', tests.account_id('limits-14'), 'cal@test.ledgerbase.dev');
select is((select token is not null from tests.invitations where label = 'cal'), true,
  'an expired invitation does not count: Cal''s invitation fits');
select throws_ok($$ select public.invite_member(tests.account_id('limits-14'), 'dee@test.ledgerbase.dev') $$,
  'PT409', 'member_limit_reached', 'owner + Ben + Cal pending = 3: a fourth is refused');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Accepting: members fit max_members, even when the limit was lowered after the invitation
-- ---------------------------------------------------------------------------
select tests.authenticate_as('ben');
select lives_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'ben')) $$, 'Ben accepts');
select tests.clear_authentication();
update public.plans set max_members = 2 where key = 'free';
select tests.authenticate_as('cal');
select throws_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'cal')) $$,
  'PT409', 'member_limit_reached', 'the plan now allows 2 and the team has 2: Cal cannot join');
select is(
  tests.caught($$ select public.accept_invitation((select token from tests.invitations where label = 'cal')) $$) ->> 'detail',
  'the free plan allows at most 2 member(s), the owner included',
  'the refusal names the plan and its current limit');
select tests.clear_authentication();
select is(tests.footprint(), '2 members, 1 pending', 'Cal is not a member and the invitation is still pending');
select is((select accepted_at from public.account_invitations where email = 'cal@test.ledgerbase.dev'), null,
  'the refused acceptance did not use up the invitation');

-- Room is made: Olga removes Ben; Cal's invitation now works.
select tests.authenticate_as('olga');
select lives_ok($$ select public.remove_member(tests.account_id('limits-14'), tests.user_id('ben')) $$, 'Olga removes Ben');
select tests.authenticate_as('cal');
select is(public.accept_invitation((select token from tests.invitations where label = 'cal')), tests.account_id('limits-14'),
  'with room again, Cal joins with the same invitation');
select tests.clear_authentication();
select is(tests.footprint(), '2 members, 0 pending', 'Olga and Cal');

-- An expired invitation is gone, whatever the limit says.
select tests.authenticate_as('ann');
select throws_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'ann')) $$,
  'PT410', 'gone', 'Ann''s expired invitation cannot be accepted');
select tests.clear_authentication();

-- Lowering a limit below the member count removes nobody; it only stops growth.
update public.plans set max_members = 1 where key = 'free';
select is(tests.footprint(), '2 members, 0 pending', 'a lowered limit removes nobody');
select tests.authenticate_as('olga');
select throws_ok($$ select public.invite_member(tests.account_id('limits-14'), 'dee@test.ledgerbase.dev') $$,
  'PT409', 'member_limit_reached', 'over the limit, inviting is refused');
select lives_ok($$ select public.set_member_role(tests.account_id('limits-14'), tests.user_id('cal'), 'viewer') $$,
  'managing the existing members still works');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Unlimited (max_members null) never refuses
-- ---------------------------------------------------------------------------
update public.plans set max_members = null where key = 'free';
select tests.authenticate_as('olga');
select tests.invite(label, tests.account_id('limits-14'), label || '@test.ledgerbase.dev')
from unnest(array['ann', 'ben', 'dee', 'eve']) label;
select lives_ok($$ select public.invite_member(tests.account_id('limits-14'), 'extra' || n || '@test.ledgerbase.dev') from generate_series(1, 10) n $$,
  'with max_members null, the owner invites ten more people');
select tests.clear_authentication();
select is(tests.footprint(), '2 members, 14 pending', 'every invitation was written');
select tests.authenticate_as('ann');
select lives_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'ann')) $$, 'Ann joins');
select tests.authenticate_as('ben');
select lives_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'ben')) $$, 'Ben joins');
select tests.authenticate_as('dee');
select lives_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'dee')) $$, 'Dee joins');
select tests.authenticate_as('eve');
select lives_ok($$ select public.accept_invitation((select token from tests.invitations where label = 'eve')) $$, 'Eve joins');
select tests.clear_authentication();
select is(tests.footprint(), '6 members, 10 pending', 'nobody was refused');

-- ---------------------------------------------------------------------------
-- The limit is the account's plan's: private.account_member_limit reads private.account_plan
-- ---------------------------------------------------------------------------
select results_eq(
  $$ select plan_key, max_members from private.account_member_limit(tests.account_id('limits-14')) $$,
  $$ values ('free', null::integer) $$,
  'account_member_limit returns the account''s plan and its max_members');
update public.plans set max_members = 7 where key = 'free';
select results_eq(
  $$ select plan_key, max_members from private.account_member_limit(tests.account_id('limits-14')) $$,
  $$ values ('free', 7) $$,
  'and follows the plans table');

select * from finish();
rollback;
