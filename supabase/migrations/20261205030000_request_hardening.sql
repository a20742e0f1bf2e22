-- Request hardening (SPEC §4.1 storage, §4.5 rate limits).
--
--   * The client IP of a request (the `ip` rate-limit scope, audit entries) is the
--     X-Forwarded-For hop the platform's gateway appended, counted from the right past
--     `trusted_proxy_hops` trusted proxies, never the first hop, which the client writes.
--   * Object names are `<user id>/<file>` with a strict file-name character set, judged by one
--     function, public.storage_object_owner(), for profiles.avatar_path and for every policy on
--     storage.objects.
--   * An object never moves between buckets (the update policy compares the bucket with the
--     stored one), and no bucket accepts image/svg+xml (it carries scripts).
--
-- On the hosted platform the storage tables belong to supabase_storage_admin: postgres may
-- create and drop policies there and update bucket rows, but not create triggers, so the
-- bucket rule is a policy.

-- ---------------------------------------------------------------------------
-- The client IP
-- ---------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('trusted_proxy_hops', '0',
   'How many trusted proxies append to X-Forwarded-For after the hop that names the client: the client IP is that many hops left of the rightmost one. 0 (the default) takes the rightmost hop, the one the gateway appended (Kong and Cloudflare append the address that connected to them).')
on conflict (key) do nothing;

create or replace function private.request_ip()
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  configured text := private.setting('trusted_proxy_hops') #>> '{}';
  trusted integer := 0;
  hops text[];
  chosen text;
begin
  if configured ~ '^[0-9]{1,2}$' then
    trusted := configured::integer;
  end if;
  hops := pg_catalog.string_to_array(
    nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb ->> 'x-forwarded-for', ',');
  if hops is null or pg_catalog.cardinality(hops) = 0 then
    return null;
  end if;
  -- Counted from the right: entries left of what the first trusted proxy appended were
  -- written by the client. A header shorter than the trusted chain yields its leftmost hop.
  chosen := pg_catalog.btrim(hops[greatest(1, pg_catalog.cardinality(hops) - trusted)]);
  if chosen !~ '^[0-9A-Fa-f:.]{2,45}$' then
    return null;
  end if;
  return pg_catalog.host(chosen::inet);
exception when invalid_text_representation then
  return null;
end
$$;
comment on function private.request_ip() is
  'The client IP of the current API request: the X-Forwarded-For hop `trusted_proxy_hops` (setting, default 0) places left of the rightmost one, i.e. the one the gateway appended, never the client-written first hop; normalized (IPv6 lower-case, compressed). Null outside a request or when that hop is not an IP address.';

comment on column public.audit_log.ip is
  'Client IP of the API request (the X-Forwarded-For hop the gateway appended, see private.request_ip()), when there was one.';

-- ---------------------------------------------------------------------------
-- Object names
-- ---------------------------------------------------------------------------
create or replace function public.storage_object_owner(name text)
returns uuid
language sql
immutable
set search_path = ''
as $$
  select case
    when storage_object_owner.name ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$'
     and pg_catalog.octet_length(storage_object_owner.name) <= 37 + 255
    then pg_catalog.left(storage_object_owner.name, 36)::uuid
  end
$$;
comment on function public.storage_object_owner(text) is
  'The user a storage object name belongs to: the id in `<user id>/<file>`, when the name has exactly that shape (a lower-case user id, one slash, a file name of 1-255 ASCII letters, digits, _ and -, with single dots between them: no .., no percent-escapes, no further folders); null for any other name. Used by profiles.avatar_path and every policy on storage.objects.';
grant execute on function public.storage_object_owner(text) to authenticated, service_role;

-- The bucket an object is stored in, for the update policy: a policy on storage.objects cannot
-- read storage.objects itself (its own read policy would recurse). Answers only for the
-- caller's own objects.
create or replace function public.storage_object_bucket(object_id uuid)
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select o.bucket_id
    from storage.objects o
   where o.id = storage_object_bucket.object_id
     and public.storage_object_owner(o.name) = auth.uid()
$$;
comment on function public.storage_object_bucket(uuid) is
  'The bucket the caller''s own object is stored in (null for anyone else''s): the update policy on storage.objects compares it with the new row so an object never moves between buckets.';
