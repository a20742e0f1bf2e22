-- Object names and buckets (docs/accounts.md#storage): an object is `<user id>/<file>` with a strict file-name
-- character set, checked by one function, public.storage_object_owner(), for profiles.avatar_path
-- and for every policy on storage.objects; an object never moves between buckets; no bucket
-- accepts SVG. Personas: mallory tries to reach into vera's folder; vera is the victim.
-- Rows are written the way the Storage API writes them (bucket_id, name, owner_id, metadata).
begin;
select plan(26);

select tests.create_users('mallory', 'vera');

-- ---------------------------------------------------------------------------
-- The rule, as a function
-- ---------------------------------------------------------------------------
select is(public.storage_object_owner(tests.user_id('mallory') || '/avatar-2_v1.png'),
  tests.user_id('mallory'),
  'a name <user id>/<file> belongs to that user');
select is(
  (select array_agg(n order by n) from unnest(array[
     tests.user_id('mallory') || '/%2e%2e/' || tests.user_id('vera') || '/a.png',
     tests.user_id('mallory') || '/../' || tests.user_id('vera') || '/x',
     tests.user_id('mallory') || '/..',
     tests.user_id('mallory') || '/a..png',
     tests.user_id('mallory') || '/.hidden',
     tests.user_id('mallory') || '/faces/1.jpg',
     tests.user_id('mallory') || '/a%20b.png',
     tests.user_id('mallory') || '/a b.png',
     tests.user_id('mallory') || '/a\b.png',
     tests.user_id('mallory') || '/caf' || chr(233) || '.png',
     tests.user_id('mallory') || '/a.png' || chr(10),
     tests.user_id('mallory') || '/',
     upper(tests.user_id('mallory')::text) || '/a.png',
     '/' || tests.user_id('mallory') || '/a.png',
     tests.user_id('mallory') || '//a.png',
     'avatar.png',
     tests.user_id('mallory') || '/' || repeat('a', 252) || '.png'
   ]) n where public.storage_object_owner(n) is not null),
  null,
  'dot-dot (plain or percent-escaped), hidden files, subfolders, spaces, backslashes, non-ASCII, '
  'control characters, empty or over-long file names and non-canonical user ids belong to nobody');

-- ---------------------------------------------------------------------------
-- profiles.avatar_path uses the rule
-- ---------------------------------------------------------------------------
select tests.authenticate_as('mallory');
select throws_ok(
  $$ update public.profiles set avatar_path = tests.user_id('mallory') || '/%2e%2e/' || tests.user_id('vera') || '/a.png'
     where id = tests.user_id('mallory') $$,
  '22023', 'invalid_avatar_path',
  'a percent-escaped .. in avatar_path (which URL parsers resolve into vera''s folder) is refused');
select throws_ok(
  $$ update public.profiles set avatar_path = tests.user_id('mallory') || '/sub/a.png'
     where id = tests.user_id('mallory') $$,
  '22023', 'invalid_avatar_path', 'an avatar_path with a further folder is refused');
select throws_ok(
  $$ update public.profiles set avatar_path = tests.user_id('vera') || '/a.png'
     where id = tests.user_id('mallory') $$,
  '22023', 'invalid_avatar_path', 'an avatar_path in another user''s folder is still refused');
select lives_ok(
  $$ update public.profiles set avatar_path = tests.user_id('mallory') || '/me-2026_v1.webp'
     where id = tests.user_id('mallory') $$,
  'a plain <own id>/<file> avatar_path is accepted');
select tests.clear_authentication();
select is((select avatar_path from public.profiles where id = tests.user_id('mallory')),
  tests.user_id('mallory') || '/me-2026_v1.webp', 'only the plain path was stored');
select lives_ok(
  $$ update public.profiles set username = 'mallory_p' where id = tests.user_id('mallory') $$,
  'other profile updates do not re-judge an unchanged avatar_path');

-- ---------------------------------------------------------------------------
-- Storage policies use the rule
-- ---------------------------------------------------------------------------
select tests.authenticate_as('mallory');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('avatars', tests.user_id('mallory') || '/../' || tests.user_id('vera') || '/x',
             tests.user_id('mallory'), '{"size": 10, "mimetype": "image/png"}') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'an avatar named <me>/../<victim>/x is refused');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id)
     values ('uploads', tests.user_id('mallory') || '/%2e%2e/' || tests.user_id('vera') || '/x.png',
             tests.user_id('mallory')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'an upload named <me>/%2e%2e/<victim>/x.png is refused');
