-- Experiment (not a migration; apply with `npm run bench -- --apply=bench/experiments/plpgsql_helpers.sql`).
--
-- The small `language sql` helpers on the hot paths carry `set search_path = ''` (and
-- some SECURITY DEFINER), so PostgreSQL never inlines them, and PostgreSQL 15 does not
-- cache the plan of a non-inlined SQL function: its body is parsed and planned again on
-- every call. The same bodies in plpgsql keep their plans for the life of the session.
-- Same signatures, same results (account_plan reads the clock once instead of twice).

create or replace function private.now()
returns timestamptz
language plpgsql
volatile
set search_path = ''
as $$
begin
  return coalesce(nullif(pg_catalog.current_setting('ledgerbase.now', true), '')::timestamptz, pg_catalog.clock_timestamp());
end
$$;

create or replace function private.setting(key text)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return (select s.value from private.settings s where s.key = setting.key);
end
$$;

create or replace function private.low_balance_threshold()
returns bigint
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce((private.setting('low_balance_threshold') #>> '{}')::bigint, 0);
end
$$;

create or replace function private.is_trusted_caller()
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
  return pg_catalog.current_setting('role') not in ('anon', 'authenticated');
end
$$;

create or replace function private.actor_role()
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return case when pg_catalog.current_setting('role') in ('anon', 'authenticated', 'service_role')
              then pg_catalog.current_setting('role') else 'system' end;
end
$$;

create or replace function private.account_plan(
  account_id uuid,
  out plan_key text,
  out limits jsonb,
  out period_start timestamptz,
  out period_end timestamptz
)
language plpgsql
stable
set search_path = ''
as $$
declare
  at timestamptz := private.now();
begin
  select p.key, p.limits, pg_catalog.date_trunc('month', at, 'UTC'), pg_catalog.date_trunc('month', at, 'UTC') + interval '1 month'
  into plan_key, limits, period_start, period_end
  from public.plans p
  where p.key = 'free';
end
$$;

create or replace function public.is_staff_admin()
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.user_roles r where r.user_id = (select auth.uid()) and r.role = 'admin');
end
$$;

create or replace function public.user_account_ids(permission text default null)
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return query
  select m.account_id
  from public.account_members m
  where m.user_id = (select auth.uid())
    and (user_account_ids.permission is null
         or exists (select 1 from public.role_permissions rp
                    where rp.role = m.role and rp.permission = user_account_ids.permission));
end
$$;
