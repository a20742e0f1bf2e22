-- What Supabase refuses that the local bootstrap cannot: postgres granting, revoking or
-- altering the reserved roles (supautils refuses it on Supabase; here postgres has
-- CREATEROLE on PostgreSQL 15 and role commands escape event triggers). After every
-- migration and the seed, the reserved roles must be exactly as the platform made them,
-- so a migration that would fail on Supabase fails here, one step later.
begin;
select plan(3);

-- Memberships: who may switch to which reserved role.
select results_eq(
  $$ select r.rolname::text collate "default", m.rolname::text collate "default"
     from pg_auth_members am
     join pg_roles r on r.oid = am.roleid
     join pg_roles m on m.oid = am.member
     where r.rolname in ('supabase_admin', 'supabase_auth_admin', 'supabase_storage_admin', 'dashboard_user',
                         'authenticator', 'anon', 'authenticated', 'service_role')
        or m.rolname in ('supabase_admin', 'supabase_auth_admin', 'supabase_storage_admin', 'dashboard_user',
                         'authenticator', 'anon', 'authenticated', 'service_role')
     order by 1, 2 $$,
  $$ values ('anon', 'authenticator'), ('anon', 'postgres'),
            ('authenticated', 'authenticator'), ('authenticated', 'postgres'),
            ('authenticator', 'supabase_storage_admin'),
            ('service_role', 'authenticator'), ('service_role', 'postgres') $$,
  'no migration granted or revoked a reserved role (supautils refuses that on Supabase)');

-- Attributes: what each reserved role may do.
select results_eq(
  $$ select rolname::text collate "default", rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit
     from pg_roles
     where rolname in ('supabase_auth_admin', 'supabase_storage_admin', 'dashboard_user',
                       'authenticator', 'anon', 'authenticated', 'service_role')
     order by 1 $$,
  $$ values ('anon', false, true, false, false, false, false, false, -1),
            ('authenticated', false, true, false, false, false, false, false, -1),
            ('authenticator', false, false, false, false, true, false, false, -1),
            ('dashboard_user', false, true, true, true, false, true, false, -1),
            ('service_role', false, true, false, false, false, false, true, -1),
            ('supabase_auth_admin', false, false, true, false, true, false, false, -1),
            ('supabase_storage_admin', false, false, true, false, true, false, false, -1) $$,
  'no migration altered a reserved role''s attributes (supautils refuses that on Supabase)');

-- The policy commands of the migrations borrowed the storage and auth owners and gave them back.
select ok(not pg_has_role('postgres', 'supabase_storage_admin', 'MEMBER') and not pg_has_role('postgres', 'supabase_auth_admin', 'MEMBER'),
  'postgres is not a member of supabase_storage_admin or supabase_auth_admin after the migrations');

select * from finish();
rollback;
