-- RLS matrix and write protection for the credit tables (docs/security.md, docs/credits.md, docs/tables.md#who-reads-what):
-- credit_balances, credit_grants, credit_ledger, usage_events, credit_holds
--   × anon, stranger, viewer, member, admin, owner, staff admin, service_role
--   × select, insert, update, delete.
-- Then: what each persona sees in total, the append-only ledger and usage events (even for
-- the runner postgres), and the private functions out of the clients' reach.
--
-- World: team "t24-team" (tests.team: t24_owner, t24_admin, t24_member, t24_viewer) with a grant, a consumption, a captured
-- and an open hold; a stranger with their own personal wallet; a staff admin; a bare team
-- account without a wallet (target of wallet inserts).
-- A probe runs one statement as the persona in a subtransaction that is always rolled back:
--   allow  it saw (select) or changed (insert/update/delete) at least one row
--   deny   permission denied (42501: no grant, RLS check, or trigger) or zero rows
--   error  anything else (reported with SQLSTATE and message; fails the test)
begin;
select plan(160 + 30);

select tests.freeze_time('2031-09-01 08:00:00+00');
update public.plans set limits = '{}' where key = 'free';

select tests.create_users('t24_owner', 't24_admin', 't24_member', 't24_viewer', 't24_stranger', 't24_staff');
select tests.make_staff_admin('t24_staff');
select tests.team('t24-team', owner => 't24_owner', admins => '{t24_admin}', members => '{t24_member}', viewers => '{t24_viewer}', name => 'RLS Co');
select tests.team('t24-bare', owner => 't24_owner', name => 'Bare Co');
-- (a team without a wallet: the insert case of the matrix tries to give it one)
delete from public.credit_balances where account_id = tests.account_id('t24-bare');
select private.grant_credits(tests.account_id('t24-team'), 100, 'purchase', null, 't24-fund');
select tests.authenticate_as('t24_member');
select public.consume_credits(tests.account_id('t24-team'), 'api_call', 3, 't24-use');
select public.capture_credits((public.reserve_credits(tests.account_id('t24-team'), 'text_to_thumbnail', 1, 't24-done') ->> 'hold_id')::uuid);
select public.reserve_credits(tests.account_id('t24-team'), 'text_to_thumbnail', 1, 't24-open');
select tests.authenticate_as('t24_stranger');
select public.consume_credits(tests.user_id('t24_stranger'), 'api_call', 1);
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Counting rows behind RLS
-- ---------------------------------------------------------------------------
-- Rows in a table regardless of RLS, for comparing with what a persona sees.
create function tests.total_rows(tbl regclass) returns bigint
language plpgsql stable security definer set search_path = '' as $$
declare n bigint;
begin
  execute format('select count(*) from %s', tbl) into n;
  return n;
end
$$;
grant execute on function tests.total_rows(regclass) to authenticated, service_role;

-- Reads need credits.read in the account (viewer and up), staff admin, or service_role.
-- Writes go through the credit functions only: no client role may insert, update or delete.
-- 5 tables × 4 operations × 8 personas = 160 assertions (tests.rls_matrix: every statement as
-- every persona, undone; allow for the personas listed, deny for the others).
select * from tests.rls_matrix(
  '{anon,t24_stranger,t24_viewer,t24_member,t24_admin,t24_owner,t24_staff,service_role}', $cases$ values
  ('credit_balances', 'select', $$ select count(*) from public.credit_balances where account_id = tests.account_id('t24-team') $$,
     '{t24_viewer,t24_member,t24_admin,t24_owner,t24_staff,service_role}'),
  ('credit_balances', 'insert', $$ insert into public.credit_balances (account_id, balance) values (tests.account_id('t24-bare'), 1000000) $$, '{}'),
  ('credit_balances', 'update', $$ update public.credit_balances set balance = balance + 1000 where account_id = tests.account_id('t24-team') $$, '{}'),
  ('credit_balances', 'delete', $$ delete from public.credit_balances where account_id = tests.account_id('t24-team') $$, '{}'),

  ('credit_grants', 'select', $$ select count(*) from public.credit_grants where account_id = tests.account_id('t24-team') $$,
     '{t24_viewer,t24_member,t24_admin,t24_owner,t24_staff,service_role}'),
  ('credit_grants', 'insert', $$ insert into public.credit_grants (account_id, source, amount, remaining) values (tests.account_id('t24-team'), 'promo', 1000, 1000) $$, '{}'),
  ('credit_grants', 'update', $$ update public.credit_grants set remaining = amount where account_id = tests.account_id('t24-team') $$, '{}'),
  ('credit_grants', 'delete', $$ delete from public.credit_grants where account_id = tests.account_id('t24-team') $$, '{}'),

  ('credit_ledger', 'select', $$ select count(*) from public.credit_ledger where account_id = tests.account_id('t24-team') $$,
     '{t24_viewer,t24_member,t24_admin,t24_owner,t24_staff,service_role}'),
  ('credit_ledger', 'insert', $$ insert into public.credit_ledger (account_id, delta, balance_after, available_after, reason) values (tests.account_id('t24-team'), 1000, 1097, 1097, 'promo') $$, '{}'),
  ('credit_ledger', 'update', $$ update public.credit_ledger set delta = 1000 where account_id = tests.account_id('t24-team') $$, '{}'),
  ('credit_ledger', 'delete', $$ delete from public.credit_ledger where account_id = tests.account_id('t24-team') $$, '{}'),

  ('usage_events', 'select', $$ select count(*) from public.usage_events where account_id = tests.account_id('t24-team') $$,
     '{t24_viewer,t24_member,t24_admin,t24_owner,t24_staff,service_role}'),
  ('usage_events', 'insert', $$ insert into public.usage_events (account_id, action, quantity, credits_charged) values (tests.account_id('t24-team'), 'api_call', 1, 0) $$, '{}'),
  ('usage_events', 'update', $$ update public.usage_events set credits_charged = 0 where account_id = tests.account_id('t24-team') $$, '{}'),
  ('usage_events', 'delete', $$ delete from public.usage_events where account_id = tests.account_id('t24-team') $$, '{}'),

  ('credit_holds', 'select', $$ select count(*) from public.credit_holds where account_id = tests.account_id('t24-team') $$,
     '{t24_viewer,t24_member,t24_admin,t24_owner,t24_staff,service_role}'),
  ('credit_holds', 'insert', $$ insert into public.credit_holds (account_id, action, quantity, credits_per_unit, unit_size, amount, expires_at) values (tests.account_id('t24-team'), 'api_call', 1, 1, 1, 0, now() + interval '1 hour') $$, '{}'),
  ('credit_holds', 'update', $$ update public.credit_holds set amount = 0 where account_id = tests.account_id('t24-team') $$, '{}'),
  ('credit_holds', 'delete', $$ delete from public.credit_holds where account_id = tests.account_id('t24-team') $$, '{}') $cases$);

-- ---------------------------------------------------------------------------
-- What each persona sees in total
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t24_stranger');
select results_eq(
  $$ select (select count(*)::int from public.credit_balances), (select count(*)::int from public.credit_grants),
            (select count(*)::int from public.credit_ledger), (select count(*)::int from public.usage_events),
            (select count(*)::int from public.credit_holds),
            (select count(*)::int from public.credit_balances where account_id <> tests.user_id('t24_stranger')) $$,
  $$ values (1, 1, 2, 1, 0, 0) $$,
  'a stranger sees only their own wallet: balance, bonus lot, two ledger entries, one usage event');
select tests.authenticate_as('t24_viewer');
select results_eq(
  $$ select (select count(*)::int from public.credit_balances), (select count(*)::int from public.credit_grants),
            (select count(*)::int from public.credit_ledger), (select count(*)::int from public.usage_events),
            (select count(*)::int from public.credit_holds) $$,
  $$ values (2, 2, 4, 2, 2) $$,
  'a viewer sees the team''s wallet, lots, ledger, usage and holds plus their own personal wallet');
select results_eq(
  $$ select balance, held, available from public.credit_balances where account_id = tests.account_id('t24-team') $$,
  $$ values (87::bigint, 10::bigint, 77::bigint) $$,
  'the viewer reads the team balance (100 - 3 - 10 captured; 10 held)');
select tests.authenticate_as('t24_staff');
select results_eq(
  $$ select (select count(*) from public.credit_balances), (select count(*) from public.credit_grants),
            (select count(*) from public.credit_ledger), (select count(*) from public.usage_events),
            (select count(*) from public.credit_holds) $$,
  $$ select tests.total_rows('public.credit_balances'), tests.total_rows('public.credit_grants'),
            tests.total_rows('public.credit_ledger'), tests.total_rows('public.usage_events'),
            tests.total_rows('public.credit_holds') $$,
  'a staff admin sees every row of every credit table');
select tests.authenticate_as_service_role();
select results_eq(
  $$ select (select count(*) from public.credit_balances), (select count(*) from public.credit_grants),
            (select count(*) from public.credit_ledger), (select count(*) from public.usage_events),
            (select count(*) from public.credit_holds) $$,
  $$ select tests.total_rows('public.credit_balances'), tests.total_rows('public.credit_grants'),
            tests.total_rows('public.credit_ledger'), tests.total_rows('public.usage_events'),
            tests.total_rows('public.credit_holds') $$,
  'service_role sees every row');
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from public.credit_balances $$, '42501', 'permission denied for table credit_balances',
  'anon cannot query wallets at all');
