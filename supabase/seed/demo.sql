-- Demo users for local development only: `npm start`, `npm run db:reset` and `npm test`
-- apply this file after the catalog. supabase/config.toml does not name it, so a hosted
-- deploy (`supabase db push --include-seed`) never creates these users, nor their staff admin.
-- Idempotent.
--
-- GoTrue reads confirmation_token, recovery_token, email_change_token_new and email_change as
-- non-null strings: a NULL there breaks sign-in for the user, so they are ''.
-- (Password sign-in is GoTrue's business; use `npm run token -- <email>`.)
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        confirmation_token, recovery_token, email_change_token_new, email_change,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('00000000-0000-0000-0000-000000000000', 'd0000000-0000-4000-8000-00000000a1ce', 'authenticated', 'authenticated',
   'alice@demo.ledgerbase.dev', '', now(), '', '', '', '', '{"provider": "email", "providers": ["email"]}',
   '{"full_name": "Alice Demo", "username": "alice"}', now(), now()),
  ('00000000-0000-0000-0000-000000000000', 'd0000000-0000-4000-8000-000000000b0b', 'authenticated', 'authenticated',
   'bob@demo.ledgerbase.dev', '', now(), '', '', '', '', '{"provider": "email", "providers": ["email"]}',
   '{"full_name": "Bob Demo", "username": "bob"}', now(), now())
on conflict (id) do nothing;

-- Users of an earlier seed got NULLs there: give them the empty strings GoTrue expects.
update auth.users set
  confirmation_token = coalesce(confirmation_token, ''), recovery_token = coalesce(recovery_token, ''),
  email_change_token_new = coalesce(email_change_token_new, ''), email_change = coalesce(email_change, '')
where id in ('d0000000-0000-4000-8000-00000000a1ce', 'd0000000-0000-4000-8000-000000000b0b');

-- Alice operates the demo SaaS: a staff admin, on the local stack only.
update public.user_roles set role = 'admin' where user_id = 'd0000000-0000-4000-8000-00000000a1ce';
