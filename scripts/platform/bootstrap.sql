-- Platform bootstrap: what a Supabase database has before the first migration runs.
--
-- Runs as the cluster superuser `supabase_admin`, once per database, and is idempotent.
-- It copies Supabase's roles, grants and default privileges (legacy, permissive
-- variant: projects created before 2026-05-30), so a migration that works here works on
-- a hosted project and one that would fail there fails here.
--
-- What it imitates, as a database built from supabase/postgres, GoTrue's and
-- storage-api's own migrations has it:
--   * owners: `extensions` belongs to postgres (so `supabase db lint` lints it); auth
--     tables belong to supabase_auth_admin, storage tables to supabase_storage_admin;
--     postgres has only USAGE on the `auth` and `storage` schemas (no CREATE);
--   * storage deletes: statement-level triggers on storage.objects and storage.buckets
--     refuse a DELETE (42501) unless `storage.allow_delete_query` is 'true', which the
--     Storage API sets in every transaction it opens;
--   * supautils' policy grants: postgres may CREATE, ALTER and DROP policies on the
--     storage and auth tables it does not own. Plain Postgres lets only an owner do
--     that, so an event trigger (`platform_lend_policy_owner`) makes postgres a member
--     of those tables' owners for the length of one policy command and takes it back
--     at its end (a failed command rolls the loan back with it). It refuses
--     ALTER POLICY ... RENAME there (42501), as supautils does. Everything else an
--     owner may do (ALTER TABLE, COMMENT, CREATE INDEX, ...) postgres is refused
--     (42501 "must be owner"), as on the platform;
--   * API sessions: authenticator has statement_timeout = 8s and lock_timeout = 8s,
--     anon 3s, authenticated 8s;
--   * auth.users: GoTrue's columns and defaults (the four token columns GoTrue reads
--     as non-null strings have no default there either: writers must put '' in them)
--     and its partial unique indexes on the token columns.
--
-- What plain Postgres cannot imitate (no supautils, no safeupdate on Debian):
--   * reserved roles: on Supabase postgres cannot grant, revoke or alter
--     supabase_admin, supabase_auth_admin, supabase_storage_admin, dashboard_user,
--     authenticator, anon, authenticated or service_role (only their settings, for the
--     last four). Here postgres has CREATEROLE on PostgreSQL 15, so it can, and event
--     triggers never see role commands. `02_platform_limits.test.sql` catches a
--     migration that does it, after the fact;
--   * supautils' other permissions: postgres creating privileged extensions (e.g.
--     plpgsql_check; here supabase_admin creates the ones we need) and altering the
--     supabase_realtime publication;
--   * safeupdate: in API sessions an UPDATE or DELETE without WHERE is refused on
--     Supabase, not here;
--   * the message of a refused owner-only command differs from supautils' (same
--     SQLSTATE, 42501).
-- `scripts/platform/tests/fidelity.test.sql` pins what is imitated, and the reserved-role
-- gap as it stands (its "NOT IMITATED" tests).

\set ON_ERROR_STOP on
set client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- Roles (cluster-wide; created once, attributes re-asserted every time)
-- ---------------------------------------------------------------------------
do $roles$
declare
  r text;
begin
  foreach r in array array['postgres', 'anon', 'authenticated', 'service_role', 'authenticator',
                           'supabase_auth_admin', 'supabase_storage_admin', 'dashboard_user']
  loop
    if not exists (select from pg_roles where rolname = r) then
      execute format('create role %I', r);
    end if;
  end loop;
end
$roles$;

alter role postgres nosuperuser createdb createrole login replication bypassrls password 'postgres';
alter role postgres set search_path = "$user", public, extensions;
alter role anon nologin inherit nobypassrls;
alter role anon set statement_timeout = '3s';
alter role authenticated nologin inherit nobypassrls;
alter role authenticated set statement_timeout = '8s';
alter role service_role nologin inherit bypassrls;
alter role authenticator login noinherit nobypassrls password 'postgres';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
alter role supabase_auth_admin login noinherit createrole nobypassrls password 'postgres';
alter role supabase_auth_admin set search_path = auth;
alter role supabase_storage_admin login noinherit createrole nobypassrls password 'postgres';
alter role supabase_storage_admin set search_path = storage;
alter role dashboard_user nologin createdb createrole replication;

grant anon, authenticated, service_role to postgres;
grant anon, authenticated, service_role to authenticator;
grant authenticator to supabase_storage_admin;

-- The project database belongs to postgres, as on Supabase.
do $owner$
begin
  execute format('alter database %I owner to postgres', current_database());
end
$owner$;

-- ---------------------------------------------------------------------------
-- public schema: usage for the API roles and the legacy permissive defaults
-- ---------------------------------------------------------------------------
alter schema public owner to pg_database_owner;
grant usage on schema public to postgres, anon, authenticated, service_role;
grant create on schema public to postgres;

