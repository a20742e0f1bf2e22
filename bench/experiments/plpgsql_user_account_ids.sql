-- Experiment (not a migration): public.user_account_ids as plpgsql, same signature,
-- same query, so that its plan is cached per session instead of the SQL function body
-- being parsed and planned on every call (PostgreSQL 15 never caches the plans of SQL
-- functions that cannot be inlined; SECURITY DEFINER and SET search_path prevent it).
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
