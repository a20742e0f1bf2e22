-- Custom roles per account, and per-key rate limits (SPEC §4.1, §4.5, §5).
--
-- Custom roles
--   public.roles gains an id (its new primary key) and an account_id: null for the four
--   system roles (owner, admin, member, viewer), the account for a custom role. A key is
--   unique per account, and the system keys are reserved in every account, so a role key
--   names one role within an account. account_members and account_invitations keep their
--   `role` column (the key clients read and write today) and gain role_id, resolved from
--   (account_id, role) by a trigger; a composite foreign key (role_id, role) keeps the two
--   in step. role_permissions gains role_id (its primary key is now (role_id, permission));
--   rows inserted by key alone, as earlier migrations do, resolve to the system role of
--   that key. has_permission and user_account_ids stay one indexed lookup: the membership
--   (primary key) and then role_permissions (primary key (role_id, permission)).
--
--   Rank: every custom role ranks 25, between member (20) and admin (30). On top of the
--   ranks, a caller reaches a role only when they hold every permission it grants; they
--   may grant, edit, delete, replace with, invite with or move members out of only the
--   roles they reach. A custom role never carries account.delete, and ownership transfer
--   still needs the owner role, so both stay with owners.
--
--   RPCs: create_role, update_role, delete_role (needs members.manage; audited as
--   role.created, role.updated, role.deleted). invite_member, set_member_role and
--   remove_member resolve role keys within the account.
--
-- Per-key rate limits
--   api_keys.rate_limit_capacity / rate_limit_refill_per_second (both null: the policy
--   usage_api_key applies). Every call of the usage function takes a cell from the key's
--   bucket (scope api_key) before consume_credits takes one from the account's.
--   create_api_key takes the limit as optional named arguments; set_api_key_rate_limit
--   changes it (audited as api_key.rate_limit_changed).

-- ---------------------------------------------------------------------------
-- Settings and the default per-key policy
-- ---------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('custom_roles_per_account', '50', 'The most custom roles one account may define (create_role refuses more with PT409 role_limit_reached).')
on conflict (key) do nothing;

insert into private.rate_limit_policies (name, capacity, refill_per_second, scope, description) values
  ('usage_api_key', 60, 5, 'api_key',
   'Calls of the usage function per API key, for keys without their own limit (api_keys.rate_limit_capacity). Applied before the account''s consume_credits bucket.')
on conflict (name) do nothing;

-- ---------------------------------------------------------------------------
-- Schema: roles get an id and an account
-- ---------------------------------------------------------------------------
alter table public.account_members drop constraint account_members_role_fkey;
alter table public.account_invitations drop constraint account_invitations_role_fkey;
alter table public.role_permissions drop constraint role_permissions_role_fkey;

alter table public.roles
  add column id uuid not null default gen_random_uuid(),
  add column account_id uuid references public.accounts (id) on delete cascade,
  add column created_at timestamptz not null default now(),
  add column updated_at timestamptz not null default now();
alter table public.roles drop constraint roles_pkey;
alter table public.roles drop constraint roles_rank_key;
alter table public.roles add primary key (id);
alter table public.roles add constraint roles_id_key_key unique (id, key);
alter table public.roles add constraint roles_account_key_key unique nulls not distinct (account_id, key);
alter table public.roles add constraint roles_custom_rank check (account_id is null or rank = 25);
alter table public.roles add constraint roles_custom_key check (account_id is null or char_length(key) between 2 and 50);
alter table public.roles add constraint roles_name_length check (char_length(name) between 1 and 100);
alter table public.roles add constraint roles_description_length check (char_length(description) <= 500);

comment on table public.roles is
  'Account roles: the system roles (account_id null: owner, admin, member, viewer; never changed by clients) and the custom roles of each account (create_role, update_role, delete_role). A key is unique within an account and the system keys are reserved everywhere. Nobody grants a role ranked above their own or one granting a permission they lack.';
comment on column public.roles.account_id is 'The account that defined this custom role; null for a system role.';
comment on column public.roles.key is 'How clients name the role (account_members.role, invite_member, set_member_role): a system key, or a custom key unique within its account.';
comment on column public.roles.rank is 'owner 40 > admin 30 > custom roles 25 > member 20 > viewer 10.';

create trigger roles_set_updated_at
  before update on public.roles
  for each row execute function private.set_updated_at();

create function private.check_role_key()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- A custom key may not shadow a system key, nor a new system key an existing custom one:
  -- within an account a key must name one role.
  if exists (select 1 from public.roles r
             where r.key = new.key and r.id <> new.id
               and (r.account_id is null or new.account_id is null)) then
    raise exception using errcode = '22023', message = 'invalid_role',
      detail = pg_catalog.format('%s is the key of a system role', new.key);
  end if;
  return new;
end
$$;
comment on function private.check_role_key() is
  'BEFORE INSERT/UPDATE OF key on roles: refuses a custom key equal to a system key (and the reverse), so a key names one role within an account (22023 invalid_role).';