alter default privileges for role postgres in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on functions to postgres, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- extensions schema
-- ---------------------------------------------------------------------------
-- Made by postgres on Supabase (while it was still a superuser during init), so it
-- belongs to postgres; the extensions in it belong to supabase_admin.
create schema if not exists extensions;
alter schema extensions owner to postgres;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant all on schema extensions to postgres with grant option;
alter default privileges in schema extensions grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema extensions grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema extensions grant all on sequences to postgres, anon, authenticated, service_role;

create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_stat_statements with schema extensions;
-- `supabase db lint` needs plpgsql_check, which only a superuser can create.
create extension if not exists plpgsql_check with schema extensions;

do $publication$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  -- On Supabase, postgres may add tables to it (supautils); here it owns it.
  alter publication supabase_realtime owner to postgres;
end
$publication$;

-- ---------------------------------------------------------------------------
-- auth schema (GoTrue's tables and helper functions)
-- ---------------------------------------------------------------------------
create schema if not exists auth authorization supabase_admin;
grant usage on schema auth to anon, authenticated, service_role;
grant all on schema auth to supabase_auth_admin;
grant usage on schema auth to postgres;
revoke create on schema auth from postgres;
grant usage on schema auth to dashboard_user;

create table if not exists auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  confirmation_sent_at timestamptz,
  recovery_token varchar(255),
  recovery_sent_at timestamptz,
  email_change_token_new varchar(255),
  email_change varchar(255),
  email_change_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text unique default null,
  phone_confirmed_at timestamptz,
  phone_change text default '',
  phone_change_token varchar(255) default '',
  phone_change_sent_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  email_change_token_current varchar(255) default '',
  email_change_confirm_status smallint default 0
    check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2),
  banned_until timestamptz,
  reauthentication_token varchar(255) default '',
  reauthentication_sent_at timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  is_anonymous boolean not null default false
);
comment on table auth.users is 'Auth: Stores user login data within a secure schema.';
create unique index if not exists users_email_partial_key on auth.users (email) where (is_sso_user = false);
create index if not exists users_instance_id_idx on auth.users (instance_id);
create index if not exists users_is_anonymous_idx on auth.users (is_anonymous);
-- GoTrue's unique token indexes: a token made only of digits and spaces ('' included)
-- may repeat, any other token must be unique.
create unique index if not exists confirmation_token_idx on auth.users (confirmation_token) where confirmation_token !~ '^[0-9 ]*$';
create unique index if not exists recovery_token_idx on auth.users (recovery_token) where recovery_token !~ '^[0-9 ]*$';
create unique index if not exists email_change_token_current_idx on auth.users (email_change_token_current) where email_change_token_current !~ '^[0-9 ]*$';
create unique index if not exists email_change_token_new_idx on auth.users (email_change_token_new) where email_change_token_new !~ '^[0-9 ]*$';
create unique index if not exists reauthentication_token_idx on auth.users (reauthentication_token) where reauthentication_token !~ '^[0-9 ]*$';
alter table auth.users enable row level security;

create table if not exists auth.identities (
  provider_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  identity_data jsonb not null,
  provider text not null,
  last_sign_in_at timestamptz,
  created_at timestamptz,
  updated_at timestamptz,
  email text generated always as (lower(identity_data ->> 'email')) stored,
  id uuid not null default gen_random_uuid() primary key,
  constraint identities_provider_id_provider_unique unique (provider_id, provider)
);
comment on table auth.identities is 'Auth: Stores identities associated to a user.';
create index if not exists identities_user_id_idx on auth.identities (user_id);
create index if not exists identities_email_idx on auth.identities (email text_pattern_ops);
alter table auth.identities enable row level security;

alter table auth.users owner to supabase_auth_admin;
alter table auth.identities owner to supabase_auth_admin;
grant all on auth.users, auth.identities to postgres, dashboard_user;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';

create or replace function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt() to postgres, dashboard_user;

-- ---------------------------------------------------------------------------
-- storage schema (the parts policies and migrations touch)
-- ---------------------------------------------------------------------------
create schema if not exists storage authorization supabase_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;
revoke create on schema storage from postgres;
grant all on schema storage to supabase_storage_admin;
alter default privileges in schema storage grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema storage grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema storage grant all on sequences to postgres, anon, authenticated, service_role;

do $buckettype$
begin
  if not exists (select from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'storage' and t.typname = 'buckettype') then
    create type storage.buckettype as enum ('STANDARD', 'ANALYTICS');
  end if;
end
$buckettype$;

create table if not exists storage.buckets (
  id text not null primary key,
  name text not null,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  owner_id text,
  type storage.buckettype not null default 'STANDARD'
);
comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';
create unique index if not exists bname on storage.buckets (name);

create table if not exists storage.objects (
  id uuid not null default gen_random_uuid() primary key,
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  owner_id text,
  user_metadata jsonb
);
comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);
create index if not exists name_prefix_search on storage.objects (name text_pattern_ops);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;
grant all on storage.buckets, storage.objects to postgres with grant option;
grant all on storage.buckets, storage.objects to anon, authenticated, service_role;

