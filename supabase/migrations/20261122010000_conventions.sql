-- Conventions every later migration relies on.
--
-- 1. Nothing we create is reachable by an API role unless a migration grants it.
--    Supabase projects made before 2026-05-30 grant every new object in `public` to
--    anon, authenticated and service_role, and PostgreSQL lets PUBLIC execute every new
--    function. Newer projects grant nothing. Removing both defaults here makes our
--    objects behave the same on either kind of project: each table, view and function
--    then carries exactly the grants its migration gives it.
-- 2. `private` holds what clients never reach: settings, internals, helpers.
-- 3. `private.now()` is the one clock of the business rules, so tests can freeze time.

-- ---------------------------------------------------------------------------
-- Default privileges for objects created by the migration role
-- ---------------------------------------------------------------------------
alter default privileges for role postgres in schema public
  revoke all on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke all on sequences from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke all on functions from anon, authenticated, service_role;
alter default privileges for role postgres
  revoke execute on functions from public;

-- ---------------------------------------------------------------------------
-- The private schema
-- ---------------------------------------------------------------------------
create schema if not exists private;
comment on schema private is
  'Internals of ledgerbase: settings, rate-limit buckets, Stripe processing and helpers. Never exposed through the Data API; no grants to anon or authenticated.';
revoke all on schema private from public;

-- ---------------------------------------------------------------------------
-- The clock
-- ---------------------------------------------------------------------------
-- Hot-path helpers are plpgsql, not sql: a sql function with a SET clause is never
-- inlined, and PostgreSQL 15 re-plans its body on every call; plpgsql keeps its plans.
create or replace function private.now()
returns timestamptz
language plpgsql
volatile
set search_path = ''
as $$
begin
  return coalesce(
    nullif(pg_catalog.current_setting('ledgerbase.now', true), '')::timestamptz,
    pg_catalog.clock_timestamp()
  );
end
$$;
comment on function private.now() is
  'The current time for business rules (expiry, rate limits, invitations). Tests freeze it with set_config(''ledgerbase.now'', ..., true); clients cannot, as no exposed function sets configuration.';