select throws_ok($$ select count(*) from public.usage_events $$, '42501', 'permission denied for view usage_events',
  'anon cannot query usage');

-- ---------------------------------------------------------------------------
-- The balance column and the lots change only through the credit functions
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t24_owner');
select throws_ok($$ update public.credit_balances set balance = 1000000 where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied for table credit_balances', 'the owner cannot set the balance');
select throws_ok($$ update public.credit_balances set held = 0 where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied for table credit_balances', 'the owner cannot drop the held amount');
select tests.authenticate_as_service_role();
select throws_ok($$ update public.credit_balances set balance = 1000000 where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied for table credit_balances', 'service_role cannot set the balance either');
select throws_ok($$ update public.credit_grants set remaining = 100 where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied for view credit_grants', 'service_role cannot refill a lot');
select throws_ok($$ update public.credit_holds set status = 'released' where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied for table credit_holds', 'service_role cannot settle a hold by hand');
select tests.clear_authentication();
select ok(
  not exists (select from unnest(array['public.credit_balances', 'public.credit_grants', 'public.credit_ledger', 'public.usage_events', 'public.credit_holds']) t,
                          unnest(array['anon', 'authenticated', 'service_role']) r
              where has_table_privilege(r, t, 'insert') or has_table_privilege(r, t, 'update') or has_table_privilege(r, t, 'delete')
                 or has_table_privilege(r, t, 'truncate')),
  'no client role holds insert, update, delete or truncate on any credit table');
select is(
  (select count(*)::int from pg_policies where schemaname = 'public'
     and tablename in ('credit_balances', 'credit_grants', 'credit_ledger', 'usage_events', 'credit_holds') and cmd <> 'SELECT'),
  0, 'the credit tables have select policies only');

-- ---------------------------------------------------------------------------
-- Append-only ledger and usage events, even for the table owner
-- ---------------------------------------------------------------------------
select throws_ok($$ update public.credit_ledger set delta = 1000 where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied', 'the runner (postgres) cannot update the ledger: trigger');
select throws_ok($$ delete from public.credit_ledger where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied', 'the runner cannot delete ledger entries');
select throws_ok($$ truncate ledger.entries $$,
  '42501', 'permission denied', 'the runner cannot truncate the ledger');
select throws_ok($$ update public.usage_events set credits_charged = 0 where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied', 'the runner cannot rewrite usage events');
select throws_ok($$ delete from public.usage_events where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied', 'the runner cannot delete usage events');
set local client_min_messages = warning;  -- no "truncate cascades to" notices
select throws_ok($$ truncate ledger.lots, ledger.entries cascade $$,
  '42501', 'permission denied', 'the runner cannot truncate the lots and entries under the views (nor through cascade)');
reset client_min_messages;
select tests.authenticate_as_service_role();
select throws_ok($$ delete from public.credit_ledger where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied for view credit_ledger', 'service_role cannot delete ledger entries');
select throws_ok($$ update public.usage_events set metadata = '{}' where account_id = tests.account_id('t24-team') $$,
  '42501', 'permission denied for view usage_events', 'service_role cannot update usage events');
select tests.clear_authentication();
select results_eq(
  $$ select (select count(*)::int from public.credit_ledger where account_id = tests.account_id('t24-team')),
            (select sum(delta)::int from public.credit_ledger where account_id = tests.account_id('t24-team')),
            (select count(*)::int from public.usage_events where account_id = tests.account_id('t24-team')) $$,
  $$ values (3, 87, 2) $$,
  'the team''s history is intact after every attempt');

-- ---------------------------------------------------------------------------
-- Private internals are out of reach; the public API is not open to anon
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t24_owner');
select throws_ok($$ select private.grant_credits(tests.account_id('t24-team'), 1000, 'promo', null, null, null, '{}') $$,
  '42501', 'permission denied for schema private', 'a user cannot call private.grant_credits');
select throws_ok($$ select private.expire_credit_grants() $$,
  '42501', 'permission denied for schema private', 'a user cannot run the expiry sweep');
select tests.authenticate_as_anon();
select throws_ok($$ select private.clawback_credits(tests.account_id('t24-team'), 10) $$,
  '42501', 'permission denied for schema private', 'anon cannot call private.clawback_credits');
select tests.clear_authentication();
select ok(not has_schema_privilege('authenticated', 'private', 'usage') and not has_schema_privilege('anon', 'private', 'usage'),
  'anon and authenticated have no usage on schema private');
select is(
  array(select f from unnest(array['public.consume_credits(uuid,text,integer,text,jsonb)', 'public.reserve_credits(uuid,text,integer,text,integer)',
                                   'public.capture_credits(uuid,integer)', 'public.release_credits(uuid)',
                                   'public.admin_adjust_credits(uuid,bigint,text,text)']) f
        where has_function_privilege('anon', f, 'execute')
           or not has_function_privilege('authenticated', f, 'execute')
           or not has_function_privilege('service_role', f, 'execute')),
  '{}'::text[],
  'the five credit RPCs are executable by authenticated and service_role, not by anon');

-- ---------------------------------------------------------------------------
-- Deleting a team deletes its credit history with it (the one exception to append-only)
-- ---------------------------------------------------------------------------
-- (its id, kept for the checks after it is gone)
create temp table deleted_team on commit drop as select tests.account_id('t24-team') as id;
select tests.authenticate_as('t24_owner');
select lives_ok($$ select public.delete_account(tests.account_id('t24-team')) $$,
  'the owner deletes the team, which has lots, ledger entries, usage and holds');
select tests.clear_authentication();
select is(
  (select count(*)::int from public.credit_balances where account_id = (select id from deleted_team))
  + (select count(*)::int from public.credit_grants where account_id = (select id from deleted_team))
  + (select count(*)::int from public.credit_ledger where account_id = (select id from deleted_team))
  + (select count(*)::int from public.usage_events where account_id = (select id from deleted_team))
  + (select count(*)::int from public.credit_holds where account_id = (select id from deleted_team)),
  0, 'its wallet, lots, ledger, usage events and holds are gone');

select * from finish();
rollback;