create trigger roles_check_key
  before insert or update of key on public.roles
  for each row execute function private.check_role_key();

-- ---------------------------------------------------------------------------
-- Schema: role_permissions, members and invitations reference the role by id
-- ---------------------------------------------------------------------------
alter table public.role_permissions add column role_id uuid;
update public.role_permissions rp set role_id = r.id
from public.roles r where r.key = rp.role and r.account_id is null;
alter table public.role_permissions alter column role_id set not null;
alter table public.role_permissions drop constraint role_permissions_pkey;
alter table public.role_permissions add primary key (role_id, permission);
alter table public.role_permissions add constraint role_permissions_role_fkey
  foreign key (role_id, role) references public.roles (id, key) on delete cascade;
comment on column public.role_permissions.role is 'The key of the role (filled in from role_id; a row inserted with a key alone names a system role).';

create function private.resolve_role_permission_role()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.role_id is null then
    new.role_id := (select r.id from public.roles r where r.key = new.role and r.account_id is null);
    if new.role_id is null then
      raise exception using errcode = '23503', message = 'invalid_role',
        detail = pg_catalog.format('%s is not a system role; give role_id for a custom role', new.role);
    end if;
  else
    new.role := (select r.key from public.roles r where r.id = new.role_id);
  end if;
  return new;
end
$$;
comment on function private.resolve_role_permission_role() is
  'BEFORE INSERT/UPDATE on role_permissions: fills role_id from a system key, or the key from role_id, so `insert into role_permissions (role, permission) values (''admin'', ...)` keeps working.';

create trigger role_permissions_resolve_role
  before insert or update on public.role_permissions
  for each row execute function private.resolve_role_permission_role();

create function private.account_role(account_id uuid, key text)
returns public.roles
language plpgsql
stable
set search_path = ''
as $$
declare
  found public.roles;
begin
  select r.* into found from public.roles r
  where r.key = account_role.key
    and (r.account_id is null or r.account_id = account_role.account_id);
  return found;
end
$$;
comment on function private.account_role(uuid, text) is
  'The role a key names in an account (a system role or one of the account''s custom roles), null when none.';

create function private.resolve_membership_role()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.role_id := (private.account_role(new.account_id, new.role)).id;
  if new.role_id is null then
    raise exception using errcode = '22023', message = 'invalid_role',
      detail = pg_catalog.format('unknown role %s', new.role);
  end if;
  return new;
end
$$;
comment on function private.resolve_membership_role() is
  'BEFORE INSERT/UPDATE OF role on account_members and account_invitations: sets role_id to the role the key names in the account (22023 invalid_role when none).';

-- The backfill changes no visible column: keep updated_at and the audit triggers out of it.
alter table public.account_members add column role_id uuid;
alter table public.account_members disable trigger user;
update public.account_members m set role_id = r.id
from public.roles r where r.key = m.role and r.account_id is null;
alter table public.account_members enable trigger user;
alter table public.account_members alter column role_id set not null;
alter table public.account_members add constraint account_members_role_fkey
  foreign key (role_id, role) references public.roles (id, key);
drop index public.account_members_role_idx;
create index account_members_role_id_idx on public.account_members (role_id, role);
comment on column public.account_members.role is 'The key of the member''s role (system or custom); writing it sets role_id.';
comment on column public.account_members.role_id is 'The member''s role, resolved from (account_id, role); what has_permission joins on.';

create trigger account_members_resolve_role
  before insert or update of role on public.account_members
  for each row execute function private.resolve_membership_role();

alter table public.account_invitations add column role_id uuid;
alter table public.account_invitations disable trigger user;
update public.account_invitations i set role_id = r.id
from public.roles r where r.key = i.role and r.account_id is null;
alter table public.account_invitations enable trigger user;
-- A deleted role leaves accepted invitations (history) with their key and no role_id.
alter table public.account_invitations add constraint account_invitations_role_fkey
  foreign key (role_id, role) references public.roles (id, key) on delete set null (role_id);
alter table public.account_invitations add constraint account_invitations_pending_role
  check (accepted_at is not null or role_id is not null);
drop index public.account_invitations_role_idx;
create index account_invitations_role_id_idx on public.account_invitations (role_id, role);
comment on column public.account_invitations.role is 'Key of the role given on acceptance (system or custom); writing it sets role_id.';
comment on column public.account_invitations.role_id is 'The role given on acceptance; null only for an accepted invitation whose custom role was deleted since.';

create trigger account_invitations_resolve_role
  before insert or update of role on public.account_invitations
  for each row execute function private.resolve_membership_role();

-- ---------------------------------------------------------------------------
-- Permission helpers: one indexed lookup, by role id
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
    select 1
    from public.account_members m
    join public.role_permissions rp on rp.role_id = m.role_id
    where m.account_id = has_permission.account_id
      and m.user_id = (select auth.uid())
      and rp.permission = has_permission.permission
  );
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
                    where rp.role_id = m.role_id and rp.permission = user_account_ids.permission));
