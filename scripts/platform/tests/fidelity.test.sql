-- Platform fidelity: the bootstrapped plain PostgreSQL behaves like a Supabase database
-- where our migrations depend on it. Runs on the bootstrapped database before any
-- migration, as `postgres` (the role migrations run as on Supabase).
begin;
select plan(33);

-- Roles and their attributes -------------------------------------------------
select ok((select rolsuper from pg_roles where rolname = 'supabase_admin'), 'supabase_admin is the cluster superuser');
select ok(not (select rolsuper from pg_roles where rolname = 'postgres'), 'postgres is not a superuser');
select ok((select rolbypassrls and rolcreaterole and rolcreatedb and rolcanlogin and rolreplication
           from pg_roles where rolname = 'postgres'),
  'postgres has BYPASSRLS, CREATEROLE, CREATEDB, LOGIN and REPLICATION');
select is(current_user::text, 'postgres', 'this file runs as postgres, like migrations on Supabase');
select ok((select not rolcanlogin and rolinherit and not rolbypassrls from pg_roles where rolname = 'anon'),
  'anon cannot log in and has no BYPASSRLS');
select ok((select not rolcanlogin and rolinherit and not rolbypassrls from pg_roles where rolname = 'authenticated'),
  'authenticated cannot log in and has no BYPASSRLS');
select ok((select not rolcanlogin and rolbypassrls from pg_roles where rolname = 'service_role'),
  'service_role cannot log in and bypasses RLS');
select ok((select rolcanlogin and not rolinherit from pg_roles where rolname = 'authenticator'),
  'authenticator logs in and does not inherit');
select ok(pg_has_role('authenticator', 'anon', 'MEMBER') and pg_has_role('authenticator', 'authenticated', 'MEMBER')
          and pg_has_role('authenticator', 'service_role', 'MEMBER'),
  'authenticator can switch to anon, authenticated and service_role');
select ok(pg_has_role('postgres', 'anon', 'MEMBER') and pg_has_role('postgres', 'authenticated', 'MEMBER')
          and pg_has_role('postgres', 'service_role', 'MEMBER'),
  'postgres is a member of anon, authenticated and service_role');
select is((select setconfig from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
           where r.rolname = 'anon' and s.setdatabase = 0), array['statement_timeout=3s'],
  'anon has a 3 s statement timeout');
select ok((select datdba = 'postgres'::regrole from pg_database where datname = current_database()),
  'postgres owns the project database');

-- Legacy permissive default privileges in public --------------------------------
create table public.fidelity_probe (id int);
create function public.fidelity_probe_fn() returns int language sql as $$ select 1 $$;
select ok(has_table_privilege('anon', 'public.fidelity_probe', 'SELECT,INSERT,UPDATE,DELETE'),
  'anon gets the legacy default grants on a new public table created by postgres');
select ok(has_table_privilege('authenticated', 'public.fidelity_probe', 'SELECT,INSERT,UPDATE,DELETE')
          and has_table_privilege('service_role', 'public.fidelity_probe', 'SELECT,INSERT,UPDATE,DELETE'),
  'authenticated and service_role get them too');
select ok(has_function_privilege('anon', 'public.fidelity_probe_fn()', 'EXECUTE'),
  'anon can execute a new function created by postgres (PUBLIC EXECUTE is never revoked)');
select ok(exists (select from pg_default_acl d where d.defaclrole = 'supabase_admin'::regrole
                  and d.defaclnamespace = 'public'::regnamespace and d.defaclobjtype = 'r'
                  and d.defaclacl::text like '%anon=arwdDxt%'),
  'objects supabase_admin creates in public are granted to anon as well');

-- extensions ---------------------------------------------------------------------
select is((select extnamespace::regnamespace::text from pg_extension where extname = 'pgcrypto'), 'extensions',
  'pgcrypto lives in the extensions schema');
select is((select extnamespace::regnamespace::text from pg_extension where extname = 'uuid-ossp'), 'extensions',
  'uuid-ossp lives in the extensions schema');
select ok(has_schema_privilege('anon', 'extensions', 'USAGE') and has_schema_privilege('authenticated', 'extensions', 'USAGE'),
  'the API roles can use the extensions schema');
select throws_ok($$ create extension file_fdw $$, '42501', null,
  'postgres cannot create an untrusted extension: that takes supabase_admin, as on Supabase');

-- auth ---------------------------------------------------------------------------
select columns_are('auth', 'users', array[
  'instance_id', 'id', 'aud', 'role', 'email', 'encrypted_password', 'email_confirmed_at', 'invited_at',
  'confirmation_token', 'confirmation_sent_at', 'recovery_token', 'recovery_sent_at', 'email_change_token_new',
  'email_change', 'email_change_sent_at', 'last_sign_in_at', 'raw_app_meta_data', 'raw_user_meta_data',
  'is_super_admin', 'created_at', 'updated_at', 'phone', 'phone_confirmed_at', 'phone_change', 'phone_change_token',
  'phone_change_sent_at', 'confirmed_at', 'email_change_token_current', 'email_change_confirm_status',
  'banned_until', 'reauthentication_token', 'reauthentication_sent_at', 'is_sso_user', 'deleted_at', 'is_anonymous'],
  'auth.users has GoTrue''s columns');
select has_table('auth', 'identities', 'auth.identities exists');
select is((select tableowner::text from pg_tables where schemaname = 'auth' and tablename = 'users'), 'supabase_auth_admin',
  'supabase_auth_admin owns auth.users');
select ok(has_table_privilege('postgres', 'auth.users', 'SELECT,INSERT,UPDATE,DELETE,TRIGGER,REFERENCES'),
  'postgres may read auth.users, reference it and put triggers on it');
select ok(not has_table_privilege('anon', 'auth.users', 'SELECT') and not has_table_privilege('authenticated', 'auth.users', 'SELECT'),
  'anon and authenticated cannot read auth.users');

select set_config('request.jwt.claims', '{"sub": "2b1a3c4d-0000-4000-8000-000000000001", "role": "authenticated", "email": "a@b.test"}', true);
select is(auth.uid(), '2b1a3c4d-0000-4000-8000-000000000001'::uuid, 'auth.uid() reads sub from request.jwt.claims');
select is(auth.role(), 'authenticated', 'auth.role() reads role from request.jwt.claims');
select is(auth.email(), 'a@b.test', 'auth.email() reads email from request.jwt.claims');
select is(auth.jwt() ->> 'sub', '2b1a3c4d-0000-4000-8000-000000000001', 'auth.jwt() returns all claims');
select set_config('request.jwt.claim.sub', '2b1a3c4d-0000-4000-8000-000000000002', true);
select is(auth.uid(), '2b1a3c4d-0000-4000-8000-000000000002'::uuid, 'the legacy request.jwt.claim.sub setting wins, as in GoTrue');

-- storage ------------------------------------------------------------------------
select is(storage.foldername('u1/avatars/me.png'), array['u1', 'avatars'], 'storage.foldername() returns the folders');
select is(storage.filename('u1/avatars/me.png') || '|' || storage.extension('u1/avatars/me.png'), 'me.png|png',
  'storage.filename() and storage.extension() split the last segment');
select ok((select bool_and(relrowsecurity) from pg_class where oid in ('storage.objects'::regclass, 'storage.buckets'::regclass, 'auth.users'::regclass)),
  'row level security is on for storage.objects, storage.buckets and auth.users');

select * from finish();
rollback;
