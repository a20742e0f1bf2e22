-- For comparison only (npm run bench -- --only=ledger --apply=bench/previous_permission_lookup.sql):
-- puts back the ledger's read policy as it was before access.caller_permissions, a call of
-- public.user_account_ids per query, with user_account_ids as it was. Never apply it elsewhere.
create or replace function access.bench_old_user_account_ids(permission text)
returns setof uuid language plpgsql stable security definer set search_path = '' as $$
begin
  return query
  select m.account_id
  from public.account_members m
  where m.user_id = (select auth.uid())
    and exists (select 1 from public.role_permissions rp
                where rp.role_id = m.role_id and rp.permission = bench_old_user_account_ids.permission);
end
$$;
revoke all on function access.bench_old_user_account_ids(text) from public;
grant execute on function access.bench_old_user_account_ids(text) to authenticated;
alter policy "Members with credits.read can read their account's ledger" on ledger.entries
  using (account_id in (select access.bench_old_user_account_ids('credits.read')) or (select public.is_staff_admin()));
