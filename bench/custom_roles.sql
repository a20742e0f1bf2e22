-- Custom roles in the tables for pair 4 (npm run bench -- --only=ledger --apply=bench/custom_roles.sql):
-- every account defines a custom role "ledger_reader" (credits.read, billing.read,
-- members.read), and user n also belongs to account n+1 with that role, so the RLS
-- lookups run over four times as many roles and twice as many memberships.
insert into public.roles (account_id, key, name, rank)
select a.id, 'ledger_reader', 'Ledger reader', 25 from public.accounts a;

insert into public.role_permissions (role_id, permission)
select r.id, p.permission
from public.roles r
cross join unnest(array['credits.read', 'billing.read', 'members.read']) p (permission)
where r.account_id is not null;

insert into public.account_members (account_id, user_id, role)
select n.account_id, u.id, 'ledger_reader'
from auth.users u
cross join lateral (
  select a.id as account_id from public.accounts a
  where a.id > u.id order by a.id limit 1
) n;

analyze public.roles;
analyze public.role_permissions;
analyze public.account_members;
