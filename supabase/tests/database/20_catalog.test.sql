-- Catalog (docs/catalog.md): plans, credit_packs and billable_actions are readable by anon and
-- authenticated users (active rows only), fully readable and writable by staff admins,
-- and not writable by anyone else. Seed-independent: the stories run on rows made here
-- (key prefix t20_); the demo catalog of the seed is asserted separately at the end.
--
-- Personas: anon, stranger (signed in, no team), member and owner of team Catalog Co, staff
-- admin, service_role.
begin;
select plan(50);

select tests.team('catalog-co', owner => 'owner', members => '{member}');
select tests.create_users('stranger', 'staff');
select tests.make_staff_admin('staff');

-- Our own catalog rows, one active and one retired of each kind (as the runner).
insert into public.plans (key, name, tier, price_cents, included_credits, limits, active, created_at, updated_at) values
  ('t20_live_plan', 'Live plan', 7, 1234, 100, '{}', true, now(), now()),
  ('t20_old_plan', 'Old plan', 8, 999, 50, '{}', false, '2030-01-01', '2030-01-01');
insert into public.credit_packs (key, name, credits, price_cents, active) values
  ('t20_live_pack', 'Live pack', 100, 500, true),
  ('t20_old_pack', 'Old pack', 10, 100, false);
insert into public.billable_actions (key, name, category, credits, unit_size, active) values
  ('t20_live_action', 'Live action', 't20', 3, 1, true),
  ('t20_old_action', 'Old action', 't20', 5, 1, false);

-- What a persona sees of our rows: "plans|packs|actions" as comma-separated keys.
create function tests.t20_visible() returns text
language sql stable set search_path = '' as $$
  select concat_ws('|',
    (select string_agg(key, ',' order by key) from public.plans where key like 't20%'),
    (select string_agg(key, ',' order by key) from public.credit_packs where key like 't20%'),
    (select string_agg(key, ',' order by key) from public.billable_actions where key like 't20%'))
$$;
grant execute on function tests.t20_visible() to anon, authenticated, service_role;


-- ---------------------------------------------------------------------------
-- Reading: active rows for everyone, everything for staff admins and service_role
-- ---------------------------------------------------------------------------
-- Anon (the pricing page), a signed-in stranger, a team member and even its owner read active
-- rows only; a staff admin and service_role read the retired ones too.
select * from tests.rls_seen('{anon,stranger,member,owner,staff,service_role}', 'select tests.t20_visible()',
  array[
    't20_live_plan|t20_live_pack|t20_live_action',
    't20_live_plan|t20_live_pack|t20_live_action',
    't20_live_plan|t20_live_pack|t20_live_action',
    't20_live_plan|t20_live_pack|t20_live_action',
    't20_live_plan,t20_old_plan|t20_live_pack,t20_old_pack|t20_live_action,t20_old_action',
    't20_live_plan,t20_old_plan|t20_live_pack,t20_old_pack|t20_live_action,t20_old_action'],
  'the catalog rows it reads');

-- A retired row is invisible even when asked for by key.
select tests.authenticate_as_anon();
select is((select count(*)::int from public.plans where key = 't20_old_plan'), 0, 'anon cannot read a retired plan by key');
select tests.authenticate_as('member');
select is((select count(*)::int from public.billable_actions where key = 't20_old_action'), 0,
  'a member cannot read a retired action by key');

-- ---------------------------------------------------------------------------
-- Writing: anon has no grant; users are stopped by RLS; service_role has no grant
-- ---------------------------------------------------------------------------
select tests.authenticate_as_anon();
select throws_ok($$ insert into public.plans (key, name) values ('t20_anon', 'Anon') $$,
  '42501', 'permission denied for table plans', 'anon cannot create plans');
select throws_ok($$ update public.credit_packs set price_cents = 1 where key = 't20_live_pack' $$,
  '42501', 'permission denied for table credit_packs', 'anon cannot change packs');
select throws_ok($$ delete from public.billable_actions where key = 't20_live_action' $$,
  '42501', 'permission denied for table billable_actions', 'anon cannot delete actions');

select tests.authenticate_as('owner');
select throws_ok($$ insert into public.plans (key, name) values ('t20_owner_plan', 'Mine') $$,
  '42501', 'new row violates row-level security policy for table "plans"', 'a team owner cannot create plans');
