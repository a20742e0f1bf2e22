-- Live balances and entitlements (docs/billing.md#live-balances, docs/billing.md#entitlements): credit_balances and notifications are in the
-- supabase_realtime publication, and Realtime delivers a change only to those whose RLS lets
-- them select the row — proved here as the authenticated role: a stranger's balance and
-- notifications stay out. has_feature answers from the live plan; account_entitlements
-- lists the features and limits.
begin;
select plan(12);

-- Personas: the owner of a personal account, and a stranger to it.
select tests.create_users('owner', 'stranger');
select private.notify_user(tests.user_id('owner'), 'info', 'Hello owner');

select is(
  (select string_agg(tablename::text, ',' order by tablename::text collate "C") from pg_publication_tables
   where pubname = 'supabase_realtime' and schemaname = 'public'),
  'credit_balances,notifications',
  'credit_balances and notifications are published to Realtime');

select tests.authenticate_as('stranger');
select is((select count(*)::int from public.credit_balances where account_id = tests.account_id('owner')), 0,
  'a stranger selects none of the owner''s balance rows (Realtime sends them none)');
select is((select count(*)::int from public.notifications where user_id = tests.user_id('owner')), 0,
  'nor the owner''s notifications');
select tests.authenticate_as('owner');
select is((select count(*)::int from public.credit_balances where account_id = tests.account_id('owner')), 1,
  'the owner selects their own balance');
select is((select count(*)::int from public.notifications), 1, 'and their own notification only');
select tests.clear_authentication();

-- Entitlements: a plan whose features are an object (true / false / number) on the owner's account.
update public.plans set features = '{"sso": true, "beta": false, "seats": 5}' where key = 'free';
select tests.authenticate_as('owner');
select ok(public.has_feature(tests.account_id('owner'), 'sso'), 'a feature set to true is on');
select ok(not public.has_feature(tests.account_id('owner'), 'beta'), 'a feature set to false is off');
select ok(not public.has_feature(tests.account_id('owner'), 'teleport'), 'an unknown feature is off');
select is((select enabled_features from public.account_entitlements where account_id = tests.account_id('owner')),
  array['seats', 'sso'], 'account_entitlements lists the features the plan turns on');
select tests.authenticate_as('stranger');
select is((tests.caught($$ select public.has_feature(tests.account_id('owner'), 'sso') $$)) ->> 'code', '42501',
  'a stranger cannot ask about someone else''s account');
select tests.authenticate_as_anon();
select is((tests.caught($$ select public.has_feature(tests.account_id('owner'), 'sso') $$)) ->> 'code', '42501',
  'nor can anon');
select tests.clear_authentication();

update public.plans set features = '["Priority generation", "SLA"]' where key = 'free';
select tests.authenticate_as('owner');
select ok(public.has_feature(tests.account_id('owner'), 'SLA'), 'a features array lists the features it turns on');
select tests.clear_authentication();

select * from finish();
rollback;