end
$$;

create or replace function private.role_rank(role text)
returns integer
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select r.rank from public.roles r where r.key = role_rank.role and r.account_id is null
  );
end
$$;
comment on function private.role_rank(text) is
  'The rank of a system role, null for any other key (custom roles are resolved per account: private.account_role).';

create or replace function private.caller_rank(account_id uuid)
returns integer
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select r.rank
    from public.account_members m
    join public.roles r on r.id = m.role_id
    where m.account_id = caller_rank.account_id and m.user_id = auth.uid()
  );
end
$$;

create function private.permissions_beyond_caller(account_id uuid, permissions text[])
returns text[]
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select coalesce(array_agg(p order by p), '{}')
    from (select distinct unnest(permissions_beyond_caller.permissions) p) wanted
    where not exists (
      select 1 from public.account_members m
      join public.role_permissions rp on rp.role_id = m.role_id
      where m.account_id = permissions_beyond_caller.account_id and m.user_id = auth.uid()
        and rp.permission = wanted.p)
  );
end
$$;
comment on function private.permissions_beyond_caller(uuid, text[]) is
  'The permissions of the list that the current user does not hold in the account (empty when they hold them all).';

create function private.caller_reaches(account_id uuid, role_id uuid)
returns boolean
language plpgsql
stable
set search_path = ''
as $$
declare
  target public.roles;
begin
  select r.* into target from public.roles r where r.id = caller_reaches.role_id;
  return target.id is not null
    and target.rank <= coalesce(private.caller_rank(caller_reaches.account_id), 0)
    and cardinality(private.permissions_beyond_caller(caller_reaches.account_id,
          array(select rp.permission from public.role_permissions rp where rp.role_id = target.id))) = 0;
end
$$;
comment on function private.caller_reaches(uuid, uuid) is
  'Whether the current user may grant, edit or take away the role: it ranks no higher than their own and grants no permission they lack.';

create or replace function private.notify_account(
  account_id uuid,
  permission text,
  type text,
  title text,
  body text default null,
  data jsonb default '{}'::jsonb
) returns integer
language plpgsql
set search_path = ''
as $$
declare
  recipient uuid;
  sent integer := 0;
begin
  for recipient in
    select m.user_id
    from public.account_members m
    join public.role_permissions rp on rp.role_id = m.role_id and rp.permission = notify_account.permission
    where m.account_id = notify_account.account_id
    order by m.user_id
  loop
    perform private.notify_user(recipient, notify_account.type, notify_account.title, notify_account.body,
      pg_catalog.jsonb_build_object('account_id', notify_account.account_id) || coalesce(notify_account.data, '{}'::jsonb));
    sent := sent + 1;
  end loop;
  return sent;
end
$$;

-- ---------------------------------------------------------------------------
-- Row level security: system roles for everyone signed in, custom roles for members
-- ---------------------------------------------------------------------------
drop policy "Signed-in users can read the roles" on public.roles;
create policy "Users read the system roles and their accounts' custom roles" on public.roles
  for select to authenticated
  using (account_id is null or account_id in (select public.user_account_ids('members.read')));

drop policy "Signed-in users can read which role holds which permission" on public.role_permissions;
create policy "Users read the permissions of the roles they can read" on public.role_permissions
  for select to authenticated
  using (role_id in (select r.id from public.roles r
                     where r.account_id is null
                        or r.account_id in (select public.user_account_ids('members.read'))));

-- ---------------------------------------------------------------------------
-- Custom role RPCs
-- ---------------------------------------------------------------------------
create function private.clean_role_permissions(account_id uuid, permissions text[])
returns text[]
language plpgsql
stable
set search_path = ''
as $$
declare
  clean text[];
  unknown text[];
  beyond text[];
begin
  if permissions is null or array_position(permissions, null) is not null then
    raise exception using errcode = '22023', message = 'invalid_permission', detail = 'permissions must be a list of permission keys (no nulls)';
  end if;
  select coalesce(array_agg(distinct p order by p), '{}') into clean from unnest(permissions) p;
  select array_agg(p order by p) into unknown
  from unnest(clean) p where not exists (select 1 from public.permissions k where k.key = p);
  if unknown is not null then
    raise exception using errcode = '22023', message = 'invalid_permission',
      detail = pg_catalog.format('unknown permission(s): %s', array_to_string(unknown, ', ')),
      hint = 'The permissions are listed in public.permissions.';
  end if;
  if 'account.delete' = any (clean) then
    raise exception using errcode = '22023', message = 'invalid_permission',
      detail = 'account.delete stays with owners: a custom role cannot carry it';
  end if;
  beyond := private.permissions_beyond_caller(clean_role_permissions.account_id, clean);
  if cardinality(beyond) > 0 then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = pg_catalog.format('you cannot grant permissions you do not hold: %s', array_to_string(beyond, ', '));
  end if;
  return clean;