select throws_ok($$ insert into public.credit_packs (key, name, credits, price_cents) values ('t20_owner_pack', 'Mine', 1000000, 0) $$,
  '42501', 'new row violates row-level security policy for table "credit_packs"', 'a team owner cannot create a free pack');
select throws_ok($$ insert into public.billable_actions (key, name, credits) values ('t20_owner_action', 'Mine', 0) $$,
  '42501', 'new row violates row-level security policy for table "billable_actions"', 'a team owner cannot create actions');
select is(tests.rows_affected($$ update public.billable_actions set credits = 0 where key = 't20_live_action' $$),
  0, 'an owner''s update of an action''s price touches no row (RLS)');
select is(tests.rows_affected($$ update public.plans set price_cents = 0, included_credits = 1000000 where key = 't20_live_plan' $$),
  0, 'an owner''s update of a plan touches no row (RLS)');
select is(tests.rows_affected($$ delete from public.credit_packs where key = 't20_live_pack' $$),
  0, 'an owner''s delete of a pack touches no row (RLS)');

select tests.authenticate_as('member');
select throws_ok($$ insert into public.billable_actions (key, name, credits) values ('t20_member_action', 'Mine', 0) $$,
  '42501', 'new row violates row-level security policy for table "billable_actions"', 'a member cannot create actions');
select is(tests.rows_affected($$ update public.credit_packs set credits = 999999 where key = 't20_live_pack' $$),
  0, 'a member''s update of a pack touches no row (RLS)');
select is(tests.rows_affected($$ delete from public.plans where key = 't20_live_plan' $$),
  0, 'a member''s delete of a plan touches no row (RLS)');

select tests.authenticate_as('stranger');
select is(tests.rows_affected($$ update public.plans set active = true where key = 't20_old_plan' $$),
  0, 'a stranger cannot re-activate a retired plan');

select tests.authenticate_as_service_role();
select throws_ok($$ insert into public.plans (key, name) values ('t20_service_plan', 'Service') $$,
  '42501', 'permission denied for table plans', 'service_role has no write grant on plans');
select throws_ok($$ update public.billable_actions set credits = 0 where key = 't20_live_action' $$,
  '42501', 'permission denied for table billable_actions', 'service_role has no write grant on actions');

select tests.clear_authentication();
select results_eq(
  $$ select (select price_cents || ':' || included_credits from public.plans where key = 't20_live_plan'),
            (select active::text from public.plans where key = 't20_old_plan'),
            (select credits || ':' || price_cents from public.credit_packs where key = 't20_live_pack'),
            (select credits::text from public.billable_actions where key = 't20_live_action'),
            (select count(*)::int from public.plans where key in ('t20_anon', 't20_owner_plan', 't20_service_plan')) $$,
  $$ values ('1234:100', 'false', '100:500', '3', 0) $$,
  'after every refused write the catalog is unchanged');

-- ---------------------------------------------------------------------------
-- Staff admins manage the catalog
-- ---------------------------------------------------------------------------
select tests.authenticate_as('staff');
select lives_ok($$ insert into public.plans (key, name, tier, price_cents, included_credits, limits) values ('t20_staff_plan', 'Staff plan', 9, 4900, 2000, '{"quotas": {"api_call": 5}}') $$,
  'a staff admin creates a plan');
select lives_ok($$ insert into public.credit_packs (key, name, credits, price_cents) values ('t20_staff_pack', 'Staff pack', 1000, 3500) $$,
  'a staff admin creates a pack');
select lives_ok($$ insert into public.billable_actions (key, name, category, credits, unit_size) values ('t20_staff_action', 'Staff action', 't20', 7, 100) $$,
  'a staff admin creates an action');
select is(tests.rows_affected($$ update public.plans set active = true, price_cents = 1099 where key = 't20_old_plan' $$),
  1, 'a staff admin re-activates and re-prices a retired plan');
select is(tests.rows_affected($$ update public.billable_actions set credits = 4, active = false where key = 't20_live_action' $$),
  1, 'a staff admin re-prices and retires an action');
select is(tests.rows_affected($$ delete from public.credit_packs where key = 't20_old_pack' $$),
  1, 'a staff admin deletes a pack');
select throws_ok($$ insert into public.billable_actions (key, name, credits, unit_size) values ('t20_bad_unit', 'Bad', 1, 0) $$,
  '23514', null, 'even a staff admin cannot create an action with unit_size 0');