create or replace function storage.foldername(name text) returns text[]
language plpgsql immutable
as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[1:array_length(_parts, 1) - 1];
end
$$;

create or replace function storage.filename(name text) returns text
language plpgsql immutable
as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[array_length(_parts, 1)];
end
$$;

create or replace function storage.extension(name text) returns text
language plpgsql immutable
as $$
declare
  _parts text[];
  _filename text;
begin
  select string_to_array(name, '/') into _parts;
  select _parts[array_length(_parts, 1)] into _filename;
  return reverse(split_part(reverse(_filename), '.', 1));
end
$$;

alter function storage.foldername(text) owner to supabase_storage_admin;
alter function storage.filename(text) owner to supabase_storage_admin;
alter function storage.extension(text) owner to supabase_storage_admin;

-- Direct deletes: the Storage API deletes the files with the rows, so storage refuses a
-- DELETE that does not come from it. The API sets storage.allow_delete_query = 'true'
-- in each transaction it opens. The triggers run per statement, so they refuse a
-- DELETE even when it matches no row.
create or replace function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using errcode = '42501',
            hint = 'This prevents accidental data loss from orphaned objects.';
  end if;
  return null;
end
$$;
alter function storage.protect_delete() owner to supabase_storage_admin;

drop trigger if exists protect_buckets_delete on storage.buckets;
create trigger protect_buckets_delete
  before delete on storage.buckets
  for each statement execute function storage.protect_delete();
drop trigger if exists protect_objects_delete on storage.objects;
create trigger protect_objects_delete
  before delete on storage.objects
  for each statement execute function storage.protect_delete();

-- ---------------------------------------------------------------------------
-- supautils' policy grants: postgres may create, alter and drop policies on the auth
-- and storage tables it does not own, and nothing else an owner may do
-- ---------------------------------------------------------------------------
-- Before a policy command run as postgres, postgres becomes a member of the owners of
-- these tables (its CREATEROLE allows that on PostgreSQL 15); after it, the membership
-- is taken back. A command that fails rolls the loan back with it. A policy on one of
-- these tables must keep its name: supautils does not let postgres rename it.
create or replace function extensions.platform_policy_grant_tables() returns regclass[]
language sql stable
set search_path = ''
as $$
  select array['storage.objects', 'storage.buckets', 'auth.users', 'auth.identities']::regclass[]
$$;

create or replace function extensions.platform_lend_policy_owner() returns event_trigger
language plpgsql
set search_path = ''
as $$
declare
  owner_role name;
  lent text[] := '{}';
begin
  if current_user <> 'postgres' then
    return;
  end if;
  for owner_role in
    select distinct c.relowner::regrole::name from pg_catalog.pg_class c
    where c.oid = any (extensions.platform_policy_grant_tables())
  loop
    if not pg_catalog.pg_has_role('postgres', owner_role, 'MEMBER') then
      execute pg_catalog.format('grant %I to postgres', owner_role);
      lent := lent || owner_role::text;
    end if;
  end loop;
  perform pg_catalog.set_config('platform.lent_policy_owners', pg_catalog.array_to_string(lent, ','), true);
  perform pg_catalog.set_config('platform.policy_names', coalesce((
    select pg_catalog.jsonb_object_agg(p.oid::text, p.polname)
    from pg_catalog.pg_policy p
    where p.polrelid = any (extensions.platform_policy_grant_tables())), '{}')::text, true);
end
$$;

create or replace function extensions.platform_return_policy_owner() returns event_trigger
language plpgsql
set search_path = ''
as $$
declare
  owner_role text;
  renamed record;
begin
  if current_user <> 'postgres' then
    return;
  end if;
  foreach owner_role in array pg_catalog.string_to_array(
    coalesce(pg_catalog.current_setting('platform.lent_policy_owners', true), ''), ',')
  loop
    execute pg_catalog.format('revoke %I from postgres', owner_role);
  end loop;
  perform pg_catalog.set_config('platform.lent_policy_owners', '', true);

  select c.relname into renamed
  from pg_catalog.pg_policy p
  join pg_catalog.pg_class c on c.oid = p.polrelid
  where p.polrelid = any (extensions.platform_policy_grant_tables())
    and (coalesce(nullif(pg_catalog.current_setting('platform.policy_names', true), ''), '{}')::jsonb
          ->> p.oid::text) <> p.polname;
  if found then
    raise exception 'must be owner of table %', renamed.relname
      using errcode = '42501',
            hint = 'On Supabase, postgres may create and drop policies on this table but not rename them: drop the policy and create it again.';
  end if;
end
$$;

revoke all on function extensions.platform_policy_grant_tables() from public, anon, authenticated, service_role;
grant execute on function extensions.platform_policy_grant_tables() to postgres;

drop event trigger if exists platform_lend_policy_owner;
create event trigger platform_lend_policy_owner on ddl_command_start
  when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
  execute function extensions.platform_lend_policy_owner();
drop event trigger if exists platform_return_policy_owner;
create event trigger platform_return_policy_owner on ddl_command_end
  when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
  execute function extensions.platform_return_policy_owner();
