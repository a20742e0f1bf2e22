-- Notifications (docs/tables.md#notifications): who gets told what — low balance, invitations, purchases,
-- billing's messages — and that each user reads and marks only their own.
-- Personas: owner and admin (billing.manage), member, viewer, stranger, service_role, anon.
begin;
select plan(36);

select tests.freeze_time('2031-06-01 08:00:00+00');
-- Invitations are the subject here, not the plan's member limit (14_identity_member_limits):
-- the teams are on the free plan, whose max_members is lifted inside this transaction.
update public.plans set max_members = null where key = 'free';
-- The stranger signed up with a capitalised address: invitations find them regardless of case.
select tests.create_supabase_user('stranger', 'Stranger@test.ledgerbase.dev');
select tests.team('notify-team', owner => 'owner', admins => '{admin}', members => '{member}', viewers => '{viewer}');

-- ---------------------------------------------------------------------------
-- Billing's functions
-- ---------------------------------------------------------------------------
select ok(private.notify_user(tests.user_id('stranger'), 'info', '  Welcome  ', 'Hello', '{"kind": "welcome"}') is not null,
  'notify_user returns the new notification''s id');
select results_eq(
  $$ select type, title, body, data, read_at, created_at from public.notifications where user_id = tests.user_id('stranger') $$,
  $$ values ('info', 'Welcome', 'Hello', '{"kind": "welcome"}'::jsonb, null::timestamptz, '2031-06-01 08:00:00+00'::timestamptz) $$,
  'the notification is stored unread, title trimmed, stamped with the business clock');
select throws_ok($$ select private.notify_user(tests.user_id('stranger'), 'urgent', 'x') $$,
  '22023', 'invalid_input', 'a type other than info, success, warning, error is refused');
select throws_ok($$ select private.notify_user(tests.user_id('stranger'), 'info', 'x', null, '[1]') $$,
  '22023', 'invalid_input', 'data must be a JSON object');

select is(private.notify_account(tests.account_id('notify-team'), 'billing.manage', 'error', 'Payment failed', 'Update your card.', '{"kind": "payment_failed", "invoice": "in_1"}'),
  2, 'notify_account tells each member holding the permission and returns how many');
select set_eq(
  $$ select user_id, type, data from public.notifications where data ->> 'kind' = 'payment_failed' $$,
  $$ values (tests.user_id('owner'), 'error', jsonb_build_object('kind', 'payment_failed', 'invoice', 'in_1', 'account_id', tests.account_id('notify-team'))),
            (tests.user_id('admin'), 'error', jsonb_build_object('kind', 'payment_failed', 'invoice', 'in_1', 'account_id', tests.account_id('notify-team'))) $$,
  'the owner and the admin (billing.manage) are told, with the account id added to data; member and viewer are not');
select is(private.notify_account(tests.account_id('notify-team'), 'credits.read', 'warning', 'Trial ends in 3 days'), 4,
  'a wider permission reaches every member holding it');

-- ---------------------------------------------------------------------------
-- Low balance: billing managers are warned once per crossing of the threshold (20)
-- ---------------------------------------------------------------------------
select public.admin_adjust_credits(tests.account_id('notify-team'), 30, 'starting credits');
select tests.authenticate_as('member');
select public.consume_credits(tests.account_id('notify-team'), 'api_call', 10);
select tests.clear_authentication();
select is((select count(*)::int from public.notifications where data ->> 'kind' = 'low_balance'), 0,
  'no warning while available credits stay at the threshold (20)');

select tests.authenticate_as('member');
select public.consume_credits(tests.account_id('notify-team'), 'api_call', 1);
select tests.clear_authentication();
select set_eq(
  $$ select user_id, type, data from public.notifications where data ->> 'kind' = 'low_balance' $$,
  $$ values (tests.user_id('owner'), 'warning', jsonb_build_object('kind', 'low_balance', 'available', 19, 'threshold', 20, 'account_id', tests.account_id('notify-team'))),
            (tests.user_id('admin'), 'warning', jsonb_build_object('kind', 'low_balance', 'available', 19, 'threshold', 20, 'account_id', tests.account_id('notify-team'))) $$,
  'falling below the threshold warns the billing managers with what is left');

select tests.authenticate_as('member');
select public.consume_credits(tests.account_id('notify-team'), 'api_call', 5);
select tests.clear_authentication();
select is((select count(*)::int from public.notifications where data ->> 'kind' = 'low_balance'), 2,
  'spending more while already low warns nobody again');

select public.admin_adjust_credits(tests.account_id('notify-team'), 50, 'top-up');
select tests.authenticate_as('member');
select public.consume_credits(tests.account_id('notify-team'), 'api_call', 60);
select tests.clear_authentication();
select is((select count(*)::int from public.notifications where data ->> 'kind' = 'low_balance'), 4,
  'after rising above the threshold, the next fall warns again');

-- ---------------------------------------------------------------------------
-- Invitations received by people who already have an account
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
select public.invite_member(tests.account_id('notify-team'), 'stranger@test.ledgerbase.dev', 'viewer');
select public.invite_member(tests.account_id('notify-team'), 'not-yet-a-user@test.ledgerbase.dev', 'member');
select tests.clear_authentication();
select results_eq(
  $$ select type, title, data ->> 'account_id', data ->> 'role', data ->> 'invitation_id'
     from public.notifications where data ->> 'kind' = 'invitation_received' $$,
  $$ select 'info', 'You are invited to join Notify Team', tests.account_id('notify-team')::text, 'viewer', i.id::text
     from public.account_invitations i where i.email = 'stranger@test.ledgerbase.dev' $$,
  'an existing user (whatever the case of their email) is told about the invitation, with the ids to act on it');
select is((select count(*)::int from public.notifications where data ->> 'kind' = 'invitation_received'), 1,
  'an email without a user gets no notification (the e-mail is the channel)');
select ok(not exists (select from public.notifications n, private.invitation_tokens t where n.data::text like '%' || t.token_hash || '%'),
  'no notification carries the invitation token or its hash');
select is((select data::text ~ '"token"' from public.notifications where data ->> 'kind' = 'invitation_received'), false,
  'the notification has no token field');

-- ---------------------------------------------------------------------------
-- Credits granted by a purchase
-- ---------------------------------------------------------------------------
select private.grant_credits(tests.account_id('notify-team'), 500, 'purchase', null, 'pi_123', null, '{}');
select set_eq(
  $$ select user_id, type, title, (data ->> 'credits')::int from public.notifications where data ->> 'kind' = 'credits_purchased' $$,
  $$ values (tests.user_id('owner'), 'success', '500 credits added', 500),
            (tests.user_id('admin'), 'success', '500 credits added', 500) $$,
  'a purchase tells the billing managers that their credits arrived');
select private.grant_credits(tests.account_id('notify-team'), 10, 'promo', null, 'promo-1', null, '{}');
select is((select count(*)::int from public.notifications where data ->> 'kind' = 'credits_purchased'), 2,
  'other grants (promo, admin) do not send the purchase notification');

-- ---------------------------------------------------------------------------
-- Each user reads only their own (RLS)
-- ---------------------------------------------------------------------------
create table tests.total as select count(*)::int as n from public.notifications;
grant select on tests.total to service_role;
select tests.authenticate_as('owner');
select is((select count(*)::int from public.notifications where user_id <> tests.user_id('owner')), 0,
  'the owner reads no one else''s notifications');
select is((select count(*)::int from public.notifications), 5, 'the owner reads all five of their own');
select tests.authenticate_as('member');
select is((select count(*)::int from public.notifications where user_id <> tests.user_id('member')), 0,
  'a member reads no one else''s notifications, not even their account''s');
select tests.authenticate_as('stranger');
select is((select array_agg(data ->> 'kind' order by created_at, data ->> 'kind') from public.notifications),
  array['invitation_received', 'welcome'], 'a stranger reads only their own two');
select throws_ok($$ insert into public.notifications (user_id, type, title) values (auth.uid(), 'info', 'fake') $$,
  '42501', null, 'users cannot create notifications');
select throws_ok($$ update public.notifications set read_at = now() $$, '42501', null, 'users cannot update notifications directly');
select throws_ok($$ delete from public.notifications $$, '42501', null, 'users cannot delete notifications');
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from public.notifications $$, '42501', null, 'anon cannot read notifications');
select throws_ok($$ select public.mark_notifications_read() $$, '42501', null, 'anon cannot mark notifications read');
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.notifications), (select n from tests.total),
  'the service role reads every notification');

