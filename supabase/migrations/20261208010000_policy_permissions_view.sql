-- Row-level security reads the caller's permissions through one view instead of a function call.
--
-- Every "members with <permission>" policy asked `account_id in (select
-- public.user_account_ids('<permission>'))`: a PL/pgSQL security-definer function called once per
-- query. The call itself (entering the function, setting and restoring its search_path, starting
-- its query in a new executor) cost more than the membership lookup it made: a read of one's own
-- ledger page ran at 1.3-1.6 x the owner's cost with it, 1.03 x with a policy of `true`.
--
-- access.caller_permissions is that lookup as a view: the (account, permission) pairs the signed-in
-- user holds through their membership roles. A view runs with its owner's rights, so it reads the
-- memberships without their own row-level security (no recursion) and without a function call; the
-- planner inlines it into each policy (a hashed subplan, built once per query), and a prepared
-- statement plans it once. The rule "holds a permission in an account" now lives only in the
-- view: has_permission and user_account_ids read it too.
--
-- The policies keep the `account_id in (select ...)` form: as `account_id = any (array(...))`
-- the planner takes the check for a selective one and reads a whole account's history through
-- a bitmap scan and a sort instead of the newest 50 entries of the page index (1.8 x the owner's
-- cost instead of 1.2 x in the same bench).
--
-- Who can see what does not change: the same policies, the same permissions, the same staff-admin
-- arm (evaluated only for rows the memberships do not cover).

-- ---------------------------------------------------------------------------
-- The schema: only what policies read, nothing an API exposes
-- ---------------------------------------------------------------------------
create schema access;
comment on schema access is
  'What row-level security policies read about the caller. Not exposed through the Data API; authenticated may use it so that its policies can read it.';
revoke all on schema access from public;
grant usage on schema access to authenticated;

-- ---------------------------------------------------------------------------
-- The caller's permissions
-- ---------------------------------------------------------------------------
create view access.caller_permissions with (security_barrier = true) as
  select m.account_id, rp.permission
  from public.account_members m
  join public.role_permissions rp on rp.role_id = m.role_id
  where m.user_id = (select auth.uid());
alter view access.caller_permissions owner to postgres;
revoke all on access.caller_permissions from public, anon, authenticated, service_role;
grant select on access.caller_permissions to authenticated;
comment on view access.caller_permissions is
  'The permissions the signed-in user (auth.uid()) holds, one row per account and permission, through their membership role. The one definition of "holds a permission in an account": policies read it as `account_id in (select p.account_id from access.caller_permissions p where p.permission = ''credits.read'')`, has_permission and user_account_ids read it. Runs with its owner''s rights (memberships are read without their own row-level security); security_barrier keeps a caller''s own conditions from seeing other users'' rows.';
comment on column access.caller_permissions.account_id is 'An account the caller is a member of.';
comment on column access.caller_permissions.permission is 'A permission their role grants in that account.';

-- ---------------------------------------------------------------------------
-- The functions read the view
-- ---------------------------------------------------------------------------
create or replace function public.has_permission(account_id uuid, permission text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (
    select 1 from access.caller_permissions p
    where p.account_id = has_permission.account_id and p.permission = has_permission.permission
  );
end
$$;
comment on function public.has_permission(uuid, text) is
  'Whether the current user (auth.uid()) holds the permission in the account through their membership role (access.caller_permissions).';

create or replace function public.user_account_ids(permission text default null)
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if user_account_ids.permission is null then
    return query select m.account_id from public.account_members m where m.user_id = (select auth.uid());
  else
    return query select p.account_id from access.caller_permissions p where p.permission = user_account_ids.permission;
  end if;
end
$$;
comment on function public.user_account_ids(text) is
  'The accounts of the current user, or only those where they hold the permission (access.caller_permissions). Policies read the view directly, which costs no function call: `account_id in (select p.account_id from access.caller_permissions p where p.permission = ''credits.read'')`.';

-- ---------------------------------------------------------------------------
-- The policies read the view (their names and what they allow are unchanged)
-- ---------------------------------------------------------------------------
alter policy "Members with credits.read can read their account's ledger" on ledger.entries
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'credits.read') or (select public.is_staff_admin())));

alter policy "Members with credits.read can read their account's grants" on ledger.lots
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'credits.read') or (select public.is_staff_admin())));

alter policy "Inviters can read their account's invitations" on public.account_invitations
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'members.invite') or (select public.is_staff_admin())));

alter policy "Members can read their account's members" on public.account_members
  using ((user_id = (select auth.uid()) or account_id in (select p.account_id from access.caller_permissions p where p.permission = 'members.read') or (select public.is_staff_admin())));

alter policy "Members with api_keys.manage can read their account's API keys" on public.api_keys
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'api_keys.manage') or (select public.is_staff_admin())));

alter policy "Members with audit.read can read their account's audit log and " on public.audit_log
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'audit.read') or (select public.is_staff_admin())));

alter policy "Members with billing.read can read their account's auto top-ups" on public.auto_topup_attempts
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'billing.read') or (select public.is_staff_admin())));

alter policy "Members with billing.read can read their account's auto top-up " on public.auto_topup_settings
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'billing.read') or (select public.is_staff_admin())));

alter policy "Members with billing.read can read their account's customer" on public.billing_customers
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'billing.read') or (select public.is_staff_admin())));

alter policy "Members with credits.read can read their account's balance" on public.credit_balances
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'credits.read') or (select public.is_staff_admin())));

alter policy "Members with credits.read can read their account's holds" on public.credit_holds
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'credits.read') or (select public.is_staff_admin())));

alter policy "Members with billing.read can read their account's payments" on public.payments
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'billing.read') or (select public.is_staff_admin())));

alter policy "Users can read active plans, their subscribed plans, and staff " on public.plans
  using (active
         or (select public.is_staff_admin())
         or key in (select s.plan_key from public.subscriptions s
                    where s.account_id in (select p.account_id from access.caller_permissions p where p.permission = 'billing.read')));

alter policy "Users can read their own profile, their teammates' and staff ad" on public.profiles
  using (id = (select auth.uid())
         or (select public.is_staff_admin())
         or exists (select 1 from public.account_members m
                    where m.user_id = profiles.id
                      and m.account_id in (select p.account_id from access.caller_permissions p where p.permission = 'members.read')));

alter policy "Users read the permissions of the roles they can read" on public.role_permissions
  using (role_id in (select r.id from public.roles r
                     where r.account_id is null
                        or r.account_id in (select p.account_id from access.caller_permissions p where p.permission = 'members.read')));

alter policy "Users read the system roles and their accounts' custom roles" on public.roles
  using (((account_id is null) or account_id in (select p.account_id from access.caller_permissions p where p.permission = 'members.read')));

alter policy "Members with billing.read can read their account's subscription" on public.subscription_history
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'billing.read') or (select public.is_staff_admin())));

alter policy "Members with billing.read can read their account's subscription" on public.subscriptions
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'billing.read') or (select public.is_staff_admin())));

alter policy "Members with credits.read can read their account's overage" on public.usage_overages
  using ((account_id in (select p.account_id from access.caller_permissions p where p.permission = 'credits.read') or (select public.is_staff_admin())));

alter policy "Members with webhooks.manage can read their account's webhook d" on public.webhook_deliveries
  using (account_id in (select p.account_id from access.caller_permissions p where p.permission = 'webhooks.manage'));

alter policy "Members with webhooks.manage can read their account's webhook e" on public.webhook_endpoints
  using (account_id in (select p.account_id from access.caller_permissions p where p.permission = 'webhooks.manage'));
