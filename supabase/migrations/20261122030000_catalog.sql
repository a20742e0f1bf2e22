-- Catalog: what the SaaS sells and what usage costs.
--
-- plans, credit_packs and billable_actions are readable by everyone (active rows only;
-- staff admins see all) and writable only by staff admins. Prices are integer cents
-- with a currency; credits are integers.

-- ---------------------------------------------------------------------------
-- plans
-- ---------------------------------------------------------------------------
create table public.plans (
  key text primary key check (key ~ '^[a-z][a-z0-9_]{1,39}$'),
  name text not null check (length(name) between 1 and 80),
  tier integer not null default 0,
  price_cents bigint not null default 0 check (price_cents >= 0),
  currency text not null default 'usd' check (currency ~ '^[a-z]{3}$'),
  billing_interval text not null default 'month' check (billing_interval in ('month', 'year')),
  stripe_price_id text unique,
  stripe_product_id text,
  included_credits bigint not null default 0 check (included_credits >= 0),
  trial_days integer not null default 0 check (trial_days between 0 and 730),
  max_members integer check (max_members is null or max_members > 0),
  features jsonb not null default '{}'::jsonb check (jsonb_typeof(features) in ('object', 'array')),
  limits jsonb not null default '{}'::jsonb check (jsonb_typeof(limits) = 'object'),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.plans is 'Subscription plans. An account without a live subscription is on the plan with key ''free''.';
comment on column public.plans.tier is 'Ordering of plans: a higher tier is an upgrade.';
comment on column public.plans.price_cents is 'Price per billing interval in the smallest currency unit.';
comment on column public.plans.included_credits is 'Credits granted on every paid invoice of the plan; they expire at the end of the period.';
comment on column public.plans.max_members is 'Most members a team account on this plan may have, the owner included (pending invitations count when inviting); null means unlimited. Enforced by invite_member and accept_invitation; lowering it never removes anyone.';
comment on column public.plans.limits is
  'Quotas and rate-limit overrides: {"quotas": {"<action>" | "category:<category>": <units per billing period>}, "rate_limits": {"<policy>": {"capacity": n, "refill_per_second": r}}}.';
create index plans_stripe_product_id_idx on public.plans (stripe_product_id);

-- ---------------------------------------------------------------------------
-- credit_packs
-- ---------------------------------------------------------------------------
create table public.credit_packs (
  key text primary key check (key ~ '^[a-z][a-z0-9_]{1,39}$'),
  name text not null check (length(name) between 1 and 80),
  credits bigint not null check (credits > 0),
  price_cents bigint not null check (price_cents >= 0),
  currency text not null default 'usd' check (currency ~ '^[a-z]{3}$'),
  stripe_price_id text unique,
  stripe_product_id text,
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.credit_packs is 'One-time credit purchases. Purchased credits never expire.';
create index credit_packs_stripe_product_id_idx on public.credit_packs (stripe_product_id);

-- ---------------------------------------------------------------------------
-- billable_actions
-- ---------------------------------------------------------------------------
create table public.billable_actions (
  key text primary key check (key ~ '^[a-z][a-z0-9_]{1,59}$'),
  name text not null check (length(name) between 1 and 80),
  category text not null default 'general' check (category ~ '^[a-z][a-z0-9_]{0,39}$'),
  credits bigint not null check (credits >= 0),
  unit_size integer not null default 1 check (unit_size > 0),
  description text,
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.billable_actions is
  'What usage costs: quantity units of an action cost ceil(quantity * credits / unit_size) credits.';
comment on column public.billable_actions.unit_size is 'How many units the price is for, e.g. 1 call or 1000 tokens.';
comment on column public.billable_actions.category is 'Groups actions for quotas ("category:<name>" in plans.limits.quotas).';

-- ---------------------------------------------------------------------------
-- updated_at
-- ---------------------------------------------------------------------------
create trigger plans_set_updated_at before update on public.plans
  for each row execute function private.set_updated_at();
create trigger credit_packs_set_updated_at before update on public.credit_packs
  for each row execute function private.set_updated_at();
create trigger billable_actions_set_updated_at before update on public.billable_actions
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Row level security: everyone reads active rows, staff admins manage
-- ---------------------------------------------------------------------------
alter table public.plans enable row level security;
alter table public.credit_packs enable row level security;
alter table public.billable_actions enable row level security;

grant select on public.plans, public.credit_packs, public.billable_actions to anon, authenticated, service_role;
grant insert, update, delete on public.plans, public.credit_packs, public.billable_actions to authenticated;

create policy "Visitors can read active plans" on public.plans
  for select to anon using (active);
create policy "Users can read active plans and staff admins all plans" on public.plans
  for select to authenticated using (active or (select public.is_staff_admin()));
create policy "Staff admins can create plans" on public.plans
  for insert to authenticated with check ((select public.is_staff_admin()));
create policy "Staff admins can update plans" on public.plans
  for update to authenticated using ((select public.is_staff_admin())) with check ((select public.is_staff_admin()));
create policy "Staff admins can delete plans" on public.plans
  for delete to authenticated using ((select public.is_staff_admin()));

create policy "Visitors can read active credit packs" on public.credit_packs
  for select to anon using (active);
create policy "Users can read active credit packs and staff admins all packs" on public.credit_packs
  for select to authenticated using (active or (select public.is_staff_admin()));
create policy "Staff admins can create credit packs" on public.credit_packs
  for insert to authenticated with check ((select public.is_staff_admin()));
create policy "Staff admins can update credit packs" on public.credit_packs
  for update to authenticated using ((select public.is_staff_admin())) with check ((select public.is_staff_admin()));
create policy "Staff admins can delete credit packs" on public.credit_packs
  for delete to authenticated using ((select public.is_staff_admin()));

create policy "Visitors can read active billable actions" on public.billable_actions
  for select to anon using (active);
create policy "Users can read active billable actions and staff admins all actions" on public.billable_actions
  for select to authenticated using (active or (select public.is_staff_admin()));
create policy "Staff admins can create billable actions" on public.billable_actions
  for insert to authenticated with check ((select public.is_staff_admin()));
create policy "Staff admins can update billable actions" on public.billable_actions
  for update to authenticated using ((select public.is_staff_admin())) with check ((select public.is_staff_admin()));
create policy "Staff admins can delete billable actions" on public.billable_actions
  for delete to authenticated using ((select public.is_staff_admin()));

-- ---------------------------------------------------------------------------
-- The free plan always exists: entitlements fall back to it. Its max_members 1 means a
-- team on free has its owner only: inviting needs a paid plan.
-- ---------------------------------------------------------------------------
insert into public.plans (key, name, tier, price_cents, included_credits, max_members, features, limits)
values ('free', 'Free', 0, 0, 0, 1, '{}'::jsonb, '{}'::jsonb)
on conflict (key) do nothing;

-- ---------------------------------------------------------------------------
-- The account's plan: the one place that decides it
-- ---------------------------------------------------------------------------
create or replace function private.account_plan(
  account_id uuid,
  out plan_key text,
  out limits jsonb,
  out period_start timestamptz,
  out period_end timestamptz
)
language sql
stable
set search_path = ''
as $$
  -- Until billing exists every account is on the free plan, whose period is the calendar month (UTC).
  select p.key, p.limits,
         pg_catalog.date_trunc('month', private.now(), 'UTC'),
         pg_catalog.date_trunc('month', private.now(), 'UTC') + interval '1 month'
  from public.plans p
  where p.key = 'free'
$$;
comment on function private.account_plan(uuid) is
  'The plan an account is on now, its limits and the current billing period. Quotas and rate-limit overrides read it; billing redefines it to follow the live subscription.';

-- The member limit of team accounts (identity seam): plans.max_members of the account's plan.
create or replace function private.account_member_limit(account_id uuid, out plan_key text, out max_members integer)
returns record
language sql
stable
set search_path = ''
as $$
  select ap.plan_key, p.max_members
  from private.account_plan(account_member_limit.account_id) ap
  left join public.plans p on p.key = ap.plan_key
$$;
comment on function private.account_member_limit(uuid) is
  'The plan an account is on (private.account_plan, which billing redefines) and its max_members, the most members a team on it may have, the owner included (null = unlimited). invite_member and accept_invitation enforce it.';
