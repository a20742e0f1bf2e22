-- The local stack's seed (supabase/seed/catalog.sql, then supabase/seed/demo.sql), as
-- `npm start` and `npm test` apply it. The demo users must be able to sign in on a real
-- stack: GoTrue scans confirmation_token, recovery_token, email_change_token_new and
-- email_change into plain strings, and a NULL in any of them fails every sign-in of that user.
-- That a hosted deploy (the catalog alone) creates no user and no staff admin is proved by
-- supabase/functions/tests/hosted_deploy_test.ts, which runs the README's command.
begin;
select plan(4);

-- Only the seed has written auth.users before the test files run (each rolls back).
select results_eq(
  $$ select email from auth.users order by email $$,
  $$ values ('alice@demo.ledgerbase.dev'::varchar), ('bob@demo.ledgerbase.dev') $$,
  'the demo seed creates Alice and Bob');

select is_empty(
  $$ select email from auth.users
     where confirmation_token is null or recovery_token is null or email_change_token_new is null or email_change is null $$,
  'no user the seed creates has a NULL token column that GoTrue reads as a string');

select results_eq(
  $$ select u.email from public.user_roles r join auth.users u on u.id = r.user_id where r.role = 'admin' $$,
  $$ values ('alice@demo.ledgerbase.dev'::varchar) $$,
  'the demo seed makes Alice, and only her, a staff admin (local stack only)');

select is(
  (select count(*) from public.plans where key in ('free', 'starter', 'pro', 'enterprise')), 4::bigint,
  'the catalog seed is applied before the demo users');

select * from finish();
rollback;