end
$$;
comment on function private.clean_role_permissions(uuid, text[]) is
  'The permissions of a custom role, deduplicated and sorted, after checking each exists (22023 invalid_permission), is not account.delete (invalid_permission) and is held by the caller (42501).';

create function private.role_name(name text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  clean text := btrim(name);
begin
  if clean is null or char_length(clean) not between 1 and 100 then
    raise exception using errcode = '22023', message = 'invalid_name', detail = 'a role name is 1 to 100 characters';
  end if;
  perform private.require_safe_text(clean, 'name');
  return clean;
end
$$;
comment on function private.role_name(text) is 'Trims and checks a role name: 1 to 100 visible characters (22023 invalid_name, unsafe_characters).';

create function private.role_description(description text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  clean text := nullif(btrim(description), '');
begin
  if char_length(clean) > 500 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'a role description is at most 500 characters';
  end if;
  perform private.require_safe_text(clean, 'description');
  return clean;
end
$$;
comment on function private.role_description(text) is 'Trims a role description (empty: null) and checks it: at most 500 visible characters.';

create function private.role_snapshot(role_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object('key', r.key, 'name', r.name, 'description', r.description,
           'permissions', coalesce((select pg_catalog.jsonb_agg(rp.permission order by rp.permission)
                                    from public.role_permissions rp where rp.role_id = r.id), '[]'::jsonb))
  from public.roles r where r.id = role_snapshot.role_id
$$;
comment on function private.role_snapshot(uuid) is 'A role as the audit log records it: {key, name, description, permissions}.';

create function private.lock_custom_role(role_id uuid)
returns public.roles
language plpgsql
set search_path = ''
as $$
declare
  found public.roles;
begin
  perform private.require_user();
  select r.* into found from public.roles r where r.id = lock_custom_role.role_id;
  -- A role of an account the caller is not in answers exactly like an unknown id.
  if found.id is null
     or (found.account_id is not null
         and not exists (select 1 from public.account_members m
                         where m.account_id = found.account_id and m.user_id = auth.uid())) then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no role with this id';
  end if;
  if found.account_id is null then
    raise exception using errcode = '22023', message = 'system_role',
      detail = pg_catalog.format('%s is a system role: system roles cannot be changed or deleted', found.key),
      hint = 'Create a custom role (create_role) instead.';
  end if;
  perform private.require_permission(found.account_id, 'members.manage');
  perform private.lock_account(found.account_id);
  select r.* into found from public.roles r where r.id = found.id for update;
  if not private.caller_reaches(found.account_id, found.id) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = 'this role grants permissions you do not hold';
  end if;
  return found;
end
$$;
comment on function private.lock_custom_role(uuid) is
  'For update_role and delete_role: the custom role, locked with its account, once the caller may change it. Errors: not_found (PT404, also for another account''s role), system_role (22023), 42501 (members.manage, or the role grants more than the caller holds).';

create function public.create_role(
  account_id uuid,
  key text,
  name text,
  permissions text[],
  description text default null
) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  acc public.accounts;
  clean_key text := lower(btrim(create_role.key));
  clean_name text;
  clean_description text;
  clean_permissions text[];
  role_limit integer := coalesce((private.setting('custom_roles_per_account') #>> '{}')::integer, 50);
  new_id uuid;
begin
  perform private.require_user();
  perform private.require_permission(create_role.account_id, 'members.manage');
  acc := private.lock_account(create_role.account_id);
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts have a single owner: custom roles are for teams';
  end if;
  if clean_key is null or clean_key !~ '^[a-z][a-z0-9_]{1,49}$' then
    raise exception using errcode = '22023', message = 'invalid_role',
      detail = 'a role key is 2 to 50 characters among a-z, 0-9 and _, starting with a letter';
  end if;
  if private.role_rank(clean_key) is not null then
    raise exception using errcode = '22023', message = 'invalid_role',
      detail = pg_catalog.format('%s is the key of a system role', clean_key);
  end if;
  if exists (select 1 from public.roles r where r.account_id = acc.id and r.key = clean_key) then
    raise exception using errcode = 'PT409', message = 'role_exists',
      detail = pg_catalog.format('this account already has a role %s', clean_key),
      hint = 'Change it with update_role, or choose another key.';
  end if;
  clean_name := private.role_name(create_role.name);
  clean_description := private.role_description(create_role.description);
  clean_permissions := private.clean_role_permissions(acc.id, create_role.permissions);
  if (select count(*) from public.roles r where r.account_id = acc.id) >= role_limit then
    raise exception using errcode = 'PT409', message = 'role_limit_reached',
      detail = pg_catalog.format('an account may define at most %s custom roles', role_limit),
      hint = 'Delete a custom role you no longer use (delete_role).';
  end if;

  insert into public.roles (account_id, key, name, description, rank, created_at, updated_at)
  values (acc.id, clean_key, clean_name, clean_description, 25, private.now(), private.now())
  returning id into new_id;
  insert into public.role_permissions (role_id, permission)
  select new_id, p from unnest(clean_permissions) p;

  perform private.audit('role.created', 'role', new_id::text, acc.id, null, private.role_snapshot(new_id));
  return new_id;
end
$$;
comment on function public.create_role(uuid, text, text, text[], text) is
  'Defines a custom role in a team account and returns its id. Needs members.manage; every permission must exist, be held by the caller and not be account.delete. The role ranks 25 (between member and admin). Audited as role.created. Errors: 42501, personal_account, invalid_role, invalid_name, invalid_permission, unsafe_characters (22023), role_exists, role_limit_reached (PT409).';

create function public.update_role(
  role_id uuid,
  name text default null,
  permissions text[] default null,
  description text default null
) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.roles := private.lock_custom_role(update_role.role_id);
  before jsonb := private.role_snapshot(target.id);
  clean_permissions text[];
begin
  if update_role.name is not null or update_role.description is not null then
    update public.roles r
    set name = case when update_role.name is null then r.name else private.role_name(update_role.name) end,
        description = case when update_role.description is null then r.description
                           else private.role_description(update_role.description) end
    where r.id = target.id;
  end if;
  if update_role.permissions is not null then
    clean_permissions := private.clean_role_permissions(target.account_id, update_role.permissions);
    delete from public.role_permissions rp
    where rp.role_id = target.id and rp.permission <> all (clean_permissions);
    insert into public.role_permissions (role_id, permission)
    select target.id, p from unnest(clean_permissions) p
    on conflict do nothing;
  end if;
  if private.role_snapshot(target.id) is distinct from before then
    perform private.audit('role.updated', 'role', target.id::text, target.account_id, before, private.role_snapshot(target.id));
  end if;
end
$$;
comment on function public.update_role(uuid, text, text[], text) is
  'Renames a custom role, replaces its permissions and/or its description (null: unchanged; description '''' clears it). Needs members.manage and every permission the role grants, before and after. Members holding the role get the new permissions at once. Audited as role.updated. Errors: not_found (PT404), system_role, invalid_name, invalid_permission, unsafe_characters (22023), 42501.';

create function public.delete_role(role_id uuid, replacement text default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.roles := private.lock_custom_role(delete_role.role_id);
  before jsonb := private.role_snapshot(target.id);
  substitute public.roles;
  member_count integer;
  pending_count integer;
begin
  select count(*) into member_count from public.account_members m where m.role_id = target.id;
  select count(*) into pending_count from public.account_invitations i
  where i.role_id = target.id and i.accepted_at is null and i.expires_at > private.now();

  if delete_role.replacement is null then
    if member_count + pending_count > 0 then
      raise exception using errcode = 'PT409', message = 'role_in_use',
        detail = pg_catalog.format('%s member(s) and %s pending invitation(s) hold role %s', member_count, pending_count, target.key),
        hint = 'Give a replacement role (delete_role(role_id, replacement => ''member'')) or change their roles first.';
    end if;
  else
    substitute := private.account_role(target.account_id, lower(btrim(delete_role.replacement)));
    if substitute.id is null or substitute.id = target.id then
      raise exception using errcode = '22023', message = 'invalid_role',
        detail = pg_catalog.format('the replacement must be another role of the account, not %s', delete_role.replacement);
    end if;
    if not private.caller_reaches(target.account_id, substitute.id) then
      raise exception using errcode = '42501', message = 'permission denied',
        detail = pg_catalog.format('you cannot give role %s: it ranks above yours or grants permissions you do not hold', substitute.key);
    end if;
    update public.account_members m set role = substitute.key where m.role_id = target.id;
    update public.account_invitations i set role = substitute.key
    where i.role_id = target.id and i.accepted_at is null;
  end if;
  -- Expired invitations can no longer be accepted: they go with the role.
  delete from public.account_invitations i where i.role_id = target.id and i.accepted_at is null;
  delete from public.roles r where r.id = target.id;

  perform private.audit('role.deleted', 'role', target.id::text, target.account_id, before,
    pg_catalog.jsonb_build_object('replacement', substitute.key, 'members_moved', case when substitute.id is null then 0 else member_count end));
  return case when substitute.id is null then 0 else member_count end;
end
$$;
comment on function public.delete_role(uuid, text) is
  'Deletes a custom role and returns how many members moved. Refused (PT409 role_in_use, with the counts in the detail) while members or pending invitations hold it, unless replacement names another role of the account (system or custom, which the caller reaches): they then move to it. Needs members.manage and every permission the role grants. Audited as role.deleted (and member.role_changed per moved member). Errors: not_found (PT404), system_role, invalid_role (22023), 42501, role_in_use (PT409).';

grant execute on function
  public.create_role(uuid, text, text, text[], text),
  public.update_role(uuid, text, text[], text),
  public.delete_role(uuid, text)
to authenticated;

-- ---------------------------------------------------------------------------
-- Membership RPCs resolve role keys within the account
-- ---------------------------------------------------------------------------
create or replace function public.invite_member(account_id uuid, email text, role text default 'member')
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  acc public.accounts;
  clean_email text;
  wanted public.roles;
  token text;
  invitation public.account_invitations;
begin
  perform private.require_permission(invite_member.account_id, 'members.invite');
  acc := private.lock_account(invite_member.account_id);
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts cannot be shared';
  end if;
  clean_email := private.normalize_email(invite_member.email);
  wanted := private.account_role(acc.id, invite_member.role);
  if wanted.id is null then
    raise exception using errcode = '22023', message = 'invalid_role', detail = format('unknown role %s', invite_member.role);
  end if;
  if not private.caller_reaches(acc.id, wanted.id) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = format('you cannot invite with role %s, which is above your own or grants permissions you do not hold', invite_member.role);
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
  values (acc.id, clean_email, wanted.key, uid, private.now(),
          private.now() + private.setting_interval('invitation_ttl', interval '7 days'))
  returning * into invitation;
  insert into private.invitation_tokens (invitation_id, token_hash)
  values (invitation.id, encode(extensions.digest(token, 'sha256'), 'hex'));

  return jsonb_build_object('invitation_id', invitation.id, 'token', token, 'expires_at', invitation.expires_at);
end
$$;
comment on function public.invite_member(uuid, text, text) is
  'Invites an email to a team account with a role (a system key or one of the account''s custom roles) the caller reaches: ranked no higher than theirs and granting no permission they lack. Needs members.invite. Returns {invitation_id, token, expires_at}: the token is shown only here (stored as sha256). The address is checked and normalized by private.normalize_email, as join_waitlist does. Replaces a pending invitation to the same email. Members plus pending unexpired invitations may not exceed the plan''s max_members. Errors: 42501, personal_account, invalid_email, invalid_role (22023), already_member, member_limit_reached (PT409).';

create or replace function public.set_member_role(account_id uuid, user_id uuid, role text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  acc public.accounts;
  target public.account_members;
  wanted public.roles;
begin
  perform private.require_user();
  perform private.require_permission(set_member_role.account_id, 'members.manage');
  acc := private.lock_account(set_member_role.account_id);
  if acc.kind = 'personal' then
    raise exception using errcode = '22023', message = 'personal_account', detail = 'personal accounts have a single owner';
  end if;
  wanted := private.account_role(acc.id, set_member_role.role);
  if wanted.id is null then
    raise exception using errcode = '22023', message = 'invalid_role', detail = format('unknown role %s', set_member_role.role);
  end if;
  select m.* into target from public.account_members m
  where m.account_id = acc.id and m.user_id = set_member_role.user_id;
  if target.user_id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'this user is not a member of the account';
  end if;

  if not private.caller_reaches(acc.id, wanted.id) or not private.caller_reaches(acc.id, target.role_id) then
    raise exception using errcode = '42501', message = 'permission denied',
      detail = 'you cannot grant a role above your own or change a member who outranks you';
  end if;
  if target.role_id = wanted.id then
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

  update public.account_members m set role = wanted.key
  where m.account_id = acc.id and m.user_id = target.user_id;
end
$$;
comment on function public.set_member_role(uuid, uuid, text) is
  'Changes a member''s role to a system role or one of the account''s custom roles. Needs members.manage; the caller must reach both the new role and the member''s current one (ranked no higher than theirs, granting no permission they lack). The primary owner and the last owner keep the owner role. Errors: 42501, personal_account, invalid_role, last_owner (22023), not_found (PT404).';

create or replace function public.remove_member(account_id uuid, user_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  acc public.accounts;
  target_role uuid;
begin
  if remove_member.user_id = uid then
    perform public.leave_account(remove_member.account_id);
    return;
  end if;
  perform private.require_permission(remove_member.account_id, 'members.manage');
  acc := private.lock_account(remove_member.account_id);
  select m.role_id into target_role from public.account_members m
  where m.account_id = acc.id and m.user_id = remove_member.user_id;
  if target_role is not null and not private.caller_reaches(acc.id, target_role) then
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
  'Removes a member from a team account. Needs members.manage and that the caller reaches the member''s role (ranked no higher, granting no permission the caller lacks); the primary owner cannot be removed. Removing oneself is leave_account. Errors: 42501, personal_account, last_owner (22023), not_found (PT404).';

-- ---------------------------------------------------------------------------
-- Per-key rate limits
-- ---------------------------------------------------------------------------
alter table public.api_keys
  add column rate_limit_capacity integer,
  add column rate_limit_refill_per_second numeric,
  add constraint api_keys_rate_limit check (
    (rate_limit_capacity is null) = (rate_limit_refill_per_second is null)
    and (rate_limit_capacity is null
         or (rate_limit_capacity between 1 and 1000000 and rate_limit_refill_per_second > 0
             and rate_limit_refill_per_second <= 100000)));
comment on column public.api_keys.rate_limit_capacity is
  'The burst of calls of the usage function this key may make; null: the usage_api_key policy (60 by default). Set by create_api_key or set_api_key_rate_limit.';
comment on column public.api_keys.rate_limit_refill_per_second is
  'How many calls a second refill the key''s bucket; null with rate_limit_capacity.';

create function private.check_api_key_rate_limit(capacity integer, refill_per_second numeric)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if (capacity is null) <> (refill_per_second is null)
     or capacity not between 1 and 1000000
     or refill_per_second <= 0 or refill_per_second > 100000 then
    raise exception using errcode = '22023', message = 'invalid_input',
      detail = 'a key''s rate limit is a capacity from 1 to 1000000 and a refill per second above 0 (at most 100000), both or neither';
  end if;
end
$$;
comment on function private.check_api_key_rate_limit(integer, numeric) is
  'Raises 22023 invalid_input unless (capacity, refill_per_second) is a valid per-key limit, or both are null (the default policy).';

create function private.audit_api_key_rate_limit()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.audit('api_key.rate_limit_changed', 'api_key', new.id::text, new.account_id,
    case when tg_op = 'UPDATE' then pg_catalog.jsonb_build_object(
      'rate_limit_capacity', old.rate_limit_capacity, 'rate_limit_refill_per_second', old.rate_limit_refill_per_second) end,
    pg_catalog.jsonb_build_object('rate_limit_capacity', new.rate_limit_capacity,
      'rate_limit_refill_per_second', new.rate_limit_refill_per_second, 'prefix', new.prefix));
  return null;
end
$$;
comment on function private.audit_api_key_rate_limit() is
  'AFTER INSERT (with a limit) / UPDATE of the limit on api_keys: api_key.rate_limit_changed with the limit before and after.';

create trigger api_keys_audit_rate_limit_insert after insert on public.api_keys
  for each row when (new.rate_limit_capacity is not null)
  execute function private.audit_api_key_rate_limit();
create trigger api_keys_audit_rate_limit_update after update of rate_limit_capacity, rate_limit_refill_per_second on public.api_keys
  for each row when ((old.rate_limit_capacity, old.rate_limit_refill_per_second)
                     is distinct from (new.rate_limit_capacity, new.rate_limit_refill_per_second))
  execute function private.audit_api_key_rate_limit();

drop function public.create_api_key(uuid, text, text[], timestamptz);
create function public.create_api_key(
  account_id uuid,
  name text,
  scopes text[] default '{credits.consume}',
  expires_at timestamptz default null,
  rate_limit_capacity integer default null,
  rate_limit_refill_per_second numeric default null
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  clean_name text := btrim(create_api_key.name);
  clean_scopes text[];
  key_prefix text;
  secret text;
  plaintext text;
  key_id uuid;
begin
  if private.is_trusted_caller() then
    if not exists (select from public.accounts a where a.id = create_api_key.account_id) then
      raise exception using errcode = 'PT404', message = 'not_found', detail = 'no such account';
    end if;
  else
    perform private.require_user();
    perform private.require_permission(create_api_key.account_id, 'api_keys.manage');
  end if;
  perform private.rate_limit('create_api_key', create_api_key.account_id);

  if clean_name is null or char_length(clean_name) not between 1 and 100 then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'name must be 1 to 100 characters';
  end if;
  select array_agg(distinct s order by s) into clean_scopes from unnest(create_api_key.scopes) s;
  if clean_scopes is null or array_position(clean_scopes, null) is not null
     or not clean_scopes <@ array['credits.consume', 'credits.read', 'usage.read']::text[] then
    raise exception using errcode = '22023', message = 'invalid_scope',
      detail = 'scopes must be a non-empty subset of credits.consume, credits.read, usage.read';
  end if;
  if create_api_key.expires_at is not null and create_api_key.expires_at <= private.now() then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'expires_at must be in the future';
  end if;
  perform private.check_api_key_rate_limit(create_api_key.rate_limit_capacity, create_api_key.rate_limit_refill_per_second);

  secret := pg_catalog.encode(extensions.gen_random_bytes(32), 'hex');
  loop
    -- 48 random bits: a collision is rare, and retried.
    key_prefix := pg_catalog.encode(extensions.gen_random_bytes(6), 'hex');
    insert into public.api_keys (account_id, name, prefix, scopes, expires_at, created_by, created_at,
                                 rate_limit_capacity, rate_limit_refill_per_second)
    values (create_api_key.account_id, clean_name, key_prefix, clean_scopes, create_api_key.expires_at, auth.uid(), private.now(),
            create_api_key.rate_limit_capacity, create_api_key.rate_limit_refill_per_second)
    on conflict (prefix) do nothing
    returning id into key_id;
    exit when key_id is not null;
  end loop;
  plaintext := 'lb_' || key_prefix || '_' || secret;
  insert into private.api_key_hashes (api_key_id, hash)
  values (key_id, pg_catalog.encode(extensions.digest(plaintext, 'sha256'), 'hex'));

  return pg_catalog.jsonb_build_object('id', key_id, 'key', plaintext, 'prefix', key_prefix);
end
$$;
comment on function public.create_api_key(uuid, text, text[], timestamptz, integer, numeric) is
  'Creates an API key for the account and returns {id, key, prefix}: the key (lb_<prefix>_<secret>, 256 random bits) is shown only here. rate_limit_capacity and rate_limit_refill_per_second (both or neither) give the key its own bucket in the usage function; without them the usage_api_key policy applies. Needs api_keys.manage (or a trusted server). Errors: 42501, PT404 not_found, 22023 invalid_input / invalid_scope, PT429 rate_limited (policy create_api_key, per user).';

grant execute on function public.create_api_key(uuid, text, text[], timestamptz, integer, numeric) to authenticated, service_role;

create function public.set_api_key_rate_limit(id uuid, capacity integer, refill_per_second numeric)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  found_key public.api_keys;
begin
  select k.* into found_key from public.api_keys k where k.id = set_api_key_rate_limit.id for update;
  if not private.is_trusted_caller() then
    perform private.require_user();
    -- A key of an account the caller is not in answers exactly like an unknown id.
    if found_key.id is not null
       and not exists (select from public.account_members m
                       where m.account_id = found_key.account_id and m.user_id = auth.uid()) then
      found_key := null;
    end if;
  end if;
  if found_key.id is null then
    raise exception using errcode = 'PT404', message = 'not_found', detail = 'no API key with this id';
  end if;
  if not private.is_trusted_caller() then
    perform private.require_permission(found_key.account_id, 'api_keys.manage');
  end if;
  perform private.check_api_key_rate_limit(set_api_key_rate_limit.capacity, set_api_key_rate_limit.refill_per_second);
  update public.api_keys k
  set rate_limit_capacity = set_api_key_rate_limit.capacity,
      rate_limit_refill_per_second = set_api_key_rate_limit.refill_per_second
  where k.id = found_key.id;
end
$$;
comment on function public.set_api_key_rate_limit(uuid, integer, numeric) is
  'Sets the key''s own rate limit in the usage function (a burst of capacity calls, refilled at refill_per_second), or with both null returns it to the usage_api_key policy. Takes effect on the next call. Needs api_keys.manage (or a trusted server). Audited as api_key.rate_limit_changed. Errors: PT404 not_found (also for a key of an account the caller is not a member of), 42501, 22023 invalid_input.';

grant execute on function public.set_api_key_rate_limit(uuid, integer, numeric) to authenticated, service_role;

create or replace function private.use_api_key(
  key text,
  scope text,
  out api_key_id uuid,
  out account_id uuid,
  out scopes text[]
)
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
  capacity integer;
  refill numeric;
begin
  select a.api_key_id, a.account_id, a.scopes into api_key_id, account_id, scopes
  from private.authenticate_api_key(use_api_key.key) a;
  -- A metering key may read the balance it draws from: credits.consume includes credits.read.
  if not (use_api_key.scope = any (scopes) or (use_api_key.scope = 'credits.read' and 'credits.consume' = any (scopes))) then
    raise exception using errcode = 'PT403', message = 'insufficient_scope',
      detail = pg_catalog.format('this API key lacks the %s scope', use_api_key.scope);
  end if;
  -- Usage by this key: usage_events.api_key_id and the api_key rate-limit scope read it.
  perform pg_catalog.set_config('ledgerbase.api_key_id', api_key_id::text, true);
  -- The key's own bucket (its limit, else the usage_api_key policy with the plan's
  -- overrides), before the account's: one busy key cannot empty the account's bucket.
  select k.rate_limit_capacity, k.rate_limit_refill_per_second into capacity, refill
  from public.api_keys k where k.id = use_api_key.api_key_id;
  perform private.rate_limit('usage_api_key', account_id,
    case when capacity is not null then pg_catalog.jsonb_build_object('rate_limits', pg_catalog.jsonb_build_object(
      'usage_api_key', pg_catalog.jsonb_build_object('capacity', capacity, 'refill_per_second', refill))) end);
  -- At most one write a minute per key, so a busy key does not queue on its row.
  update public.api_keys k set last_used_at = at
  where k.id = use_api_key.api_key_id and (k.last_used_at is null or k.last_used_at < at - interval '1 minute');
end
$$;
comment on function private.use_api_key(text, text) is
  'Authenticates a key (PT401 invalid_api_key), requires a scope (PT403 insufficient_scope), marks the transaction as acting with the key (ledgerbase.api_key_id), takes a cell from the key''s bucket (its own limit or the usage_api_key policy; PT429 rate_limited) and records when it was last used (at most once a minute). Returns the key id, account and scopes.';