grant execute on function public.storage_object_bucket(uuid) to authenticated;

-- profiles.avatar_path: a file directly in the user's own folder.
create or replace function private.validate_avatar_path()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.avatar_path is not null
     and (tg_op = 'INSERT' or new.avatar_path is distinct from old.avatar_path)
     and public.storage_object_owner(new.avatar_path) is distinct from new.id then
    raise exception using errcode = '22023', message = 'invalid_avatar_path',
      detail = 'avatar_path must name a file directly inside your own folder of the avatars bucket: <user id>/<file>',
      hint = 'A file name is 1 to 255 of A-Z, a-z, 0-9, _ and -, with single dots between them (avatar.png).';
  end if;
  return new;
end
$$;
comment on function private.validate_avatar_path() is
  'BEFORE INSERT/UPDATE OF avatar_path on profiles (after profiles_validate): a new avatar_path must be <own user id>/<file> by public.storage_object_owner(), else 22023 invalid_avatar_path. An unchanged path is not judged again.';

create trigger profiles_validate_avatar_path
  before insert or update of avatar_path on public.profiles
  for each row execute function private.validate_avatar_path();

-- ---------------------------------------------------------------------------
-- Policies on storage.objects (same names, one per operation)
-- ---------------------------------------------------------------------------
drop policy "Users can read avatars and their own uploads" on storage.objects;
create policy "Users can read avatars and their own uploads" on storage.objects
  for select to authenticated
  using (
    (bucket_id = 'avatars' and public.storage_object_owner(name) is not null)
    or (bucket_id = 'uploads' and public.storage_object_owner(name) = (select auth.uid()))
  );

drop policy "Users can add files to their own avatars and uploads folders" on storage.objects;
create policy "Users can add files to their own avatars and uploads folders" on storage.objects
  for insert to authenticated
  with check (
    bucket_id in ('avatars', 'uploads')
    and public.storage_object_owner(name) = (select auth.uid())
  );

drop policy "Users can update files in their own avatars and uploads folders" on storage.objects;
create policy "Users can update files in their own avatars and uploads folders" on storage.objects
  for update to authenticated
  using (
    bucket_id in ('avatars', 'uploads')
    and public.storage_object_owner(name) = (select auth.uid())
  )
  with check (
    bucket_id in ('avatars', 'uploads')
    and public.storage_object_owner(name) = (select auth.uid())
    -- the stored row's bucket: an object is renamed in place, never moved to another bucket
    and bucket_id = public.storage_object_bucket(id)
  );

drop policy "Users can delete files in their own avatars and uploads folders" on storage.objects;
create policy "Users can delete files in their own avatars and uploads folders" on storage.objects
  for delete to authenticated
  using (
    bucket_id in ('avatars', 'uploads')
    and public.storage_object_owner(name) = (select auth.uid())
  );

-- ---------------------------------------------------------------------------
-- No bucket accepts SVG
-- ---------------------------------------------------------------------------
-- image/svg+xml is dropped from every bucket, and the wildcard image/* (which admits it) is
-- replaced by the raster types. Buckets without a type list (any type) are the operator's and
-- stay as they are.
do $$
declare
  raster constant text[] := array['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/avif', 'image/heic', 'image/heif'];
  b record;
  kept text[];
  t text;
begin
  for b in
    select id, allowed_mime_types from storage.buckets
     where exists (select from unnest(allowed_mime_types) m where lower(m) in ('image/svg+xml', 'image/*'))
  loop
    kept := '{}';
    foreach t in array b.allowed_mime_types loop
      if lower(t) = 'image/*' then
        kept := kept || array(select r from unnest(raster) r where r <> all (kept));
      elsif lower(t) <> 'image/svg+xml' and t <> all (kept) then
        kept := kept || t;
      end if;
    end loop;
    if kept = '{}' then
      -- An empty list would let the Storage API accept any type.
      raise exception 'bucket % accepts only SVG: give it other allowed_mime_types (or delete it) before this migration', b.id;
    end if;
    update storage.buckets set allowed_mime_types = kept where id = b.id;
  end loop;
end
$$;
