-- Storage buckets for avatars and user uploads, and their policies (SPEC §4.1).
--
--   avatars  private, 2 MiB, png/jpeg/webp/gif; every signed-in user reads, each user
--            writes only under "<their user id>/". profiles.avatar_path points here.
--   uploads  private, 10 MiB, images; only the owner reads and writes "<user id>/...".
--
-- Size and MIME limits are enforced by the Storage API server from the bucket row (and
-- declared again in supabase/config.toml for `supabase start`); Postgres enforces who
-- may touch which path. storage.objects is shared with every bucket, so each operation
-- has exactly one policy covering both buckets.

-- ---------------------------------------------------------------------------
-- Buckets
-- ---------------------------------------------------------------------------
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values
  ('avatars', 'avatars', false, 2097152, array['image/png', 'image/jpeg', 'image/webp', 'image/gif']),
  ('uploads', 'uploads', false, 10485760, array['image/*'])
on conflict (id) do update
set name = excluded.name,
    public = excluded.public,
    file_size_limit = excluded.file_size_limit,
    allowed_mime_types = excluded.allowed_mime_types;

-- ---------------------------------------------------------------------------
-- Policies on storage.objects
-- ---------------------------------------------------------------------------
-- The first folder of an object's name is the user id of its owner:
-- (storage.foldername(name))[1] = auth.uid()::text.

create policy "Users can read avatars and their own uploads" on storage.objects
  for select to authenticated
  using (
    bucket_id = 'avatars'
    or (bucket_id = 'uploads' and (storage.foldername(name))[1] = (select auth.uid()::text))
  );

create policy "Users can add files to their own avatars and uploads folders" on storage.objects
  for insert to authenticated
  with check (
    bucket_id in ('avatars', 'uploads')
    and (storage.foldername(name))[1] = (select auth.uid()::text)
  );

create policy "Users can update files in their own avatars and uploads folders" on storage.objects
  for update to authenticated
  using (
    bucket_id in ('avatars', 'uploads')
    and (storage.foldername(name))[1] = (select auth.uid()::text)
  )
  with check (
    bucket_id in ('avatars', 'uploads')
    and (storage.foldername(name))[1] = (select auth.uid()::text)
  );

create policy "Users can delete files in their own avatars and uploads folders" on storage.objects
  for delete to authenticated
  using (
    bucket_id in ('avatars', 'uploads')
    and (storage.foldername(name))[1] = (select auth.uid()::text)
  );
