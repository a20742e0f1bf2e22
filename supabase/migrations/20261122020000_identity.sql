-- Identity, team accounts and RBAC (SPEC §4.1, §4.9).
--
-- What this migration creates:
--   private.settings / private.setting()      operator settings (invitation_ttl, signup_bonus_credits, ...)
--   private.reserved_names                    words refused as usernames and team slugs
--   public.roles / permissions / role_permissions   the RBAC catalog (readable by authenticated)
--   public.user_roles                         staff roles of the SaaS operator (member | admin)
--   public.profiles                           1:1 auth.users, column-level protection
--   public.accounts / account_members / account_invitations   personal and team accounts
--   private.invitation_tokens                 sha256 of invitation tokens (never readable by clients)
--   private.signup_referral_codes             raw_user_meta_data.referral_code remembered at signup
--   public.has_permission(), is_staff_admin(), user_account_ids()   helpers used by policies
--   the RPCs of SPEC §4.9 for accounts, members and invitations
--   triggers on auth.users: signup, email sync, deletion guard
--
-- Seams for later migrations (replace them with `create or replace`, same signature):
--   private.on_account_created(account_id uuid, user_id uuid)  called once per new account
--     (personal at signup, team in create_team_account); the credits migration creates the
--     wallet and grants the signup bonus (setting signup_bonus_credits) here.
--   private.on_signup(user_id uuid, referral_code text)  called once per new user after every
--     signup row exists; the referral migration applies the code here. Errors raised in it are
--     turned into warnings: a referral problem never blocks a signup.
--   private.account_member_limit(account_id uuid)  (out plan_key, out max_members) the most
--     members the account's plan allows, null for unlimited; unlimited here, the catalog
--     migration reads plans.max_members of private.account_plan(account_id) instead.
--
-- Writes by clients go through the RPCs only (security definer, search_path ''), except the
-- four editable columns of one's own profile. Every table is under RLS.

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------
create table private.settings (
  key text primary key check (key ~ '^[a-z][a-z0-9_]*$'),
  value jsonb not null,
  description text,
  updated_at timestamptz not null default now()
);
comment on table private.settings is
  'Operator settings read by business rules through private.setting(key). Each migration that needs a setting inserts its row (on conflict do nothing) so operators'' changes survive.';
comment on column private.settings.value is 'The value as JSON: a number, a string such as an interval ("7 days"), an object, ...';
alter table private.settings enable row level security;
create policy "Clients never access settings" on private.settings
  as restrictive for all to anon, authenticated using (false) with check (false);

insert into private.settings (key, value, description) values
  ('invitation_ttl', '"7 days"', 'How long an account invitation stays valid: an interval string ("7 days") or a number of seconds.'),
  ('signup_bonus_credits', '50', 'Credits granted to the personal account of every new user who is not anonymous (applied by the credits migration through private.on_account_created).')
on conflict (key) do nothing;

create function private.setting(key text)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return (select s.value from private.settings s where s.key = setting.key);
end
$$;
comment on function private.setting(text) is
  'The value of a setting, or null when the row does not exist (callers supply their default).';

create function private.setting_interval(key text, fallback interval)
returns interval
language plpgsql
stable
set search_path = ''
as $$
declare
  v jsonb := private.setting(setting_interval.key);
