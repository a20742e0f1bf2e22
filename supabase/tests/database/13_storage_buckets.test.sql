-- Storage: the avatars and uploads buckets and the policies on storage.objects
-- (docs/accounts.md#storage). Size and MIME limits are enforced by the Storage API from the bucket row,
-- so the bucket configuration is asserted; who may touch which path is enforced by
-- Postgres, so those policies are exercised as each persona, the way the Storage API
-- writes rows (bucket_id, name, owner_id = the user). The Storage API deletes the same
-- way, with storage.allow_delete_query set in its transaction: storage refuses any
-- other delete.
begin;
select plan(30);

-- Personas: Alice and Bob, each with their own folders.
select tests.create_users('alice', 'bob');

-- ---------------------------------------------------------------------------
-- Bucket configuration
-- ---------------------------------------------------------------------------
select results_eq(
  $$ select id, name, public, file_size_limit, allowed_mime_types from storage.buckets where id in ('avatars', 'uploads') order by id $$,
  $$ values ('avatars', 'avatars', false, 2097152::bigint, array['image/png', 'image/jpeg', 'image/webp', 'image/gif']),
            ('uploads', 'uploads', false, 10485760::bigint,
             array['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/avif', 'image/heic', 'image/heif']) $$,
  'avatars: private, 2 MiB, png/jpeg/webp/gif; uploads: private, 10 MiB, raster images (no SVG)');
select policies_are('storage', 'objects', array[
  'Users can read avatars and their own uploads',
  'Users can add files to their own avatars and uploads folders',
  'Users can update files in their own avatars and uploads folders',
  'Users can delete files in their own avatars and uploads folders'],
  'storage.objects has exactly one policy per operation');
select policy_roles_are('storage', 'objects', 'Users can read avatars and their own uploads', array['authenticated'],
  'the read policy applies to signed-in users only');

-- ---------------------------------------------------------------------------
-- avatars: own folder writable, other folders not, readable by every signed-in user
-- ---------------------------------------------------------------------------
select tests.authenticate_as('alice');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('avatars', tests.user_id('alice') || '/avatar.png', tests.user_id('alice'), '{"size": 1000, "mimetype": "image/png"}') $$,
  'alice uploads an avatar into her own folder');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id) values ('avatars', tests.user_id('bob') || '/avatar.png', tests.user_id('alice')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'alice cannot upload into bob''s avatar folder');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id) values ('avatars', 'avatar.png', tests.user_id('alice')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'nor at the root of the bucket');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id) values ('avatars', 'x/' || tests.user_id('alice') || '/avatar.png', tests.user_id('alice')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'the user id must be the first folder, not a deeper one');

select throws_ok(
  $$ delete from storage.objects where bucket_id = 'avatars' and name = tests.user_id('alice') || '/avatar.png' $$,
  '42501', 'Direct deletion from storage tables is not allowed. Use the Storage API instead.',
  'a delete that does not come through the Storage API is refused, even of alice''s own file');

-- From here on every delete is the Storage API's, acting as the signed-in persona.
select tests.allow_storage_deletes();

select tests.authenticate_as('bob');
select is(
  (select count(*)::int from storage.objects where bucket_id = 'avatars' and name = tests.user_id('alice') || '/avatar.png'),
  1,
  'bob can read alice''s avatar');
update storage.objects set metadata = '{"size": 1}' where bucket_id = 'avatars' and name = tests.user_id('alice') || '/avatar.png';
delete from storage.objects where bucket_id = 'avatars' and name = tests.user_id('alice') || '/avatar.png';
select tests.clear_authentication();
select results_eq(
  $$ select metadata ->> 'size' from storage.objects where bucket_id = 'avatars' and name = tests.user_id('alice') || '/avatar.png' $$,
  $$ values ('1000') $$,
  'bob''s update and delete of alice''s avatar changed nothing');

select tests.authenticate_as_anon();
select is(
  (select count(*)::int from storage.objects where bucket_id = 'avatars'),
  0,
  'anon sees no avatar (the bucket is private)');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name) values ('avatars', 'anon/avatar.png') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'anon cannot upload');

