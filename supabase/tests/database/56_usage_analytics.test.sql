-- Usage analytics (docs/analytics.md#usage_summary): usage_summary per persona, its precise errors, and the
-- staff-only revenue_summary.
--
-- World: team "t52-team" (tests.team: t52_owner, t52_member, t52_viewer) with usage across an hour, a day and a month
-- boundary (raw events at fixed times, as an import would write them), a stranger with
-- their own account, a staff admin. A test file is one transaction, so nothing here is
-- folded (the folder never folds its own transaction's events): every figure below comes
-- from the raw tail, which proves the summary is exact before any fold. Folding itself is
-- proved by supabase/tests/engine/usage_analytics_test.ts.
begin;
select plan(30);

select tests.create_users('t52_owner', 't52_member', 't52_viewer', 't52_stranger', 't52_staff');
select tests.make_staff_admin('t52_staff');
select tests.team('t52-team', owner => 't52_owner', members => '{t52_member}', viewers => '{t52_viewer}', name => 'Analytics Co');

-- Usage of the team: api_call (category api) and ai_tokens (category ai), by two users, one
-- event through an API key; times straddle 31 Jan / 1 Feb 2031 (UTC) and an hour boundary.
-- An API key id usage is attributed to, by name (no key row needed: analytics groups by the id).
create function tests.t52_api_key(name text) returns uuid language sql immutable set search_path = '' as $$ select pg_catalog.md5('api key ' || name)::uuid $$;
grant execute on function tests.t52_api_key(text) to authenticated, service_role;
insert into public.usage_events (account_id, user_id, action, quantity, credits_charged, api_key_id, created_at) values
  (tests.account_id('t52-team'), tests.user_id('t52_owner'), 'api_call', 2, 2, null, '2031-01-31 23:59:59+00'),
  (tests.account_id('t52-team'), tests.user_id('t52_member'), 'api_call', 3, 3, null, '2031-02-01 00:00:00+00'),
  (tests.account_id('t52-team'), tests.user_id('t52_member'), 'ai_tokens', 1000, 1, tests.t52_api_key('batch'), '2031-02-01 00:30:00+00'),
  (tests.account_id('t52-team'), null, 'api_call', 5, 5, null, '2031-02-01 01:15:00+00'),
  -- The stranger's own usage in the same hour: never in the team's figures.
  (tests.user_id('t52_stranger'), tests.user_id('t52_stranger'), 'api_call', 7, 7, null, '2031-02-01 00:10:00+00');

create function tests.t52_summary(since text, until text, bucket text, group_by text) returns text
language sql set search_path = '' as $$
  select coalesce(string_agg(pg_catalog.to_char(s.bucket_start at time zone 'UTC', 'YYYY-MM-DD HH24') || ' ' || coalesce(s.key, '-')
                             || ' q' || s.quantity || ' c' || s.credits || ' n' || s.events, '; '), '')
  from public.usage_summary(tests.account_id('t52-team'), since::timestamptz, until::timestamptz, bucket, group_by) s
$$;
grant execute on function tests.t52_summary(text, text, text, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Who may read it
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t52_owner');
select is(tests.t52_summary('2031-01-01', '2031-03-01', 'month', 'action'),
  '2031-01-01 00 api_call q2 c2 n1; 2031-02-01 00 ai_tokens q1000 c1 n1; 2031-02-01 00 api_call q8 c8 n2',
  'the owner reads the team''s usage per month by action, months cut in UTC');
select tests.authenticate_as('t52_member');
select is(tests.t52_summary('2031-01-31', '2031-02-02', 'day', 'category'),
  '2031-01-31 00 api q2 c2 n1; 2031-02-01 00 ai q1000 c1 n1; 2031-02-01 00 api q8 c8 n2',
  'a member (credits.read) reads it per day by category (from billable_actions.category)');
select tests.authenticate_as('t52_viewer');
select is(tests.t52_summary('2031-02-01', '2031-02-02', 'hour', 'user'),
  '2031-02-01 00 ' || tests.user_id('t52_member') || ' q1003 c4 n2; 2031-02-01 01 - q5 c5 n1',
  'a viewer (credits.read) reads it per hour by user; usage without a user has a null key');
select tests.authenticate_as('t52_stranger');
select is((tests.caught($$ select tests.t52_summary('2031-01-01', '2031-03-01', 'day', 'action') $$)) ->> 'code', '42501',
  'a stranger is refused (42501), even for an account whose usage shares their hours');
select tests.authenticate_as_anon();
select is((tests.caught($$ select * from public.usage_summary(tests.account_id('t52-team'), '2031-01-01', '2031-03-01') $$)) ->> 'code', '42501',
  'anon is refused (42501)');
select tests.authenticate_as('t52_staff');
select is(tests.t52_summary('2031-02-01', '2031-02-02', 'day', 'api_key'),
  '2031-02-01 00 - q8 c8 n2; 2031-02-01 00 ' || tests.t52_api_key('batch') || ' q1000 c1 n1',
  'a staff admin reads any account''s usage, here by API key');
select tests.authenticate_as_service_role();
select is(tests.t52_summary('2031-02-01 00:00', '2031-02-01 01:00', 'hour', 'action'),
  '2031-02-01 00 ai_tokens q1000 c1 n1; 2031-02-01 00 api_call q3 c3 n1',
  'service_role reads it; the range is [since, until): the event at 01:15 and the one before midnight stay out');
select is((tests.caught($$ select * from public.usage_summary(gen_random_uuid(), '2031-01-01', '2031-03-01') $$)) ->> 'code', 'PT404',
  'a server naming an unknown account gets PT404');
select tests.clear_authentication();

-- Ranges that cut hours: the partial hours come from the events themselves.
select is(tests.t52_summary('2031-02-01 00:20', '2031-02-01 01:20', 'hour', 'action'),
  '2031-02-01 00 ai_tokens q1000 c1 n1; 2031-02-01 01 api_call q5 c5 n1',
  'a range starting and ending inside hours counts exactly the events inside it');
select is(tests.t52_summary('2031-02-01 00:00:00.5', '2031-02-01 00:40', 'day', 'action'),
  '2031-02-01 00 ai_tokens q1000 c1 n1',
  'a range inside one hour too (the bucket is labelled by its UTC start)');

-- The session's time zone changes nothing: buckets are UTC.
set local timezone = 'Asia/Kolkata';
select is(tests.t52_summary('2031-01-31', '2031-02-02', 'day', 'action'),
  '2031-01-31 00 api_call q2 c2 n1; 2031-02-01 00 ai_tokens q1000 c1 n1; 2031-02-01 00 api_call q8 c8 n2',
  'under Asia/Kolkata (UTC+05:30) the days are still UTC days');
reset timezone;

-- ---------------------------------------------------------------------------
-- Precise errors (checked before anything is read)
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t52_owner');
select is(tests.caught($$ select tests.t52_summary('2031-01-01', '2031-03-01', 'week', 'action') $$) - 'detail' - 'hint',
  '{"code": "22023", "message": "invalid_bucket"}', 'bucket week: 22023 invalid_bucket');
select matches(tests.caught($$ select tests.t52_summary('2031-01-01', '2031-03-01', 'week', 'action') $$) ->> 'detail',
  'bucket must be hour, day or month', 'and the detail says what is accepted');
select is(tests.caught($$ select tests.t52_summary('2031-01-01', '2031-03-01', null, 'action') $$) ->> 'message',
  'invalid_bucket', 'a null bucket: invalid_bucket');
select is(tests.caught($$ select tests.t52_summary('2031-01-01', '2031-03-01', 'day', 'model') $$) - 'detail' - 'hint',
  '{"code": "22023", "message": "invalid_group_by"}', 'group_by model: 22023 invalid_group_by');
select is(tests.caught($$ select tests.t52_summary('2031-03-01', '2031-01-01', 'day', 'action') $$) - 'detail' - 'hint',
  '{"code": "22023", "message": "invalid_range"}', 'since after until: 22023 invalid_range');
select is(tests.caught($$ select tests.t52_summary('2031-01-01', '2031-01-01', 'day', 'action') $$) ->> 'message',
  'invalid_range', 'an empty range: invalid_range');
select is(tests.caught($$ select tests.t52_summary(null, '2031-01-01', 'day', 'action') $$) ->> 'message',
  'invalid_range', 'a null since: invalid_range');
select is(tests.caught($$ select tests.t52_summary('-infinity', '2031-01-01', 'day', 'action') $$) ->> 'message',
  'invalid_range', 'an infinite since: invalid_range');
select tests.authenticate_as('t52_stranger');
select is(tests.caught($$ select tests.t52_summary('2031-01-01', '2031-03-01', 'week', 'action') $$) ->> 'message',
  'invalid_bucket', 'bad arguments are reported before the permission (they reveal nothing)');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- A deleted user's usage stays, without the user (as usage_events.user_id is set null)
-- ---------------------------------------------------------------------------
select tests.create_users('t52_leaver');
-- Rollup rows as the folder writes them: one of the leaver's, one without a user, same hour and action.
insert into private.usage_rollup (account_id, hour, action, api_key_id, user_id, quantity, credits, events) values
  (tests.account_id('t52-team'), '2031-03-01 10:00+00', 'api_call', null, tests.user_id('t52_leaver'), 4, 4, 2),
  (tests.account_id('t52-team'), '2031-03-01 10:00+00', 'api_call', null, null, 1, 1, 1),
  (tests.account_id('t52-team'), '2031-03-01 11:00+00', 'ai_tokens', null, tests.user_id('t52_leaver'), 9, 1, 1);
create temp table deleted_user on commit drop as select tests.user_id('t52_leaver') as id;
delete from auth.users where id = (select id from deleted_user);
select is((select count(*)::int from private.usage_rollup where user_id = (select id from deleted_user)), 0,
  'deleting a user removes their id from the usage rollup');
select is(tests.t52_summary('2031-03-01', '2031-03-02', 'hour', 'user'),
  '2031-03-01 10 - q5 c5 n3; 2031-03-01 11 - q9 c1 n1',
  'their usage stays, merged into the usage without a user');

-- ---------------------------------------------------------------------------
-- revenue_summary: staff admins only
-- ---------------------------------------------------------------------------
-- A pro subscription (29.00/month) × 2 seats live from 1 Feb 2031, canceled on 3 Feb; a
-- yearly plan at 120.00 live from 2 Feb; a pack bought on 2 Feb; credits granted, consumed,
-- expired and clawed back on 2 Feb (business time frozen there).
insert into public.plans (key, name, price_cents, billing_interval) values ('t52_yearly', 'Yearly', 12000, 'year');
insert into public.subscriptions (id, account_id, stripe_subscription_id, plan_key, quantity, status, last_event_id, last_event_type, last_event_created) values
  (gen_random_uuid(), tests.account_id('t52-team'), 'sub_t52pro', 'pro', 2, 'canceled', 'evt_t52_3', 'customer.subscription.deleted', '2031-02-03 12:00+00'),
  (gen_random_uuid(), tests.user_id('t52_stranger'), 'sub_t52year', 't52_yearly', 1, 'active', 'evt_t52_4', 'customer.subscription.created', '2031-02-02 12:00+00');
insert into public.subscription_history (subscription_id, account_id, stripe_subscription_id, new_plan_key, new_status, reason, occurred_at) values
  ((select id from public.subscriptions where stripe_subscription_id = 'sub_t52pro'), tests.account_id('t52-team'), 'sub_t52pro', 'pro', 'active', 'created', '2031-02-01 09:00+00'),
  ((select id from public.subscriptions where stripe_subscription_id = 'sub_t52pro'), tests.account_id('t52-team'), 'sub_t52pro', 'pro', 'canceled', 'canceled', '2031-02-03 12:00+00'),
  ((select id from public.subscriptions where stripe_subscription_id = 'sub_t52year'), tests.user_id('t52_stranger'), 'sub_t52year', 't52_yearly', 'active', 'created', '2031-02-02 12:00+00');
insert into public.payments (account_id, kind, item_key, quantity, amount, status, settlement, stripe_checkout_session_id, paid_at) values
  (tests.account_id('t52-team'), 'credit_pack', 'pack_250', 1, 1000, 'paid', 'paid', 'cs_t52_1', '2031-02-02 10:00+00'),
  (tests.account_id('t52-team'), 'credit_pack', 'pack_250', 1, 1000, 'pending', 'pending', 'cs_t52_2', null);

create function tests.t52_revenue(day date) returns text
language sql set search_path = '' as $$
  select r.mrr_cents || '/' || r.live_subscriptions || ' pack ' || r.pack_revenue_cents || '/' || r.packs_sold
         || ' granted ' || r.credits_granted || ' consumed ' || r.credits_consumed || ' expired ' || r.credits_expired
         || ' clawed ' || r.credits_clawed_back
  from public.revenue_summary('2031-01-31', '2031-02-05') r where r.day = t52_revenue.day
$$;
grant execute on function tests.t52_revenue(date) to authenticated, service_role;

select tests.freeze_time('2031-02-02 08:00:00+00');
-- Ledger entries are dated by created_at (the transaction's time); write them for 2 Feb.
insert into public.credit_ledger (account_id, delta, balance_after, available_after, reason, created_at) values
  (tests.account_id('t52-team'), 250, 250, 250, 'purchase', '2031-02-02 10:00+00'),
  (tests.account_id('t52-team'), -40, 210, 210, 'consume', '2031-02-02 11:00+00'),
  (tests.account_id('t52-team'), -10, 200, 200, 'capture', '2031-02-02 11:30+00'),
  (tests.account_id('t52-team'), -5, 195, 195, 'expire', '2031-02-02 12:00+00'),
  (tests.account_id('t52-team'), -30, 165, 165, 'clawback', '2031-02-02 13:00+00'),
  (tests.account_id('t52-team'), 20, 185, 185, 'promo', '2031-02-02 23:59:59+00');
select tests.unfreeze_time();

select tests.authenticate_as('t52_staff');
select is(tests.t52_revenue('2031-01-31'), '0/0 pack 0/0 granted 0 consumed 0 expired 0 clawed 0',
  'before the subscription: nothing');
select is(tests.t52_revenue('2031-02-01'), '5800/1 pack 0/0 granted 0 consumed 0 expired 0 clawed 0',
  'MRR on 1 Feb: pro 29.00 × 2 seats');
select is(tests.t52_revenue('2031-02-02'), '6800/2 pack 1000/1 granted 270 consumed 50 expired 5 clawed 30',
  '2 Feb: + the yearly plan as 120.00 / 12 a month; the paid pack (not the pending one); credits by ledger reason');
select is(tests.t52_revenue('2031-02-03'), '1000/1 pack 0/0 granted 0 consumed 0 expired 0 clawed 0',
  '3 Feb: the canceled subscription no longer counts');
select is((select count(*)::int from public.revenue_summary('2031-01-31', '2031-02-05')), 5, 'one row per day of [since, until)');
select is(tests.caught($$ select * from public.revenue_summary('2031-02-05', '2031-01-31') $$) ->> 'message', 'invalid_range',
  'a backwards range: 22023 invalid_range');
select tests.authenticate_as('t52_owner');
select is(tests.caught($$ select * from public.revenue_summary('2031-01-31', '2031-02-05') $$) ->> 'code', '42501',
  'an account owner is refused: revenue is for staff admins (42501)');
select tests.authenticate_as_anon();
select is(tests.caught($$ select * from public.revenue_summary('2031-01-31', '2031-02-05') $$) ->> 'code', '42501',
  'anon is refused (42501)');
select tests.clear_authentication();

select * from finish();
rollback;