select throws_ok($$ insert into public.billable_actions (key, name, credits) values ('t20_negative', 'Bad', -1) $$,
  '23514', null, 'an action cannot cost negative credits');
select throws_ok($$ insert into public.credit_packs (key, name, credits, price_cents) values ('t20_empty_pack', 'Bad', 0, 100) $$,
  '23514', null, 'a pack must hold credits');
select throws_ok($$ insert into public.plans (key, name, limits) values ('t20_bad_limits', 'Bad', '[1]') $$,
  '23514', null, 'plan limits must be a JSON object');
select throws_ok($$ insert into public.plans (key, name) values ('T20 Bad Key', 'Bad') $$,
  '23514', null, 'catalog keys are lower-case identifiers');

-- What everybody else sees after the staff admin's changes.
select tests.authenticate_as_anon();
select is(tests.t20_visible(), 't20_live_plan,t20_old_plan,t20_staff_plan|t20_live_pack,t20_staff_pack|t20_staff_action',
  'anon sees the new and re-activated rows and no longer the retired action or deleted pack');
select tests.clear_authentication();
select is((select updated_at from public.plans where key = 't20_old_plan'), now(),
  'updating a plan stamps updated_at');

-- ---------------------------------------------------------------------------
-- Pricing: ceil(quantity × credits / unit_size)
-- ---------------------------------------------------------------------------
select is(private.credit_cost(1500, 1, 1000), 2::bigint, '1500 tokens at 1 credit per 1000 cost 2');
select is(private.credit_cost(1000, 1, 1000), 1::bigint, '1000 tokens cost exactly 1');
select is(private.credit_cost(1, 1, 1000), 1::bigint, 'a single token still costs 1 (rounded up)');
select is(private.credit_cost(3, 20, 1), 60::bigint, '3 generations at 20 cost 60');
select is(private.credit_cost(5, 0, 1), 0::bigint, 'a free action costs 0');

-- ---------------------------------------------------------------------------
-- The free plan always exists (fallback), and the seed's demo catalog
-- ---------------------------------------------------------------------------
select is((select count(*)::int from public.plans where key = 'free' and active), 1, 'the free plan exists and is active');
select results_eq(
  $$ select key, tier from public.plans where key in ('free', 'starter', 'pro', 'enterprise') and active order by tier $$,
  $$ values ('free', 0), ('starter', 1), ('pro', 2), ('enterprise', 3) $$,
  'seed: the four demo plans, in tier order');
select results_eq(
  $$ select key, credits from public.credit_packs where key in ('pack_250', 'pack_500') and active order by key $$,
  $$ values ('pack_250', 250::bigint), ('pack_500', 500::bigint) $$,
  'seed: the two demo credit packs');
select results_eq(
  $$ select key, credits, unit_size from public.billable_actions
     where key in ('text_to_thumbnail', 'youtube_thumbnail', 'your_face', 'face_youtube', 'top_youtube_style',
                   'top_youtube_style_face', 'api_call', 'ai_tokens') and active
     order by key $$,
  $$ values ('ai_tokens', 1::bigint, 1000), ('api_call', 1::bigint, 1), ('face_youtube', 20::bigint, 1),
            ('text_to_thumbnail', 10::bigint, 1), ('top_youtube_style', 20::bigint, 1),
            ('top_youtube_style_face', 20::bigint, 1), ('your_face', 20::bigint, 1), ('youtube_thumbnail', 20::bigint, 1) $$,
  'seed: the six thumbnail generations (text_to_thumbnail 10, others 20), api_call 1, ai_tokens 1 per 1000');
select is(
  (select count(*)::int from public.billable_actions
   where key in ('text_to_thumbnail', 'youtube_thumbnail', 'your_face', 'face_youtube', 'top_youtube_style', 'top_youtube_style_face')
     and category = 'generation'),
  6, 'seed: the six thumbnail actions share the generation category (for category quotas)');
select tests.authenticate_as_anon();
select is((select count(*)::int from public.billable_actions where key in ('api_call', 'ai_tokens', 'text_to_thumbnail')), 3,
  'anon reads the seeded prices');
select tests.clear_authentication();
select ok(has_table_privilege('anon', 'public.plans', 'select') and not has_table_privilege('anon', 'public.plans', 'insert, update, delete'),
  'anon holds select on plans and no write privilege');
select ok(not has_table_privilege('service_role', 'public.credit_packs', 'delete'), 'service_role cannot delete packs');

select * from finish();
rollback;