-- ---------------------------------------------------------------------------
-- mark_notifications_read
-- ---------------------------------------------------------------------------
select tests.clear_authentication();
create table tests.ids as select id, user_id, data ->> 'kind' as kind from public.notifications;
grant select on tests.ids to authenticated;
select tests.freeze_time('2031-06-02 12:00:00+00');
select tests.authenticate_as('owner');
select is(public.mark_notifications_read(array(select id from tests.ids
                                               where user_id = tests.user_id('owner') and kind = 'payment_failed')),
  1, 'marking one notification read returns 1');
select is(public.mark_notifications_read(array(select id from tests.ids
                                               where user_id = tests.user_id('owner') and kind = 'payment_failed')),
  0, 'marking it again changes nothing');
select is(public.mark_notifications_read(array(select id from tests.ids where user_id = tests.user_id('admin'))),
  0, 'someone else''s ids are ignored');
select is((select read_at from public.notifications where data ->> 'kind' = 'payment_failed'),
  '2031-06-02 12:00:00+00'::timestamptz, 'read_at is the time of marking');
select is(public.mark_notifications_read(), 4, 'with no ids, every remaining unread notification of the caller is marked');
select is((select count(*)::int from public.notifications where read_at is null), 0, 'the owner has nothing unread');
select is(public.mark_notifications_read('{}'), 0, 'an empty list marks nothing');
select tests.authenticate_as('admin');
select is((select count(*)::int from public.notifications where read_at is null), 5,
  'the admin''s notifications are untouched by the owner''s marking');
select tests.clear_authentication();
select is((select count(*)::int from public.notifications where read_at is not null and user_id <> tests.user_id('owner')), 0,
  'nobody else''s notification was marked read');

select * from finish();
rollback;
