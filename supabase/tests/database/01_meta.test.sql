-- Meta-tests: rules every migration must keep, checked against the catalog so a new
-- table or function that forgets them fails here.
--
-- Allowlists are the only place to loosen a rule. Each entry is a decision: add one
-- only with the migration that needs it, and say why next to it.
begin;
select plan(13);

-- Functions anon may execute (signature as regprocedure prints it).
create temp table anon_executable_allowlist (signature text primary key) on commit drop;
insert into anon_executable_allowlist (signature) values
  ('join_waitlist(text,text,text)'); -- the landing page: visitors join the waitlist before they have an account

-- Table privileges anon may hold in public: "table:privilege".
create temp table anon_table_allowlist (grant_key text primary key) on commit drop;
insert into anon_table_allowlist (grant_key) values
  ('plans:select'),            -- the pricing page: active plans are public
  ('credit_packs:select'),     -- the pricing page: active packs are public
  ('billable_actions:select'); -- what usage costs is public

-- What we created (not extensions, not the platform) in the schemas we own.
create temp view our_functions as
  select p.oid, p.oid::regprocedure::text as signature, n.nspname as schema, p.prosecdef, p.proconfig, p.proacl
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'private')
    and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e');

create temp view our_relations as
  select c.oid, n.nspname as schema, c.relname, c.relkind, c.relrowsecurity, c.reloptions
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  where n.nspname in ('public', 'private')
    and c.relkind in ('r', 'p', 'v', 'm', 'f')
    and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e');

-- 1. Row level security everywhere.
select is(
  array(select schema || '.' || relname from our_relations where relkind in ('r', 'p') and not relrowsecurity order by 1),
  '{}'::text[],
  'every table in public and private has row level security enabled');

-- 2. Views run with the caller's rights, so RLS of the tables below them holds.
select is(
  array(select schema || '.' || relname from our_relations
        where relkind = 'v' and schema = 'public'
          and not coalesce(reloptions @> array['security_invoker=true'] or reloptions @> array['security_invoker=on'], false)
        order by 1),
  '{}'::text[],
  'every view in public is security_invoker');

-- 3. SECURITY DEFINER functions pin an empty search_path.
select is(
  array(select signature from our_functions where prosecdef and not coalesce(proconfig @> array['search_path=""'], false) order by 1),
  '{}'::text[],
  'every SECURITY DEFINER function in public and private has search_path = ''''');

-- 4. Every other function pins a search_path too (Supabase advisor: function_search_path_mutable).
select is(
  array(select signature from our_functions
        where not exists (select from unnest(coalesce(proconfig, '{}')) s where s like 'search_path=%')
        order by 1),
  '{}'::text[],
  'every function in public and private pins its search_path');

-- 5. No function is executable by PUBLIC (a null ACL means PostgreSQL's default: PUBLIC may execute).
select is(
  array(select signature from our_functions f
        where f.proacl is null
           or exists (select from aclexplode(f.proacl) a where a.grantee = 0 and a.privilege_type = 'EXECUTE')
        order by 1),
  '{}'::text[],
  'no function in public or private grants EXECUTE to PUBLIC');

-- 6. anon executes only the allowlist.
select is(
  array(select signature from our_functions
        where has_function_privilege('anon', oid, 'EXECUTE')
          and signature not in (select signature from anon_executable_allowlist)
        order by 1),
  '{}'::text[],
  'anon can execute only the allowlisted functions');

-- 7. Nothing in private is executable by an API role.
select is(
  array(select signature || ' by ' || r from our_functions, unnest(array['anon', 'authenticated', 'service_role']) r
        where schema = 'private' and has_function_privilege(r, oid, 'EXECUTE')
        order by 1),
  '{}'::text[],
  'no function in private is executable by anon, authenticated or service_role');

-- 8. anon holds no table privilege in public beyond the allowlist.
select is(
  array(select relname || ':' || lower(p)
        from our_relations, unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
        where schema = 'public' and relkind in ('r', 'p', 'v', 'm', 'f')
          and (has_table_privilege('anon', oid, p)
               or (p in ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') and has_any_column_privilege('anon', oid, p)))
          and relname || ':' || lower(p) not in (select grant_key from anon_table_allowlist)
        order by 1),
  '{}'::text[],
  'anon has no privilege on a public table or view unless allowlisted');

-- 9. No API role holds any privilege on a private table.
select is(
  array(select relname || ' to ' || r from our_relations, unnest(array['anon', 'authenticated', 'service_role']) r
        where schema = 'private'
          and (has_table_privilege(r, oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
               or has_any_column_privilege(r, oid, 'SELECT,INSERT,UPDATE,REFERENCES'))
        order by 1),
  '{}'::text[],
  'no table in private is granted to anon, authenticated or service_role');

-- 10. The private schema is closed to the API roles.
select ok(
  not has_schema_privilege('anon', 'private', 'USAGE')
  and not has_schema_privilege('authenticated', 'private', 'USAGE')
  and not has_schema_privilege('service_role', 'private', 'USAGE'),
  'anon, authenticated and service_role have no USAGE on schema private');

-- 11-13. The first migration neutralized the legacy default privileges: a table and a
-- function created now, as the migration role, are granted to nobody.
create table public.meta_probe (id int);
create function public.meta_probe_fn() returns int language sql set search_path = '' as $$ select 1 $$;

select ok(
  not has_table_privilege('anon', 'public.meta_probe', 'SELECT,INSERT,UPDATE,DELETE')
  and not has_table_privilege('authenticated', 'public.meta_probe', 'SELECT,INSERT,UPDATE,DELETE')
  and not has_table_privilege('service_role', 'public.meta_probe', 'SELECT,INSERT,UPDATE,DELETE'),
  'a new table in public is granted to no API role by default');
select ok(
  not has_function_privilege('anon', 'public.meta_probe_fn()', 'EXECUTE')
  and not has_function_privilege('authenticated', 'public.meta_probe_fn()', 'EXECUTE'),
  'a new function in public is executable by neither anon nor authenticated by default');
select ok(
  not exists (select from aclexplode((select proacl from pg_proc where oid = 'public.meta_probe_fn()'::regprocedure)) a
              where a.grantee = 0),
  'a new function grants nothing to PUBLIC by default');

select * from finish();
rollback;