select throws_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id)
     values ('uploads', tests.user_id('mallory') || '/faces/1.jpg', tests.user_id('mallory')) $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'an upload in a subfolder is refused: one folder per user, files directly in it');
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner_id, metadata) values
       ('avatars', tests.user_id('mallory') || '/avatar.png', tests.user_id('mallory'),
        '{"size": 2000, "mimetype": "image/png"}'),
       ('uploads', tests.user_id('mallory') || '/drawing.svg', tests.user_id('mallory'),
        '{"size": 9437184, "mimetype": "image/svg+xml"}') $$,
  'mallory stores an avatar and, in her private uploads, a 9 MB file');
select throws_ok(
  $$ update storage.objects set name = tests.user_id('mallory') || '/../' || tests.user_id('vera') || '/avatar.png'
     where bucket_id = 'avatars' and name = tests.user_id('mallory') || '/avatar.png' $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'renaming an object to <me>/../<victim>/... is refused');

-- ---------------------------------------------------------------------------
-- Objects never move between buckets
-- ---------------------------------------------------------------------------
select throws_ok(
  $$ update storage.objects set bucket_id = 'avatars'
     where bucket_id = 'uploads' and name = tests.user_id('mallory') || '/drawing.svg' $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'moving the 9 MB SVG from private uploads into avatars (readable by every signed-in user) is refused');
select throws_ok(
  $$ update storage.objects set bucket_id = 'uploads', name = tests.user_id('mallory') || '/avatar2.png'
     where bucket_id = 'avatars' and name = tests.user_id('mallory') || '/avatar.png' $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'moving (and renaming) an avatar into uploads is refused too');
select lives_ok(
  $$ update storage.objects set name = tests.user_id('mallory') || '/avatar-old.png'
     where bucket_id = 'avatars' and name = tests.user_id('mallory') || '/avatar.png' $$,
  'renaming within the same bucket and folder still works');
select tests.authenticate_as('vera');
select is(
  (select count(*)::int from storage.objects where bucket_id = 'avatars' and name like tests.user_id('mallory') || '/%'),
  1, 'vera sees mallory''s one avatar');
select is(
  (select count(*)::int from storage.objects where name like '%drawing.svg'),
  0, 'and not the file in mallory''s private uploads');
select tests.clear_authentication();
select results_eq(
  $$ select bucket_id, name from storage.objects where owner_id = tests.user_id('mallory')::text order by bucket_id $$,
  $$ values ('avatars', tests.user_id('mallory') || '/avatar-old.png'),
            ('uploads', tests.user_id('mallory') || '/drawing.svg') $$,
  'every object stayed in its bucket');

-- An object stored under a name the rule refuses (a subfolder, from before the rule) is out of
-- every client's reach, its owner's too: the operator renames or removes it with the service role.
insert into storage.objects (bucket_id, name, owner_id)
values ('uploads', tests.user_id('mallory') || '/faces/legacy.jpg', tests.user_id('mallory'));
select tests.authenticate_as('mallory');
select is((select count(*)::int from storage.objects where name = tests.user_id('mallory') || '/faces/legacy.jpg'), 0,
  'an upload under an old-style name is not served to clients');
select set_config('storage.allow_delete_query', 'true', true);
select results_eq(
  $$ with d as (delete from storage.objects where name = tests.user_id('mallory') || '/faces/legacy.jpg' returning 1)
     select count(*)::int from d $$,
  $$ values (0) $$,
  'nor deleted by them');
select tests.authenticate_as_service_role();
select is((select count(*)::int from storage.objects where name = tests.user_id('mallory') || '/faces/legacy.jpg'), 1,
  'the service role still reaches it');
select tests.authenticate_as('vera');
select results_eq(
  $$ with d as (delete from storage.objects where name like tests.user_id('mallory') || '/%' returning 1)
     select count(*)::int from d $$,
  $$ values (0) $$,
  'vera deletes nothing in mallory''s folders');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- No bucket accepts SVG
-- ---------------------------------------------------------------------------
select is(
  (select array_agg(id order by id) from storage.buckets
    where allowed_mime_types && array['image/svg+xml', 'image/*']),
  null,
  'no bucket lists image/svg+xml, nor image/* that admits it');
select is(
  (select allowed_mime_types from storage.buckets where id = 'uploads'),
  array['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/avif', 'image/heic', 'image/heif'],
  'uploads takes raster images only');
select is(
  (select allowed_mime_types from storage.buckets where id = 'avatars'),
  array['image/png', 'image/jpeg', 'image/webp', 'image/gif'],
  'avatars keeps png, jpeg, webp and gif');

select * from finish();
rollback;