select tests.authenticate_as('alice');
select is(
  (select count(*)::int from storage.objects where bucket_id = 'avatars' and name like tests.user_id('alice') || '/%'),
  1,
  'alice reads her own avatar');
select lives_ok(
  $$ update storage.objects set metadata = '{"size": 2000, "mimetype": "image/png"}'
     where bucket_id = 'avatars' and name = tests.user_id('alice') || '/avatar.png' $$,
  'alice replaces her avatar');
select throws_ok(
  $$ update storage.objects set name = tests.user_id('bob') || '/avatar.png'
     where bucket_id = 'avatars' and name = tests.user_id('alice') || '/avatar.png' $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'alice cannot move her avatar into bob''s folder');
select tests.clear_authentication();
select results_eq(
  $$ select name, metadata ->> 'size' from storage.objects where bucket_id = 'avatars' $$,
  $$ values (tests.user_id('alice') || '/avatar.png', '2000') $$,
  'the avatar was replaced in place');

-- ---------------------------------------------------------------------------
-- uploads: only the owner reads and writes
-- ---------------------------------------------------------------------------
select tests.authenticate_as('alice');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id) values ('uploads', tests.user_id('alice') || '/face-1.jpg', tests.user_id('alice')) $$,
  'alice uploads a photo into her own uploads folder');
select is(
  (select count(*)::int from storage.objects where bucket_id = 'uploads'),
  1,
  'alice sees her upload');
select tests.authenticate_as('bob');
select is(
  (select count(*)::int from storage.objects where bucket_id = 'uploads'),
  0,
  'bob does not see alice''s uploads');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id) values ('uploads', tests.user_id('alice') || '/planted.jpg', tests.user_id('bob')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'bob cannot write into alice''s uploads folder');
select results_eq(
  $$ with d as (delete from storage.objects where bucket_id = 'uploads' returning 1) select count(*)::int from d $$,
  $$ values (0) $$,
  'bob deletes nothing of alice''s uploads');
select tests.authenticate_as('alice');
select results_eq(
  $$ with d as (delete from storage.objects where bucket_id = 'uploads' and name = tests.user_id('alice') || '/face-1.jpg' returning 1)
     select count(*)::int from d $$,
  $$ values (1) $$,
  'alice deletes her own upload');

-- Our policies open only our buckets: another bucket stays closed.
select tests.clear_authentication();
insert into storage.buckets (id, name) values ('elsewhere', 'elsewhere');
select tests.authenticate_as('alice');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id) values ('elsewhere', tests.user_id('alice') || '/x.png', tests.user_id('alice')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'the folder rule does not open other buckets');

-- ---------------------------------------------------------------------------
-- profiles.avatar_path points into the user's own folder
-- ---------------------------------------------------------------------------
select lives_ok(
  $$ update public.profiles set avatar_path = tests.user_id('alice') || '/avatar.png' where id = tests.user_id('alice') $$,
  'alice points her profile at her avatar');
select throws_ok(
  $$ update public.profiles set avatar_path = tests.user_id('bob') || '/avatar.png' where id = tests.user_id('alice') $$,
  '22023', 'invalid_avatar_path', 'alice cannot use bob''s picture as her avatar');
select throws_ok(
  $$ update public.profiles set avatar_path = tests.user_id('alice') || '/../' || tests.user_id('bob') || '/avatar.png' where id = tests.user_id('alice') $$,
  '22023', 'invalid_avatar_path', 'nor climb out of her folder with ..');
select throws_ok(
  $$ update public.profiles set avatar_path = tests.user_id('alice') || '/' where id = tests.user_id('alice') $$,
  '22023', 'invalid_avatar_path', 'the path must name a file, not the folder');
select is(
  (select avatar_path from public.profiles where id = tests.user_id('alice')),
  tests.user_id('alice') || '/avatar.png',
  'refused paths changed nothing');
select lives_ok(
  $$ update public.profiles set avatar_path = null where id = tests.user_id('alice') $$,
  'an avatar can be cleared');
select tests.clear_authentication();
select is(
  (select avatar_path from public.profiles where id = tests.user_id('alice')),
  null,
  'and is then null');

select * from finish();
rollback;
