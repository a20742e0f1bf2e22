-- The present schema, one file per object, read from the catalog (see scripts/lib/schema.ts).
--
-- Returns one JSON array of {path, sql}: a file per table, view, function and type of our
-- schemas (every schema but the platform's), one per schema (owner, grants, default
-- privileges), the default privileges that hold in every schema, and one per platform table
-- our migrations add triggers or policies to (auth.users, storage.objects). Objects that
-- belong to an extension are left out. Everything is sorted and printed with search_path
-- empty, so every name is schema-qualified and the output depends on the catalog alone.
set search_path = '';

with
platform(nspname) as (
  values ('auth'), ('storage'), ('extensions'), ('supabase_migrations'), ('cron'), ('graphql'),
         ('graphql_public'), ('realtime'), ('_realtime'), ('vault'), ('pgsodium'), ('pgsodium_masks'),
         ('net'), ('supabase_functions'), ('pgbouncer'), ('_analytics')
),
ours as (
  select n.oid, n.nspname
  from pg_catalog.pg_namespace n
  where n.nspname not like 'pg\_%' and n.nspname <> 'information_schema'
    and n.nspname not in (select nspname from platform)
),
-- Objects an extension created are the extension's, not ours.
extension_members as (
  select d.classid, d.objid from pg_catalog.pg_depend d where d.deptype = 'e'
),
tables as (
  select c.oid, c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
         c.relreplident, c.reloptions, c.relowner, c.relacl, c.relispartition, n.nspname,
         pg_catalog.format('%I.%I', n.nspname, c.relname) as qname
  from pg_catalog.pg_class c
  join ours n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
    and not exists (select from extension_members e where e.classid = 'pg_catalog.pg_class'::regclass and e.objid = c.oid)
    -- identity and serial sequences are part of their column
    and not (c.relkind = 'S' and exists (
      select from pg_catalog.pg_depend d
      where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')
    ))
),
-- Grant statements of a relation (table-level and column-level), owner left out.
relation_grants as (
  select t.oid, pg_catalog.string_agg(g.line, E'\n' order by g.line) as body
  from tables t
  cross join lateral (
    select pg_catalog.format('grant %s on %s to %s%s;',
             pg_catalog.string_agg(pg_catalog.lower(a.privilege_type), ', ' order by pg_catalog.lower(a.privilege_type)),
             case when t.relkind = 'S' then 'sequence ' else 'table ' end || t.qname,
             case a.grantee when 0 then 'public' else pg_catalog.quote_ident(a.grantee::regrole::text) end,
             case when a.is_grantable then ' with grant option' else '' end) as line
    from pg_catalog.aclexplode(coalesce(t.relacl, pg_catalog.acldefault((case when t.relkind = 'S' then 's' else 'r' end)::"char", t.relowner))) a
    where a.grantee <> t.relowner
    group by a.grantee, a.is_grantable
    union all
    select pg_catalog.format('grant %s (%s) on table %s to %s%s;',
             pg_catalog.lower(a.privilege_type),
             pg_catalog.string_agg(pg_catalog.quote_ident(att.attname), ', ' order by att.attnum),
             t.qname,
             case a.grantee when 0 then 'public' else pg_catalog.quote_ident(a.grantee::regrole::text) end,
             case when a.is_grantable then ' with grant option' else '' end)
    from pg_catalog.pg_attribute att
    cross join lateral pg_catalog.aclexplode(att.attacl) a
    where att.attrelid = t.oid and att.attnum > 0 and not att.attisdropped and att.attacl is not null
      and a.grantee <> t.relowner
    group by a.grantee, a.privilege_type, a.is_grantable
  ) g
  group by t.oid
),
relation_comments as (
  select t.oid, pg_catalog.string_agg(line, E'\n' order by ord, line) as body
  from tables t
  cross join lateral (
    select 0 as ord, pg_catalog.format('comment on %s %s is %L;',
             case t.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                            when 'f' then 'foreign table' else 'table' end,
             t.qname, d.description) as line
    from pg_catalog.pg_description d
    where d.classoid = 'pg_catalog.pg_class'::regclass and d.objoid = t.oid and d.objsubid = 0
    union all
    select att.attnum, pg_catalog.format('comment on column %s.%I is %L;', t.qname, att.attname, d.description)
    from pg_catalog.pg_description d
    join pg_catalog.pg_attribute att on att.attrelid = d.objoid and att.attnum = d.objsubid
    where d.classoid = 'pg_catalog.pg_class'::regclass and d.objoid = t.oid and d.objsubid > 0
  ) c
  group by t.oid
),
columns as (
  select t.oid, pg_catalog.string_agg(
           '  ' || pg_catalog.quote_ident(att.attname) || ' ' || pg_catalog.format_type(att.atttypid, att.atttypmod)
           || case when att.attcollation <> 0 and att.attcollation <> ty.typcollation
                   then ' collate ' || att.attcollation::regcollation::text else '' end
           || case att.attidentity when 'a' then ' generated always as identity'
                                   when 'd' then ' generated by default as identity' else '' end
           || case when att.attgenerated = 's'
                   then ' generated always as (' || pg_catalog.pg_get_expr(def.adbin, def.adrelid, true) || ') stored'
                   when def.adbin is not null then ' default ' || pg_catalog.pg_get_expr(def.adbin, def.adrelid, true)
                   else '' end
           || case when att.attnotnull then ' not null' else '' end,
           E',\n' order by att.attnum) as body
  from tables t
  join pg_catalog.pg_attribute att on att.attrelid = t.oid and att.attnum > 0 and not att.attisdropped
  join pg_catalog.pg_type ty on ty.oid = att.atttypid
  left join pg_catalog.pg_attrdef def on def.adrelid = att.attrelid and def.adnum = att.attnum
  where t.relkind in ('r', 'p', 'f')
  group by t.oid
),
-- Triggers and policies by table, for our tables and for the platform's (auth.users, storage.objects).
triggers as (
  select tg.tgrelid, pg_catalog.string_agg(
           pg_catalog.pg_get_triggerdef(tg.oid, true) || ';'
           || case tg.tgenabled when 'D' then E'\n' || pg_catalog.format('alter table %s disable trigger %I;', tg.tgrelid::regclass, tg.tgname)
                                when 'R' then E'\n' || pg_catalog.format('alter table %s enable replica trigger %I;', tg.tgrelid::regclass, tg.tgname)
                                when 'A' then E'\n' || pg_catalog.format('alter table %s enable always trigger %I;', tg.tgrelid::regclass, tg.tgname)
                                else '' end
           || case when d.description is not null then E'\n' || pg_catalog.format('comment on trigger %I on %s is %L;', tg.tgname, tg.tgrelid::regclass, d.description) else '' end,
           E'\n' order by tg.tgname) as body
  from pg_catalog.pg_trigger tg
  join pg_catalog.pg_proc fn on fn.oid = tg.tgfoid
  left join pg_catalog.pg_description d on d.classoid = 'pg_catalog.pg_trigger'::regclass and d.objoid = tg.oid
  where not tg.tgisinternal
    -- on a platform table, only the triggers that call a function of ours
    and fn.pronamespace in (select oid from ours)
  group by tg.tgrelid
),
policies as (
  select p.polrelid, pg_catalog.string_agg(
           pg_catalog.format('create policy %I on %s', p.polname, p.polrelid::regclass)
           || case when p.polpermissive then '' else E'\n  as restrictive' end
           || E'\n  for ' || case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                                          when 'd' then 'delete' else 'all' end
           || E'\n  to ' || (select pg_catalog.string_agg(role, ', ' order by role)
                            from (select case r when 0 then 'public' else pg_catalog.quote_ident(r::regrole::text) end as role
                                  from pg_catalog.unnest(p.polroles) r) roles)
           || coalesce(E'\n  using (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid, true) || ')', '')
           || coalesce(E'\n  with check (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid, true) || ')', '')
           || ';'
           || case when d.description is not null then E'\n' || pg_catalog.format('comment on policy %I on %s is %L;', p.polname, p.polrelid::regclass, d.description) else '' end,
           E'\n\n' order by p.polname) as body
  from pg_catalog.pg_policy p
  left join pg_catalog.pg_description d on d.classoid = 'pg_catalog.pg_policy'::regclass and d.objoid = p.oid
  group by p.polrelid
),
constraints as (
  select t.oid, pg_catalog.string_agg(
           pg_catalog.format('alter table %s add constraint %I %s;', t.qname, con.conname, pg_catalog.pg_get_constraintdef(con.oid, true))
           || case when d.description is not null then E'\n' || pg_catalog.format('comment on constraint %I on %s is %L;', con.conname, t.qname, d.description) else '' end,
           E'\n' order by con.conname) as body
  from tables t
  join pg_catalog.pg_constraint con on con.conrelid = t.oid
  left join pg_catalog.pg_description d on d.classoid = 'pg_catalog.pg_constraint'::regclass and d.objoid = con.oid
  group by t.oid
),
indexes as (
  select t.oid, pg_catalog.string_agg(
           pg_catalog.pg_get_indexdef(i.indexrelid) || ';'
           || case when d.description is not null then E'\n' || pg_catalog.format('comment on index %s is %L;', i.indexrelid::regclass, d.description) else '' end,
           E'\n' order by ic.relname) as body
  from tables t
  join pg_catalog.pg_index i on i.indrelid = t.oid
  join pg_catalog.pg_class ic on ic.oid = i.indexrelid
  left join pg_catalog.pg_description d on d.classoid = 'pg_catalog.pg_class'::regclass and d.objoid = i.indexrelid and d.objsubid = 0
  -- the indexes of primary key, unique and exclusion constraints come with the constraint
  where not exists (select from pg_catalog.pg_constraint con where con.conindid = i.indexrelid and con.conrelid = t.oid
                    and con.contype in ('p', 'u', 'x'))
  group by t.oid
),
publications as (
  select pr.prrelid, pg_catalog.string_agg(
           pg_catalog.format('alter publication %I add table %s;', pub.pubname, pr.prrelid::regclass), E'\n' order by pub.pubname) as body
  from pg_catalog.pg_publication_rel pr
  join pg_catalog.pg_publication pub on pub.oid = pr.prpubid
  group by pr.prrelid
),
relation_files as (
  select t.nspname || '/' || case t.relkind when 'v' then 'views' when 'm' then 'materialized_views'
                                            when 'S' then 'sequences' else 'tables' end
         || '/' || t.relname || '.sql' as path,
         pg_catalog.array_to_string(array[
           case
             when t.relkind in ('r', 'p', 'f') then
               'create ' || case when t.relpersistence = 'u' then 'unlogged ' else '' end
               || case when t.relkind = 'f' then 'foreign ' else '' end
               || 'table ' || t.qname
               || case when t.relispartition
                       then ' partition of ' || (select inh.inhparent::regclass::text from pg_catalog.pg_inherits inh where inh.inhrelid = t.oid)
                            || ' ' || pg_catalog.pg_get_expr((select c.relpartbound from pg_catalog.pg_class c where c.oid = t.oid), t.oid)
                       else E' (\n' || coalesce(col.body, '') || E'\n)' end
               || case when t.relkind = 'p' then ' partition by ' || pg_catalog.pg_get_partkeydef(t.oid) else '' end
               || coalesce(' with (' || pg_catalog.array_to_string(t.reloptions, ', ') || ')', '')
               || ';'
             when t.relkind in ('v', 'm') then
               'create ' || case when t.relkind = 'm' then 'materialized ' else '' end || 'view ' || t.qname
               || coalesce(' with (' || pg_catalog.array_to_string(t.reloptions, ', ') || ')', '')
               || E' as\n' || pg_catalog.rtrim(pg_catalog.pg_get_viewdef(t.oid, true), E';\n ') || ';'
             else
               (select pg_catalog.format('create sequence %s as %s increment by %s minvalue %s maxvalue %s start with %s cache %s%s;',
                         t.qname, pg_catalog.format_type(s.seqtypid, null), s.seqincrement, s.seqmin, s.seqmax, s.seqstart,
                         s.seqcache, case when s.seqcycle then ' cycle' else '' end)
                from pg_catalog.pg_sequence s where s.seqrelid = t.oid)
           end,
           pg_catalog.format('alter %s %s owner to %I;',
             case t.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                            when 'f' then 'foreign table' else 'table' end,
             t.qname, t.relowner::regrole::text),
           con.body,
           idx.body,
           case when t.relrowsecurity then pg_catalog.format('alter table %s enable row level security;', t.qname) end
             || case when t.relforcerowsecurity then E'\n' || pg_catalog.format('alter table %s force row level security;', t.qname) else '' end,
           pol.body,
           trg.body,
           case when t.relkind in ('r', 'p') then case t.relreplident when 'f' then pg_catalog.format('alter table %s replica identity full;', t.qname)
                               when 'n' then pg_catalog.format('alter table %s replica identity nothing;', t.qname)
                               when 'i' then (select pg_catalog.format('alter table %s replica identity using index %I;', t.qname, ic.relname)
                                              from pg_catalog.pg_index i join pg_catalog.pg_class ic on ic.oid = i.indexrelid
                                              where i.indrelid = t.oid and i.indisreplident)
           end end,
           pub.body,
           rg.body,
           cm.body
         ], E'\n\n') as body
  from tables t
  left join columns col on col.oid = t.oid
  left join constraints con on con.oid = t.oid
  left join indexes idx on idx.oid = t.oid
  left join policies pol on pol.polrelid = t.oid
  left join triggers trg on trg.tgrelid = t.oid
  left join publications pub on pub.prrelid = t.oid
  left join relation_grants rg on rg.oid = t.oid
  left join relation_comments cm on cm.oid = t.oid
),
-- Platform tables (auth.users, storage.objects): only what our migrations add to them.
platform_table_files as (
  select n.nspname || '/tables/' || c.relname || '.sql' as path,
         pg_catalog.format('-- %I.%I belongs to the platform: these are the triggers and policies our migrations add to it.', n.nspname, c.relname)
         || E'\n\n' || pg_catalog.array_to_string(array[pol.body, trg.body], E'\n\n') as body
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  left join policies pol on pol.polrelid = c.oid
  left join triggers trg on trg.tgrelid = c.oid
  where n.nspname in (select nspname from platform)
    and (pol.body is not null or trg.body is not null)
),
functions as (
  select p.oid, p.proname, p.prokind, p.proowner, p.proacl, n.nspname,
         p.oid::regprocedure::text as signature,
         pg_catalog.count(*) over (partition by p.pronamespace, p.proname) as overloads
  from pg_catalog.pg_proc p
  join ours n on n.oid = p.pronamespace
  where p.prokind <> 'a'
    and not exists (select from extension_members e where e.classid = 'pg_catalog.pg_proc'::regclass and e.objid = p.oid)
),
function_files as (
  select f.nspname || '/functions/' || f.proname
         -- overloads: the argument types name the file, e.g. grant_credits(uuid,int4,text).sql
         || case when f.overloads > 1 then
              '(' || coalesce((select pg_catalog.string_agg(ty.typname, ',' order by a.ord)
                               from pg_catalog.unnest((select p.proargtypes::oid[] from pg_catalog.pg_proc p where p.oid = f.oid))
                                    with ordinality a(type_oid, ord)
                               join pg_catalog.pg_type ty on ty.oid = a.type_oid), '') || ')'
            else '' end
         || '.sql' as path,
         pg_catalog.array_to_string(array[
           pg_catalog.rtrim(pg_catalog.pg_get_functiondef(f.oid), E'\n ') || ';',
           pg_catalog.format('alter %s %s owner to %I;', case f.prokind when 'p' then 'procedure' else 'function' end,
                             f.signature, f.proowner::regrole::text),
           (select pg_catalog.string_agg(line, E'\n' order by line) from (
              select pg_catalog.format('grant %s on %s %s to %s%s;',
                       pg_catalog.string_agg(pg_catalog.lower(a.privilege_type), ', '),
                       case f.prokind when 'p' then 'procedure' else 'function' end, f.signature,
                       case a.grantee when 0 then 'public' else pg_catalog.quote_ident(a.grantee::regrole::text) end,
                       case when a.is_grantable then ' with grant option' else '' end) as line
              from pg_catalog.aclexplode(coalesce(f.proacl, pg_catalog.acldefault('f'::"char", f.proowner))) a
              where a.grantee <> f.proowner
              group by a.grantee, a.is_grantable
            ) g),
           (select pg_catalog.format('comment on %s %s is %L;', case f.prokind when 'p' then 'procedure' else 'function' end,
                                     f.signature, d.description)
            from pg_catalog.pg_description d
            where d.classoid = 'pg_catalog.pg_proc'::regclass and d.objoid = f.oid)
         ], E'\n\n') as body
  from functions f
),
types as (
  select ty.oid, ty.typname, ty.typtype, ty.typowner, n.nspname, pg_catalog.format('%I.%I', n.nspname, ty.typname) as qname
  from pg_catalog.pg_type ty
  join ours n on n.oid = ty.typnamespace
  where (ty.typtype in ('e', 'd', 'r')
         or (ty.typtype = 'c' and (select c.relkind from pg_catalog.pg_class c where c.oid = ty.typrelid) = 'c'))
    and not exists (select from extension_members e where e.classid = 'pg_catalog.pg_type'::regclass and e.objid = ty.oid)
),
type_files as (
  select ty.nspname || '/types/' || ty.typname || '.sql' as path,
         pg_catalog.array_to_string(array[
           case ty.typtype
             when 'e' then
               pg_catalog.format('create type %s as enum (%s);', ty.qname,
                 (select pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ', ' order by e.enumsortorder)
                  from pg_catalog.pg_enum e where e.enumtypid = ty.oid))
             when 'd' then
               (select pg_catalog.format('create domain %s as %s', ty.qname, pg_catalog.format_type(d.typbasetype, d.typtypmod))
                       || coalesce(' default ' || d.typdefault, '')
                       || case when d.typnotnull then ' not null' else '' end
                       || coalesce((select pg_catalog.string_agg(E'\n  constraint ' || pg_catalog.quote_ident(con.conname) || ' '
                                                                 || pg_catalog.pg_get_constraintdef(con.oid, true), '' order by con.conname)
                                    from pg_catalog.pg_constraint con where con.contypid = ty.oid), '')
                       || ';'
                from pg_catalog.pg_type d where d.oid = ty.oid)
             when 'r' then
               (select pg_catalog.format('create type %s as range (subtype = %s);', ty.qname, pg_catalog.format_type(r.rngsubtype, null))
                from pg_catalog.pg_range r where r.rngtypid = ty.oid)
             else
               pg_catalog.format(E'create type %s as (\n%s\n);', ty.qname,
                 (select pg_catalog.string_agg('  ' || pg_catalog.quote_ident(att.attname) || ' ' || pg_catalog.format_type(att.atttypid, att.atttypmod),
                                               E',\n' order by att.attnum)
                  from pg_catalog.pg_attribute att
                  where att.attrelid = (select t2.typrelid from pg_catalog.pg_type t2 where t2.oid = ty.oid)
                    and att.attnum > 0 and not att.attisdropped))
           end,
           pg_catalog.format('alter %s %s owner to %I;', case ty.typtype when 'd' then 'domain' else 'type' end,
                             ty.qname, ty.typowner::regrole::text),
           (select pg_catalog.format('comment on %s %s is %L;', case ty.typtype when 'd' then 'domain' else 'type' end,
                                     ty.qname, d.description)
            from pg_catalog.pg_description d
            where d.classoid = 'pg_catalog.pg_type'::regclass and d.objoid = ty.oid)
         ], E'\n\n') as body
  from types ty
),
-- Default privileges: what a new object gets, listed in full (owner included): a grantee
-- that is not listed gets nothing.
default_privileges as (
  select da.defaclnamespace,
         pg_catalog.string_agg(pg_catalog.format('alter default privileges for role %I%s grant %s on %s to %s%s;',
                                 da.defaclrole::regrole::text,
                                 case when da.defaclnamespace <> 0 then ' in schema ' || pg_catalog.quote_ident(dn.nspname) else '' end,
                                 g.privileges,
                                 case da.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences' when 'f' then 'functions'
                                                       when 'T' then 'types' when 'n' then 'schemas' end,
                                 g.grantee, g.grantable),
                               E'\n' order by da.defaclobjtype, g.grantee) as body
  from pg_catalog.pg_default_acl da
  left join pg_catalog.pg_namespace dn on dn.oid = da.defaclnamespace
  cross join lateral (
    select pg_catalog.string_agg(pg_catalog.lower(a.privilege_type), ', ' order by pg_catalog.lower(a.privilege_type)) as privileges,
           case a.grantee when 0 then 'public' else pg_catalog.quote_ident(a.grantee::regrole::text) end as grantee,
           case when a.is_grantable then ' with grant option' else '' end as grantable
    from pg_catalog.aclexplode(da.defaclacl) a
    group by a.grantee, a.is_grantable
  ) g
  -- the platform's own defaults (for supabase_admin) are not ours
  where da.defaclrole = current_user::regrole
    and (da.defaclnamespace = 0 or da.defaclnamespace in (select oid from ours))
  group by da.defaclnamespace
),
schema_files as (
  select s.nspname || '/schema.sql' as path,
         pg_catalog.array_to_string(array[
           pg_catalog.format('create schema if not exists %I;', s.nspname),
           pg_catalog.format('alter schema %I owner to %I;', s.nspname, n.nspowner::regrole::text),
           (select pg_catalog.format('comment on schema %I is %L;', s.nspname, d.description)
            from pg_catalog.pg_description d where d.classoid = 'pg_catalog.pg_namespace'::regclass and d.objoid = s.oid),
           (select pg_catalog.string_agg(line, E'\n' order by line) from (
              select pg_catalog.format('grant %s on schema %I to %s%s;',
                       pg_catalog.string_agg(pg_catalog.lower(a.privilege_type), ', ' order by pg_catalog.lower(a.privilege_type)),
                       s.nspname,
                       case a.grantee when 0 then 'public' else pg_catalog.quote_ident(a.grantee::regrole::text) end,
                       case when a.is_grantable then ' with grant option' else '' end) as line
              from pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n'::"char", n.nspowner))) a
              where a.grantee <> n.nspowner
              group by a.grantee, a.is_grantable
            ) g),
           (select dp.body from default_privileges dp where dp.defaclnamespace = s.oid)
         ], E'\n\n') as body
  from ours s
  join pg_catalog.pg_namespace n on n.oid = s.oid
),
database_files as (
  select 'default_privileges.sql' as path,
         '-- Default privileges in every schema: what a new object gets (a grantee not listed gets nothing).'
         || E'\n\n' || dp.body as body
  from default_privileges dp
  where dp.defaclnamespace = 0
),
files as (
  select path, body from relation_files
  union all select path, body from platform_table_files
  union all select path, body from function_files
  union all select path, body from type_files
  union all select path, body from schema_files
  union all select path, body from database_files
)
select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('path', path, 'sql', body) order by path), '[]')
from files;