begin
  if v is null then
    return fallback;
  elsif jsonb_typeof(v) = 'number' then
    return make_interval(secs => (v #>> '{}')::double precision);
  elsif jsonb_typeof(v) = 'string' then
    return (v #>> '{}')::interval;
  end if;
  return fallback;
exception when others then
  -- a malformed setting must not break the feature that reads it
  return fallback;
end
$$;
comment on function private.setting_interval(text, interval) is
  'A setting read as an interval: a JSON string ("7 days") or a number of seconds; fallback when absent or malformed.';

-- ---------------------------------------------------------------------------
-- Shared helpers
-- ---------------------------------------------------------------------------
create function private.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
comment on function private.set_updated_at() is 'BEFORE UPDATE trigger: stamps updated_at.';

create trigger settings_set_updated_at
  before update on private.settings
  for each row execute function private.set_updated_at();

create table private.reserved_names (
  name text primary key check (name = lower(name)),
  reason text
);
comment on table private.reserved_names is
  'Words refused as usernames and as team account slugs (routes, roles, brand names, ...).';
alter table private.reserved_names enable row level security;
create policy "Clients never access reserved names" on private.reserved_names
  as restrictive for all to anon, authenticated using (false) with check (false);

insert into private.reserved_names (name, reason)
select unnest(array[
  'about', 'account', 'accounts', 'admin', 'administrator', 'api', 'app', 'assets', 'auth',
  'billing', 'blog', 'callback', 'dashboard', 'docs', 'edit', 'help', 'invitation', 'invitations',
  'invite', 'ledgerbase', 'login', 'logout', 'mail', 'me', 'new', 'null', 'owner', 'postmaster',
  'pricing', 'privacy', 'private', 'profile', 'profiles', 'public', 'register', 'root', 'security',
  'settings', 'signin', 'signup', 'staff', 'static', 'status', 'supabase', 'support', 'system',
  'team', 'teams', 'terms', 'undefined', 'user', 'users', 'webhook', 'webhooks', 'www'
]), 'route or role name'
on conflict (name) do nothing;

create function private.is_reserved_name(name text)
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select exists (select 1 from private.reserved_names r where r.name = lower(is_reserved_name.name))
  );
end
$$;
comment on function private.is_reserved_name(text) is 'True when the word is reserved (case-insensitive).';

create function private.username_problem(username text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select case
      when username_problem.username is null then null
      when username_problem.username !~ '^[a-z0-9_]{3,30}$' then '3 to 30 characters among a-z, 0-9 and _'
      when private.is_reserved_name(username_problem.username) then 'this username is reserved'
    end
  );
end
$$;
comment on function private.username_problem(text) is
  'Why a (lower-cased) username is not acceptable, or null when it is. Availability is checked separately.';

create function private.slug_problem(slug text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select case
      when slug_problem.slug is null then 'a team account needs a slug'
      when slug_problem.slug !~ '^[a-z0-9][a-z0-9-]{1,46}[a-z0-9]$'
        then '3 to 48 characters among a-z, 0-9 and -, starting and ending with a letter or digit'
      when private.is_reserved_name(slug_problem.slug) then 'this slug is reserved'
    end
  );
end
$$;
comment on function private.slug_problem(text) is
  'Why a (lower-cased) team slug is not acceptable, or null when it is. Availability is checked separately.';

create function private.generate_referral_code()
returns text
language plpgsql
volatile
set search_path = ''
as $$
declare
  alphabet constant text := '23456789ABCDEFGHJKMNPQRSTUVWXYZ';  -- no 0/O, 1/I/L
  bytes bytea := extensions.gen_random_bytes(16);
  code text := '';
  b int;
  i int := 0;
begin
  -- rejection sampling keeps every character equally likely (31 * 8 = 248)
  while char_length(code) < 8 loop
    if i >= 16 then
      bytes := extensions.gen_random_bytes(16);
      i := 0;
    end if;
    b := get_byte(bytes, i);
    i := i + 1;
    if b < 248 then
      code := code || substr(alphabet, (b % 31) + 1, 1);
    end if;
  end loop;
  return code;
end
$$;
comment on function private.generate_referral_code() is
  'A random 8-character referral code from an unambiguous alphabet (23456789ABCDEFGHJKMNPQRSTUVWXYZ). Uniqueness is ensured by the caller.';

-- ---------------------------------------------------------------------------
-- RBAC catalog
-- ---------------------------------------------------------------------------
create table public.roles (
  key text primary key check (key ~ '^[a-z][a-z0-9_]*$'),
  name text not null,
  description text,
  rank integer not null unique check (rank > 0)
);
comment on table public.roles is
  'Account roles. A higher rank outranks a lower one: nobody grants a role ranked above their own, nor changes a member ranked above them.';
comment on column public.roles.rank is 'owner 40 > admin 30 > member 20 > viewer 10.';

create table public.permissions (
  key text primary key check (key ~ '^[a-z_]+\.[a-z_]+$'),
  description text not null
);
comment on table public.permissions is 'What a role may do in an account, checked by has_permission(account_id, permission).';

create table public.role_permissions (
  role text not null references public.roles (key) on delete cascade,
  permission text not null references public.permissions (key) on delete cascade,
  primary key (role, permission)
);
comment on table public.role_permissions is 'Which permissions each role holds.';
create index role_permissions_permission_idx on public.role_permissions (permission);

insert into public.roles (key, name, description, rank) values
  ('owner', 'Owner', 'Full control, including deleting the account and transferring ownership.', 40),
  ('admin', 'Admin', 'Manages the account, its members, billing and API keys; cannot delete it or transfer ownership.', 30),
  ('member', 'Member', 'Uses the account: reads members and billing, consumes credits.', 20),
  ('viewer', 'Viewer', 'Read-only access to members, billing and credits.', 10);

insert into public.permissions (key, description) values
  ('account.update', 'Rename the account and change its slug.'),
  ('account.delete', 'Delete the team account.'),
  ('members.read', 'See the members of the account.'),
  ('members.invite', 'Invite people, see and revoke pending invitations.'),
  ('members.manage', 'Change members'' roles and remove members.'),
  ('billing.read', 'See the subscription, payments and invoices.'),
  ('billing.manage', 'Start checkouts, change plans, open the billing portal.'),
  ('credits.read', 'See the credit balance, grants, ledger and usage.'),
  ('credits.consume', 'Spend the account''s credits.'),
  ('api_keys.manage', 'Create and revoke API keys.'),
  ('audit.read', 'Read the account''s audit log.');

insert into public.role_permissions (role, permission)
select 'owner', p.key from public.permissions p
union all
select 'admin', p.key from public.permissions p where p.key <> 'account.delete'
union all
select 'member', unnest(array['members.read', 'billing.read', 'credits.read', 'credits.consume'])
union all
select 'viewer', unnest(array['members.read', 'billing.read', 'credits.read']);

alter table public.roles enable row level security;
alter table public.permissions enable row level security;
alter table public.role_permissions enable row level security;

create policy "Signed-in users can read the roles" on public.roles
  for select to authenticated using (true);
create policy "Signed-in users can read the permissions" on public.permissions
  for select to authenticated using (true);
create policy "Signed-in users can read which role holds which permission" on public.role_permissions
  for select to authenticated using (true);

grant select on public.roles, public.permissions, public.role_permissions to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Staff roles (the operator of the SaaS)
-- ---------------------------------------------------------------------------
create table public.user_roles (
  user_id uuid primary key references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('member', 'admin')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.user_roles is
  'Staff role of every user for the operator of the SaaS: member (everyone, set at signup) or admin. Changed by the service role or SQL, never by users.';
alter table public.user_roles enable row level security;

create trigger user_roles_set_updated_at
  before update on public.user_roles
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Profiles
-- ---------------------------------------------------------------------------
create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  email text,
  username text unique
    check (username ~ '^[a-z0-9_]{3,30}$'),
  full_name text check (char_length(full_name) between 1 and 200),
  avatar_path text
    check (starts_with(avatar_path, id::text || '/') and char_length(avatar_path) <= 1024),
  referral_code text not null unique check (referral_code ~ '^[2-9A-HJKMNP-Z]{8}$'),
  referred_by uuid references auth.users (id) on delete set null,
  preferences jsonb not null default '{}'::jsonb check (jsonb_typeof(preferences) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint profiles_no_self_referral check (referred_by is distinct from id)
);
comment on table public.profiles is
  'One row per auth user, created by the signup trigger. Users update only username, full_name, avatar_path and preferences of their own row (column grants); the rest is maintained by the system.';
comment on column public.profiles.email is 'Copy of auth.users.email, kept in sync by a trigger.';
comment on column public.profiles.username is 'Optional handle: unique, stored lower-case (input is lower-cased), 3–30 of [a-z0-9_], not a reserved word.';
comment on column public.profiles.avatar_path is 'Object path in the avatars bucket; must be inside the user''s own folder "<user id>/".';
comment on column public.profiles.referral_code is 'This user''s code for the referral program: 8 characters of 23456789ABCDEFGHJKMNPQRSTUVWXYZ, unique.';
comment on column public.profiles.referred_by is 'The referrer, set by the referral program (never by the user).';
comment on column public.profiles.preferences is 'Free-form UI preferences (a JSON object), editable by the user.';
create index profiles_referred_by_idx on public.profiles (referred_by);
alter table public.profiles enable row level security;

create function private.validate_profile()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  problem text;
begin
  -- username: normalized, validated, available (checked across all rows, hence definer)
  if tg_op = 'INSERT' or new.username is distinct from old.username then
    new.username := nullif(lower(btrim(new.username)), '');
    problem := private.username_problem(new.username);
    if problem is not null then
      raise exception using errcode = '22023', message = 'invalid_username', detail = problem;
    end if;
    if new.username is not null
       and exists (select 1 from public.profiles p where p.username = new.username and p.id <> new.id) then
      raise exception using errcode = 'PT409', message = 'username_taken',
        detail = format('the username %s is already taken', new.username);
    end if;
  end if;

  if tg_op = 'INSERT' or new.full_name is distinct from old.full_name then
    new.full_name := nullif(btrim(new.full_name), '');
    if char_length(new.full_name) > 200 then
      raise exception using errcode = '22023', message = 'invalid_input', detail = 'full_name is longer than 200 characters';
    end if;
  end if;

  if tg_op = 'INSERT' or new.avatar_path is distinct from old.avatar_path then
    new.avatar_path := nullif(new.avatar_path, '');
    if new.avatar_path is not null and (
         not starts_with(new.avatar_path, new.id::text || '/')
         or char_length(new.avatar_path) <= char_length(new.id::text) + 1
         or char_length(new.avatar_path) > 1024
         or new.avatar_path ~ '(^|/)\.\.?(/|$)'
         or new.avatar_path like '%//%') then
      raise exception using errcode = '22023', message = 'invalid_avatar_path',
        detail = 'avatar_path must name an object inside your own folder of the avatars bucket: <user id>/<file>';
    end if;
  end if;

  if new.preferences is null or jsonb_typeof(new.preferences) <> 'object' then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'preferences must be a JSON object';
  end if;

  if tg_op = 'UPDATE' then
    new.updated_at := now();
  end if;
  return new;
end
$$;
comment on function private.validate_profile() is
  'BEFORE INSERT/UPDATE on profiles: lower-cases and validates username (invalid_username, username_taken), full_name, avatar_path (invalid_avatar_path) and preferences; stamps updated_at.';

create trigger profiles_validate
  before insert or update on public.profiles
  for each row execute function private.validate_profile();

-- ---------------------------------------------------------------------------
-- Accounts and memberships
-- ---------------------------------------------------------------------------
create table public.accounts (
  id uuid primary key default gen_random_uuid(),
  kind text not null check (kind in ('personal', 'team')),
  name text not null check (char_length(name) between 1 and 100),
  slug text unique,
  primary_owner uuid not null references auth.users (id) on delete restrict,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint accounts_slug_by_kind check (
    (kind = 'personal' and slug is null)
    or (kind = 'team' and slug ~ '^[a-z0-9][a-z0-9-]{1,46}[a-z0-9]$')
  ),
  constraint accounts_personal_id_is_owner check (kind = 'team' or id = primary_owner)
);
comment on table public.accounts is
  'Billing and ownership unit. Every user has one personal account (id = user id, not shareable); team accounts have members with roles. Changed only through the account RPCs.';
comment on column public.accounts.kind is 'personal (one per user, id = user id) or team.';
comment on column public.accounts.slug is 'URL name of a team: unique, lower-case, 3–48 of [a-z0-9-], not reserved. Null for personal accounts.';
comment on column public.accounts.primary_owner is 'The owner who answers for the account; always a member with role owner. Changed by transfer_ownership.';
comment on column public.accounts.created_by is 'Who created the account (null once that user is deleted).';
create index accounts_primary_owner_idx on public.accounts (primary_owner);
create index accounts_created_by_idx on public.accounts (created_by);
alter table public.accounts enable row level security;

create trigger accounts_set_updated_at
  before update on public.accounts
  for each row execute function private.set_updated_at();

create table public.account_members (
  account_id uuid not null references public.accounts (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null references public.roles (key),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (account_id, user_id)
);
comment on table public.account_members is
  'Who belongs to which account, with which role. Changed only through the RPCs (invitations, set_member_role, remove_member, leave_account, transfer_ownership).';
create index account_members_user_id_idx on public.account_members (user_id);
create index account_members_role_idx on public.account_members (role);
alter table public.account_members enable row level security;

create trigger account_members_set_updated_at
  before update on public.account_members
  for each row execute function private.set_updated_at();

create table public.account_invitations (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  email text not null check (email = lower(email) and char_length(email) <= 254),
  role text not null references public.roles (key),
  invited_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references auth.users (id) on delete set null,
  constraint account_invitations_accepted_by_when_accepted check ((accepted_at is null) = (accepted_by is null))
);
comment on table public.account_invitations is
  'Invitations to team accounts. The token is shown once by invite_member and stored only as a sha256 hash in private.invitation_tokens. Single use, expires after the invitation_ttl setting.';
comment on column public.account_invitations.email is 'The invited address, lower-case; only a user with this (confirmed) email can accept.';
comment on column public.account_invitations.role is 'Role given on acceptance.';
comment on column public.account_invitations.accepted_at is 'Null while pending. One pending invitation per account and email: inviting again replaces it.';
create unique index account_invitations_pending_key on public.account_invitations (account_id, email) where accepted_at is null;
create index account_invitations_account_id_idx on public.account_invitations (account_id);
create index account_invitations_email_idx on public.account_invitations (email);
create index account_invitations_role_idx on public.account_invitations (role);
create index account_invitations_invited_by_idx on public.account_invitations (invited_by);
create index account_invitations_accepted_by_idx on public.account_invitations (accepted_by);
alter table public.account_invitations enable row level security;

create table private.invitation_tokens (
  invitation_id uuid primary key references public.account_invitations (id) on delete cascade,
  token_hash text not null unique check (token_hash ~ '^[0-9a-f]{64}$')
);
comment on table private.invitation_tokens is
  'sha256 (hex) of each invitation token, kept out of the Data API. The plaintext token is returned once by invite_member and never stored.';
alter table private.invitation_tokens enable row level security;
create policy "Clients never access invitation tokens" on private.invitation_tokens
  as restrictive for all to anon, authenticated using (false) with check (false);

create table private.signup_referral_codes (
  user_id uuid primary key references auth.users (id) on delete cascade,
  code text not null check (char_length(code) between 1 and 64),
  created_at timestamptz not null default now()
);
comment on table private.signup_referral_codes is
  'raw_user_meta_data.referral_code as given at signup (trimmed, unvalidated), remembered for the referral program.';
alter table private.signup_referral_codes enable row level security;
create policy "Clients never access signup referral codes" on private.signup_referral_codes
  as restrictive for all to anon, authenticated using (false) with check (false);

-- ---------------------------------------------------------------------------
-- Permission helpers (public: called by policies, which run as the querying role)
-- ---------------------------------------------------------------------------
create function public.has_permission(account_id uuid, permission text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (
    select 1
    from public.account_members m
    join public.role_permissions rp on rp.role = m.role
    where m.account_id = has_permission.account_id
      and m.user_id = (select auth.uid())
      and rp.permission = has_permission.permission
  );
end
$$;
comment on function public.has_permission(uuid, text) is
  'Whether the current user (auth.uid()) holds the permission in the account through their membership role.';

create function public.is_staff_admin()
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (
    select 1 from public.user_roles r
    where r.user_id = (select auth.uid()) and r.role = 'admin'
  );
end
$$;
comment on function public.is_staff_admin() is 'Whether the current user is a staff admin of the operator (public.user_roles).';

create function public.user_account_ids(permission text default null)
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
comment on function public.user_account_ids(text) is
  'The accounts of the current user, or only those where they hold the permission. For policies: `account_id in (select public.user_account_ids(''credits.read''))` is evaluated once per query.';

grant execute on function public.has_permission(uuid, text) to authenticated;
grant execute on function public.is_staff_admin() to authenticated;
grant execute on function public.user_account_ids(text) to authenticated;

create function private.require_user()
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  uid uuid := auth.uid();
begin
  if uid is null then
    raise exception using errcode = '42501', message = 'permission denied', detail = 'sign in first';
  end if;
  return uid;
end
$$;
comment on function private.require_user() is 'The current user id; raises 42501 when there is none.';

create function private.require_permission(account_id uuid, permission text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if not public.has_permission(require_permission.account_id, require_permission.permission) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = format('%s is required on account %s', require_permission.permission, require_permission.account_id);
  end if;
end
$$;
comment on function private.require_permission(uuid, text) is 'Raises 42501 unless the current user holds the permission in the account.';

create function private.lock_account(account_id uuid)
returns public.accounts
language plpgsql
set search_path = ''
as $$
declare
  acc public.accounts;
begin
  select a.* into acc from public.accounts a where a.id = lock_account.account_id for update;
  return acc;
end
$$;
comment on function private.lock_account(uuid) is
  'Locks the account row (serializing membership changes so the last-owner rules hold under concurrency) and returns it, or null when unknown.';

create function private.role_rank(role text)
returns integer
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select r.rank from public.roles r where r.key = role_rank.role
  );
end
$$;
comment on function private.role_rank(text) is 'The rank of a role, null when the role does not exist.';

create function private.caller_rank(account_id uuid)
returns integer
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select r.rank
    from public.account_members m
    join public.roles r on r.key = m.role
    where m.account_id = caller_rank.account_id and m.user_id = auth.uid()
  );
end
$$;
comment on function private.caller_rank(uuid) is 'The rank of the current user''s role in the account, null when not a member.';

-- ---------------------------------------------------------------------------
-- Seams for the credits and referral migrations
-- ---------------------------------------------------------------------------
create function private.on_account_created(account_id uuid, user_id uuid)
returns void
language sql
set search_path = ''
as $$
  -- Intentionally empty. The credits migration replaces this function (same signature)
  -- to create the account's wallet and, for personal accounts of users who are not
  -- anonymous, grant the signup bonus (private.setting('signup_bonus_credits')).
$$;
comment on function private.on_account_created(uuid, uuid) is
  'Seam: called once per new account (personal at signup, team in create_team_account) with the creating user, in the same transaction. No-op here; replaced by the credits migration (wallet + signup bonus). Errors abort the account creation.';

create function private.on_signup(user_id uuid, referral_code text)
returns void
language sql
set search_path = ''
as $$
  -- Intentionally empty. The referral migration replaces this function (same signature)
  -- to apply the code given at signup (also kept in private.signup_referral_codes).
$$;
comment on function private.on_signup(uuid, text) is
  'Seam: called once per new user after profile, personal account, membership and staff role exist; referral_code is raw_user_meta_data.referral_code when it was a non-empty string, else null. No-op here; replaced by the referral migration. Its errors are logged as warnings and never block the signup.';

create function private.account_member_limit(account_id uuid, out plan_key text, out max_members integer)
returns record
language sql
stable
set search_path = ''
as $$
  -- Unlimited until the catalog exists. The catalog migration replaces this function (same
  -- signature) to read plans.max_members of the account's plan (private.account_plan).
  select null::text, null::integer
$$;
comment on function private.account_member_limit(uuid) is
  'Seam: the plan an account is on and the most members it allows (max_members null = unlimited). Unlimited here; replaced by the catalog migration (plans.max_members of private.account_plan).';

create function private.require_member_room(account_id uuid, count_invitations boolean, replaced_email text default null)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  plan_key text;
  max_members integer;
  taken bigint;
begin
  select l.plan_key, l.max_members into plan_key, max_members
  from private.account_member_limit(require_member_room.account_id) l;
  if max_members is null then
    return;
  end if;
  select count(*) into taken from public.account_members m where m.account_id = require_member_room.account_id;
  if require_member_room.count_invitations then
    taken := taken + (
      select count(*) from public.account_invitations i
      where i.account_id = require_member_room.account_id
        and i.accepted_at is null
        and i.expires_at > private.now()
        and i.email is distinct from require_member_room.replaced_email);
  end if;
  if taken + 1 > max_members then
    raise exception using errcode = 'PT409', message = 'member_limit_reached',
      detail = format('the %s plan allows at most %s member(s), the owner included%s', plan_key, max_members,
                      case when require_member_room.count_invitations then '; pending invitations count' else '' end),
      hint = 'upgrade the plan or remove a member';
  end if;
end
$$;
comment on function private.require_member_room(uuid, boolean, text) is
  'Raises PT409 member_limit_reached unless one more member fits the plan''s max_members (private.account_member_limit): counts the members and, when count_invitations, the pending unexpired invitations except one to replaced_email (which the new one replaces). Call it with the account row locked (private.lock_account).';

-- ---------------------------------------------------------------------------
-- Signup, email sync and deletion (triggers on auth.users)
-- ---------------------------------------------------------------------------
create function private.handle_new_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  meta jsonb := case when jsonb_typeof(new.raw_user_meta_data) = 'object' then new.raw_user_meta_data else '{}'::jsonb end;
  wanted_username text;
  display_name text;
  referral text;
  attempt int := 0;
  failed_constraint text;
begin
  -- username: taken from metadata when valid and free, else none (never blocks signup)
  if jsonb_typeof(meta -> 'username') = 'string' then
    wanted_username := nullif(lower(btrim(meta ->> 'username')), '');
    if private.username_problem(wanted_username) is not null
       or exists (select 1 from public.profiles p where p.username = wanted_username) then
      wanted_username := null;
    end if;
  end if;

  if jsonb_typeof(meta -> 'full_name') = 'string' then
    display_name := nullif(btrim(meta ->> 'full_name'), '');
  end if;
  if display_name is null and jsonb_typeof(meta -> 'name') = 'string' then
    display_name := nullif(btrim(meta ->> 'name'), '');
  end if;
  display_name := left(display_name, 200);

  if jsonb_typeof(meta -> 'referral_code') = 'string' then
    referral := left(nullif(btrim(meta ->> 'referral_code'), ''), 64);
  end if;

  -- profile, retrying on a referral-code collision (or a username taken meanwhile)
  loop
    attempt := attempt + 1;
    begin
      insert into public.profiles (id, email, username, full_name, referral_code, created_at, updated_at)
      values (new.id, new.email, wanted_username, display_name, private.generate_referral_code(),
              private.now(), private.now());
      exit;
    exception when unique_violation or sqlstate 'PT409' then
      get stacked diagnostics failed_constraint = constraint_name;
      if attempt >= 10 then
        raise;
      end if;
      if failed_constraint is distinct from 'profiles_referral_code_key' then
        wanted_username := null;
      end if;
    end;
  end loop;

  -- personal account (id = user id) and its owner membership
  insert into public.accounts (id, kind, name, slug, primary_owner, created_by, created_at, updated_at)
  values (
    new.id, 'personal',
    left(coalesce(display_name, wanted_username, nullif(split_part(coalesce(new.email, ''), '@', 1), ''), 'Personal'), 100),
    null, new.id, new.id, private.now(), private.now()
  );
  insert into public.account_members (account_id, user_id, role, created_at, updated_at)
  values (new.id, new.id, 'owner', private.now(), private.now());

  -- staff role
  insert into public.user_roles (user_id, role, created_at, updated_at)
  values (new.id, 'member', private.now(), private.now());

  -- wallet and signup bonus (credits migration)
  perform private.on_account_created(new.id, new.id);

  -- referral program: remember the code, then let the referral migration apply it
  if referral is not null then
    insert into private.signup_referral_codes (user_id, code, created_at)
    values (new.id, referral, private.now());
  end if;
  begin
    perform private.on_signup(new.id, referral);
  exception when others then
    raise warning 'ledgerbase: referral processing failed for new user %: % (%)', new.id, sqlerrm, sqlstate;
  end;

  return new;
end
$$;
comment on function private.handle_new_user() is
  'AFTER INSERT on auth.users: creates the profile (unique referral code, optional username from metadata), the personal account, the owner membership, the staff role member, calls the seams on_account_created and on_signup, and remembers raw_user_meta_data.referral_code. Malformed metadata is treated as absent; nothing in it can block a signup.';

create trigger on_auth_user_created
  after insert on auth.users
  for each row execute function private.handle_new_user();

create function private.handle_user_email_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.profiles p set email = new.email where p.id = new.id;
  return new;
end
$$;
comment on function private.handle_user_email_change() is 'AFTER UPDATE OF email on auth.users: copies the new email to profiles.email.';

create trigger on_auth_user_email_changed
  after update of email on auth.users
  for each row
  when (old.email is distinct from new.email)
  execute function private.handle_user_email_change();

create function private.handle_user_deletion()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  sole_owned text;
  team record;
begin
  -- a team whose only owner is this user would be left without one
  select string_agg(format('%s (%s)', a.slug, a.id), ', ' order by a.slug)
    into sole_owned
  from public.accounts a
  join public.account_members m on m.account_id = a.id and m.user_id = old.id and m.role = 'owner'
  where a.kind = 'team'
    and not exists (select 1 from public.account_members o
                    where o.account_id = a.id and o.role = 'owner' and o.user_id <> old.id);
  if sole_owned is not null then
    raise exception using errcode = '23503', message = 'owns_team_accounts',
      detail = format('user %s is the only owner of: %s', old.id, sole_owned),
      hint = 'Transfer ownership of these team accounts (transfer_ownership) or delete them (delete_account) first.';
  end if;

  -- co-owned teams this user is the primary owner of pass to the longest-standing other owner
  for team in
    select a.id from public.accounts a
    where a.kind = 'team' and a.primary_owner = old.id
    for update
  loop
    update public.accounts a
    set primary_owner = (
      select o.user_id from public.account_members o
      where o.account_id = team.id and o.role = 'owner' and o.user_id <> old.id
      order by o.created_at, o.user_id
      limit 1)
    where a.id = team.id;
  end loop;

  -- the personal account goes (its memberships, invitations and, later, wallet cascade);
  -- the other memberships, the profile and the staff role cascade from auth.users
  delete from public.accounts a where a.id = old.id and a.kind = 'personal';
  return old;
end
$$;
comment on function private.handle_user_deletion() is
  'BEFORE DELETE on auth.users: refuses (23503 owns_team_accounts) while the user is the only owner of a team; otherwise hands primary ownership of co-owned teams to another owner and deletes the personal account.';

create trigger on_auth_user_deleted
  before delete on auth.users
  for each row execute function private.handle_user_deletion();

-- ---------------------------------------------------------------------------
-- Account RPCs
-- ---------------------------------------------------------------------------
create function private.normalize_slug(slug text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  normalized text := lower(btrim(normalize_slug.slug));
  problem text := private.slug_problem(normalized);
begin
  if problem is not null then
    raise exception using errcode = '22023', message = 'invalid_slug', detail = problem;
  end if;
  return normalized;
end
$$;
comment on function private.normalize_slug(text) is 'Lower-cases and validates a team slug; raises 22023 invalid_slug.';

create function private.normalize_account_name(name text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  normalized text := btrim(normalize_account_name.name);
begin
  if normalized is null or char_length(normalized) not between 1 and 100 then
    raise exception using errcode = '22023', message = 'invalid_name', detail = 'an account name has 1 to 100 characters';
  end if;
  return normalized;
end
$$;
comment on function private.normalize_account_name(text) is 'Trims and validates an account name; raises 22023 invalid_name.';

create function public.create_team_account(name text, slug text)
returns public.accounts
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  clean_name text := private.normalize_account_name(create_team_account.name);
  clean_slug text := private.normalize_slug(create_team_account.slug);
  acc public.accounts;
begin
  if coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = 'anonymous users cannot create team accounts';
  end if;
  if exists (select 1 from public.accounts a where a.slug = clean_slug) then
    raise exception using errcode = 'PT409', message = 'slug_taken', detail = format('the slug %s is already taken', clean_slug);
  end if;

  insert into public.accounts (kind, name, slug, primary_owner, created_by, created_at, updated_at)
  values ('team', clean_name, clean_slug, uid, uid, private.now(), private.now())
  returning * into acc;
  insert into public.account_members (account_id, user_id, role, created_at, updated_at)
  values (acc.id, uid, 'owner', private.now(), private.now());

  perform private.on_account_created(acc.id, uid);
  return acc;
exception when unique_violation then
  raise exception using errcode = 'PT409', message = 'slug_taken', detail = format('the slug %s is already taken', clean_slug);
end
$$;
comment on function public.create_team_account(text, text) is
  'Creates a team account owned by the caller (owner membership, primary owner) and returns it. Errors: invalid_name, invalid_slug (22023), slug_taken (PT409).';

create function public.update_account(account_id uuid, name text default null, slug text default null)
returns public.accounts
language plpgsql
security definer
set search_path = ''
as $$
declare
  acc public.accounts;
  clean_name text;
  clean_slug text;
begin
  perform private.require_user();
  perform private.require_permission(update_account.account_id, 'account.update');
  acc := private.lock_account(update_account.account_id);

  if update_account.name is not null then
    clean_name := private.normalize_account_name(update_account.name);
  end if;
  if update_account.slug is not null then
    if acc.kind = 'personal' then
      raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts have no slug';
    end if;
    clean_slug := private.normalize_slug(update_account.slug);
    if exists (select 1 from public.accounts a where a.slug = clean_slug and a.id <> acc.id) then
      raise exception using errcode = 'PT409', message = 'slug_taken', detail = format('the slug %s is already taken', clean_slug);
    end if;
  end if;

  update public.accounts a
  set name = coalesce(clean_name, a.name),
      slug = coalesce(clean_slug, a.slug)
  where a.id = acc.id
  returning a.* into acc;
  return acc;
end
$$;
comment on function public.update_account(uuid, text, text) is
  'Renames an account and/or changes a team''s slug (null leaves a field unchanged). Needs account.update. Errors: 42501, invalid_name, invalid_slug, personal_account (22023), slug_taken (PT409).';

create function public.delete_account(account_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  acc public.accounts;
begin
  perform private.require_user();
  perform private.require_permission(delete_account.account_id, 'account.delete');
  acc := private.lock_account(delete_account.account_id);
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account',
      detail = 'a personal account is deleted with its user (delete the auth user)';
  end if;
  delete from public.accounts a where a.id = acc.id;
end
$$;
comment on function public.delete_account(uuid) is
  'Deletes a team account with its memberships and invitations. Needs account.delete (owners). Personal accounts are deleted with the auth user (22023 personal_account).';

-- ---------------------------------------------------------------------------
-- Invitation RPCs
-- ---------------------------------------------------------------------------
create function public.invite_member(account_id uuid, email text, role text default 'member')
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  acc public.accounts;
  clean_email text := lower(btrim(invite_member.email));
  wanted_rank integer := private.role_rank(invite_member.role);
  token text;
  invitation public.account_invitations;
begin
  perform private.require_permission(invite_member.account_id, 'members.invite');
  acc := private.lock_account(invite_member.account_id);
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts cannot be shared';
  end if;
  if clean_email is null or char_length(clean_email) > 254
     or clean_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' then
    raise exception using errcode = '22023', message = 'invalid_email', detail = 'not an email address';
  end if;
  if wanted_rank is null then
    raise exception using errcode = '22023', message = 'invalid_role', detail = format('unknown role %s', invite_member.role);
  end if;
  if wanted_rank > private.caller_rank(acc.id) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = format('you cannot invite with role %s, which is above your own', invite_member.role);
  end if;
  if exists (select 1 from public.account_members m
             join auth.users u on u.id = m.user_id
             where m.account_id = acc.id and lower(u.email) = clean_email) then
    raise exception using errcode = 'PT409', message = 'already_member', detail = format('%s is already a member', clean_email);
  end if;
  -- the plan's max_members: members plus pending invitations (under the account lock)
  perform private.require_member_room(acc.id, true, clean_email);

  -- inviting again replaces the pending invitation (and invalidates its token)
  delete from public.account_invitations i
  where i.account_id = acc.id and i.email = clean_email and i.accepted_at is null;

  token := translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/=', '-_');
  insert into public.account_invitations (account_id, email, role, invited_by, created_at, expires_at)
  values (acc.id, clean_email, invite_member.role, uid, private.now(),
          private.now() + private.setting_interval('invitation_ttl', interval '7 days'))
  returning * into invitation;
  insert into private.invitation_tokens (invitation_id, token_hash)
  values (invitation.id, encode(extensions.digest(token, 'sha256'), 'hex'));

  return jsonb_build_object('invitation_id', invitation.id, 'token', token, 'expires_at', invitation.expires_at);
end
$$;
comment on function public.invite_member(uuid, text, text) is
  'Invites an email to a team account with a role no higher than the caller''s. Needs members.invite. Returns {invitation_id, token, expires_at}: the token is shown only here (stored as sha256). Replaces a pending invitation to the same email. Members plus pending unexpired invitations may not exceed the plan''s max_members. Errors: 42501, personal_account, invalid_email, invalid_role (22023), already_member, member_limit_reached (PT409).';

create function public.accept_invitation(token text)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  invitation public.account_invitations;
  caller auth.users;
begin
  select i.* into invitation
  from private.invitation_tokens t
  join public.account_invitations i on i.id = t.invitation_id
  where t.token_hash = encode(extensions.digest(coalesce(accept_invitation.token, ''), 'sha256'), 'hex')
  for update of i;
  if invitation.id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no invitation matches this token';
  end if;
  if invitation.accepted_at is not null then
    raise exception using errcode = 'PT410', message = 'gone', detail = 'this invitation has already been used';
  end if;
  if invitation.expires_at <= private.now() then
    raise exception using errcode = 'PT410', message = 'gone', detail = format('this invitation expired at %s', invitation.expires_at);
  end if;

  select u.* into caller from auth.users u where u.id = uid;
  if caller.email is null or lower(caller.email) <> invitation.email then
    raise exception using errcode = '42501', message = 'permission denied', detail = 'this invitation was sent to another email address';
  end if;
  if caller.email_confirmed_at is null then
    raise exception using errcode = '42501', message = 'permission denied', detail = 'confirm your email address first';
  end if;

  perform private.lock_account(invitation.account_id);
  if exists (select 1 from public.account_members m where m.account_id = invitation.account_id and m.user_id = uid) then
    raise exception using errcode = 'PT409', message = 'already_member', detail = 'you are already a member of this account';
  end if;
  -- the plan may have changed since the invitation was sent
  perform private.require_member_room(invitation.account_id, false);

  insert into public.account_members (account_id, user_id, role, created_at, updated_at)
  values (invitation.account_id, uid, invitation.role, private.now(), private.now());
  update public.account_invitations i
  set accepted_at = private.now(), accepted_by = uid
  where i.id = invitation.id;
  return invitation.account_id;
end
$$;
comment on function public.accept_invitation(text) is
  'Joins the account of the invitation with its role and returns the account id. Only the invited (confirmed) email may accept, once, before expiry, and only while the members fit the plan''s max_members. Errors: not_found (PT404), gone (PT410: used or expired), 42501 (other email), already_member, member_limit_reached (PT409).';

create function public.revoke_invitation(invitation_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  invitation public.account_invitations;
begin
  perform private.require_user();
  select i.* into invitation from public.account_invitations i
  where i.id = revoke_invitation.invitation_id and i.accepted_at is null;
  if invitation.id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no pending invitation with this id';
  end if;
  perform private.require_permission(invitation.account_id, 'members.invite');
  delete from public.account_invitations i where i.id = invitation.id;
end
$$;
comment on function public.revoke_invitation(uuid) is
  'Deletes a pending invitation (its token stops working). Needs members.invite. Errors: not_found (PT404), 42501.';

-- ---------------------------------------------------------------------------
-- Membership RPCs
-- ---------------------------------------------------------------------------
create function public.set_member_role(account_id uuid, user_id uuid, role text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  acc public.accounts;
  target public.account_members;
  my_rank integer;
  target_rank integer;
  wanted_rank integer := private.role_rank(set_member_role.role);
begin
  perform private.require_user();
  perform private.require_permission(set_member_role.account_id, 'members.manage');
  acc := private.lock_account(set_member_role.account_id);
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts have a single owner';
  end if;
  if wanted_rank is null then
    raise exception using errcode = '22023', message = 'invalid_role', detail = format('unknown role %s', set_member_role.role);
  end if;
  select m.* into target from public.account_members m
  where m.account_id = acc.id and m.user_id = set_member_role.user_id;
  if target.user_id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'this user is not a member of the account';
  end if;

  my_rank := private.caller_rank(acc.id);
  target_rank := private.role_rank(target.role);
  if wanted_rank > my_rank or target_rank > my_rank then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = 'you cannot grant a role above your own or change a member who outranks you';
  end if;
  if target.role = set_member_role.role then
    return;
  end if;
  if target.role = 'owner' then
    if target.user_id = acc.primary_owner then
      raise exception using errcode = '22023', message = 'last_owner',
        detail = 'the primary owner keeps the owner role', hint = 'Transfer ownership (transfer_ownership) first.';
    end if;
    if not exists (select 1 from public.account_members o
                   where o.account_id = acc.id and o.role = 'owner' and o.user_id <> target.user_id) then
      raise exception using errcode = '22023', message = 'last_owner', detail = 'an account always keeps an owner';
    end if;
  end if;

  update public.account_members m set role = set_member_role.role
  where m.account_id = acc.id and m.user_id = target.user_id;
end
$$;
comment on function public.set_member_role(uuid, uuid, text) is
  'Changes a member''s role. Needs members.manage; nobody grants a role above their own or changes someone who outranks them. The primary owner and the last owner keep the owner role. Errors: 42501, personal_account, invalid_role, last_owner (22023), not_found (PT404).';

create function private.remove_membership(acc public.accounts, member_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  target public.account_members;
begin
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts cannot be left or shared';
  end if;
  select m.* into target from public.account_members m where m.account_id = acc.id and m.user_id = member_id;
  if target.user_id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'this user is not a member of the account';
  end if;
  if target.role = 'owner' then
    if not exists (select 1 from public.account_members o
                   where o.account_id = acc.id and o.role = 'owner' and o.user_id <> member_id) then
      raise exception using errcode = '22023', message = 'last_owner', detail = 'an account always keeps an owner',
        hint = 'Transfer ownership (transfer_ownership) or delete the account (delete_account).';
    end if;
    if acc.primary_owner = member_id then
      update public.accounts a
      set primary_owner = (
        select o.user_id from public.account_members o
        where o.account_id = acc.id and o.role = 'owner' and o.user_id <> member_id
        order by o.created_at, o.user_id limit 1)
      where a.id = acc.id;
    end if;
  end if;
  delete from public.account_members m where m.account_id = acc.id and m.user_id = member_id;
end
$$;
comment on function private.remove_membership(public.accounts, uuid) is
  'Removes a membership of a (locked) team account, keeping an owner: refuses the last owner, hands primary ownership to the longest-standing other owner.';

create function public.remove_member(account_id uuid, user_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  acc public.accounts;
  target_role text;
begin
  if remove_member.user_id = uid then
    perform public.leave_account(remove_member.account_id);
    return;
  end if;
  perform private.require_permission(remove_member.account_id, 'members.manage');
  acc := private.lock_account(remove_member.account_id);
  select m.role into target_role from public.account_members m
  where m.account_id = acc.id and m.user_id = remove_member.user_id;
  if private.role_rank(target_role) > private.caller_rank(acc.id) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = 'you cannot remove a member who outranks you';
  end if;
  if acc.kind = 'team' and acc.primary_owner = remove_member.user_id then
    raise exception using errcode = '22023', message = 'last_owner',
      detail = 'the primary owner cannot be removed', hint = 'The primary owner transfers ownership or leaves.';
  end if;
  perform private.remove_membership(acc, remove_member.user_id);
end
$$;
comment on function public.remove_member(uuid, uuid) is
  'Removes a member from a team account. Needs members.manage and a rank at least the member''s; the primary owner cannot be removed. Removing oneself is leave_account. Errors: 42501, personal_account, last_owner (22023), not_found (PT404).';

create function public.leave_account(account_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  acc public.accounts;
begin
  acc := private.lock_account(leave_account.account_id);
  if acc.id is null or not exists (select 1 from public.account_members m where m.account_id = acc.id and m.user_id = uid) then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'you are not a member of this account';
  end if;
  perform private.remove_membership(acc, uid);
end
$$;
comment on function public.leave_account(uuid) is
  'The caller leaves a team account. The last owner cannot leave (transfer ownership or delete the account); a primary owner who leaves hands primary ownership to another owner. Errors: personal_account, last_owner (22023), not_found (PT404).';

create function public.transfer_ownership(account_id uuid, user_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  acc public.accounts;
  caller_role text;
begin
  acc := private.lock_account(transfer_ownership.account_id);
  select m.role into caller_role from public.account_members m where m.account_id = acc.id and m.user_id = uid;
  if caller_role is distinct from 'owner' then
    raise exception using errcode = '42501', message = 'permission denied', detail = 'only an owner can transfer ownership';
  end if;
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts cannot be transferred';
  end if;
  if not exists (select 1 from public.account_members m where m.account_id = acc.id and m.user_id = transfer_ownership.user_id) then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'the new owner must already be a member of the account';
  end if;
  if transfer_ownership.user_id = uid then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'you already own this account';
  end if;

  update public.account_members m set role = 'owner'
  where m.account_id = acc.id and m.user_id = transfer_ownership.user_id and m.role <> 'owner';
  update public.accounts a set primary_owner = transfer_ownership.user_id where a.id = acc.id;
  update public.account_members m set role = 'admin'
  where m.account_id = acc.id and m.user_id = uid;
end
$$;
comment on function public.transfer_ownership(uuid, uuid) is
  'An owner hands the account to another member: the new owner gets the owner role and becomes primary owner; the caller becomes admin. Errors: 42501 (not an owner), personal_account, invalid_input (22023), not_found (PT404).';

grant execute on function
  public.create_team_account(text, text),
  public.update_account(uuid, text, text),
  public.delete_account(uuid),
  public.invite_member(uuid, text, text),
  public.accept_invitation(text),
  public.revoke_invitation(uuid),
  public.set_member_role(uuid, uuid, text),
  public.remove_member(uuid, uuid),
  public.leave_account(uuid),
  public.transfer_ownership(uuid, uuid)
to authenticated;

-- ---------------------------------------------------------------------------
-- Row level security and grants
-- ---------------------------------------------------------------------------
-- Clients read through RLS and write through the RPCs above; the only direct write is a
-- user's own profile (four columns). service_role (BYPASSRLS) reads everything and
-- manages staff roles.

create policy "Users can read their own profile, their teammates' and staff admins everyone's" on public.profiles
  for select to authenticated
  using (
    id = (select auth.uid())
    or (select public.is_staff_admin())
    or exists (select 1 from public.account_members m
               where m.user_id = profiles.id
                 and m.account_id in (select public.user_account_ids('members.read')))
  );
create policy "Users can update their own profile" on public.profiles
  for update to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));
grant select on public.profiles to authenticated, service_role;
grant update (username, full_name, avatar_path, preferences) on public.profiles to authenticated;

create policy "Members can read their accounts" on public.accounts
  for select to authenticated
  using (id in (select public.user_account_ids()) or (select public.is_staff_admin()));
grant select on public.accounts to authenticated, service_role;

create policy "Members can read their account's members" on public.account_members
  for select to authenticated
  using (
    user_id = (select auth.uid())
    or account_id in (select public.user_account_ids('members.read'))
    or (select public.is_staff_admin())
  );
grant select on public.account_members to authenticated, service_role;

create policy "Inviters can read their account's invitations" on public.account_invitations
  for select to authenticated
  using (account_id in (select public.user_account_ids('members.invite')) or (select public.is_staff_admin()));
grant select on public.account_invitations to authenticated, service_role;

create policy "Users can read their own staff role and staff admins everyone's" on public.user_roles
  for select to authenticated
  using (user_id = (select auth.uid()) or (select public.is_staff_admin()));
grant select on public.user_roles to authenticated, service_role;
grant update (role) on public.user_roles to service_role;
