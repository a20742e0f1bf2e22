-- Test helpers for every pgTAP file, installed by this first file (in the repository,
-- not downloaded). They are created outside the test transaction so they stay for the
-- files that follow; the throw-away test database is dropped after the run.
--
--   tests.create_supabase_user(identifier, email, id, metadata)  a user in auth.users (triggers run)
--   tests.get_supabase_uid(identifier)                           that user's id
--   tests.authenticate_as(identifier)                            act as that user, full JWT claims
--   tests.authenticate_as_anon()                                 act as the anon key
--   tests.authenticate_as_service_role()                         act as the service_role key
--   tests.clear_authentication()                                 back to the test runner's role
--   tests.freeze_time(ts) / tests.unfreeze_time()                the clock of private.now()
--   tests.allow_storage_deletes()                                 delete in storage as the Storage API does
--   tests.caught(statement)                                       the error a statement raises, as JSON
--   tests.rls_probe(persona, statement)                           allow / deny for a statement as a persona

create extension if not exists pgtap with schema extensions;

create schema if not exists tests;
comment on schema tests is 'pgTAP helpers; exists only in test databases.';
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_supabase_user(
  identifier text,
  email text default null,
  id uuid default null,
  metadata jsonb default '{}'::jsonb
) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  user_id uuid := coalesce(id, gen_random_uuid());
begin
  -- GoTrue reads the token columns as strings: NULL there breaks sign-in on a real stack.
  insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
    confirmation_token, recovery_token, email_change_token_new, email_change,
    raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous
  ) values (
    '00000000-0000-0000-0000-000000000000', user_id, 'authenticated', 'authenticated',
    coalesce(email, identifier || '@test.ledgerbase.dev'), '', now(),
    '', '', '', '',
    '{"provider": "email", "providers": ["email"]}'::jsonb,
    coalesce(metadata, '{}'::jsonb) || jsonb_build_object('test_identifier', identifier),
    now(), now(), false
  );
  return user_id;
end
$$;

create or replace function tests.get_supabase_user(identifier text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'id', u.id, 'email', u.email, 'is_anonymous', u.is_anonymous,
    'app_metadata', coalesce(u.raw_app_meta_data, '{}'::jsonb),
    'user_metadata', coalesce(u.raw_user_meta_data, '{}'::jsonb)
  )
  from auth.users u
  where u.raw_user_meta_data ->> 'test_identifier' = identifier
$$;

create or replace function tests.get_supabase_uid(identifier text)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  found_user jsonb := tests.get_supabase_user(identifier);
begin
  if found_user is null then
    raise exception 'tests: no test user "%"; create it with tests.create_supabase_user()', identifier;
  end if;
  return (found_user ->> 'id')::uuid;
end
$$;

-- Sets what PostgREST sets for a request: the role and every claim of the JWT.
create or replace function tests.set_request_claims(role_name text, claims jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if role_name not in ('anon', 'authenticated', 'service_role') then
    raise exception 'tests: unknown role %', role_name;
  end if;
  perform set_config('request.jwt.claims', claims::text, true);
  perform set_config('request.method', 'POST', true);
  perform set_config('request.headers',
    '{"x-forwarded-for": "203.0.113.7", "user-agent": "pgtap"}', true);
  execute format('set local role %I', role_name);
end
$$;

create or replace function tests.authenticate_as(identifier text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  found_user jsonb := tests.get_supabase_user(identifier);
  issued bigint := extract(epoch from now())::bigint;
begin
  if found_user is null then
    raise exception 'tests: no test user "%"; create it with tests.create_supabase_user()', identifier;
  end if;
  perform tests.set_request_claims('authenticated', jsonb_build_object(
    'iss', 'http://127.0.0.1:54321/auth/v1',
    'sub', found_user ->> 'id',
    'aud', 'authenticated',
    'role', 'authenticated',
    'email', found_user ->> 'email',
    'phone', '',
    'aal', 'aal1',
    'amr', jsonb_build_array(jsonb_build_object('method', 'password', 'timestamp', issued)),
    'session_id', gen_random_uuid(),
    'is_anonymous', (found_user ->> 'is_anonymous')::boolean,
    'iat', issued,
    'exp', issued + 3600,
    'app_metadata', found_user -> 'app_metadata',
    'user_metadata', found_user -> 'user_metadata'
  ));
end
$$;

create or replace function tests.authenticate_as_anon()
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform tests.set_request_claims('anon', jsonb_build_object(
    'iss', 'supabase-demo', 'role', 'anon', 'exp', extract(epoch from now())::bigint + 3600));
end
$$;

create or replace function tests.authenticate_as_service_role()
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform tests.set_request_claims('service_role', jsonb_build_object(
    'iss', 'supabase-demo', 'role', 'service_role', 'exp', extract(epoch from now())::bigint + 3600));
end
$$;

create or replace function tests.clear_authentication()
returns void
language plpgsql
set search_path = ''
as $$
begin
  set local role none;
  perform set_config('request.jwt.claims', '', true);
  perform set_config('request.headers', '', true);
end
$$;

-- The Storage API sets storage.allow_delete_query = 'true' in each transaction it opens;
-- without it storage.objects and storage.buckets refuse every DELETE. This sets it for
-- the rest of the current transaction (a test file is one transaction).
create or replace function tests.allow_storage_deletes()
returns void
language sql
set search_path = ''
as $$
  select set_config('storage.allow_delete_query', 'true', true);
$$;

create or replace function tests.freeze_time(frozen_at timestamptz)
returns void
language sql
set search_path = ''
as $$
  select set_config('ledgerbase.now', frozen_at::text, true);
$$;

create or replace function tests.unfreeze_time()
returns void
language sql
set search_path = ''
as $$
  select set_config('ledgerbase.now', '', true);
$$;

-- The error a statement raises, as {code, message, detail, hint}, or null when it succeeds.
create or replace function tests.caught(statement text) returns jsonb
language plpgsql set search_path = '' as $$
declare d text; h text;
begin
  execute statement;
  return null;
exception when others then
  get stacked diagnostics d = pg_exception_detail, h = pg_exception_hint;
  return jsonb_build_object('code', sqlstate, 'message', sqlerrm, 'detail', nullif(d, ''), 'hint', nullif(h, ''));
end
$$;

-- Runs a statement as a persona and undoes it: 'allow' when it saw or changed a row,
-- 'deny' when it saw none or lacked the privilege, else the error.
create or replace function tests.rls_probe(persona text, statement text)
returns text
language plpgsql
set search_path = ''
as $$
declare
  affected bigint;
  outcome text;
begin
  begin
    case persona
      when 'anon' then perform tests.authenticate_as_anon();
      when 'service_role' then perform tests.authenticate_as_service_role();
      else perform tests.authenticate_as(persona);
    end case;
    if statement ~* '^\s*select' then
      execute statement into affected;
    else
      execute statement;
      get diagnostics affected = row_count;
    end if;
    outcome := case when affected > 0 then 'allow' else 'deny' end;
    raise exception using errcode = 'TPROB', message = 'probe rolled back';
  exception
    when sqlstate 'TPROB' then null;  -- the probe's effects (and the role switch) are undone
    when insufficient_privilege then outcome := 'deny';
    when others then outcome := format('error %s: %s', sqlstate, sqlerrm);
  end;
  return outcome;
end
$$;

revoke all on all functions in schema tests from public;
grant execute on all functions in schema tests to anon, authenticated, service_role;

-- The helpers themselves are tested: everything else stands on them.
begin;
select plan(18);

select tests.create_supabase_user('helper_alice', 'alice@helpers.test', '00000000-0000-4000-8000-00000000a11c');
create table tests.helper_probe (id int);
insert into tests.helper_probe values (1);
grant select on tests.helper_probe to service_role;

-- A user made by the helper is a real auth.users row with the fixed id asked for.
select is(tests.get_supabase_uid('helper_alice'), '00000000-0000-4000-8000-00000000a11c'::uuid,
  'create_supabase_user keeps the fixed id and get_supabase_uid finds it');
select throws_ok($$ select tests.get_supabase_uid('nobody') $$, 'P0001', null,
  'asking for an unknown test user fails loudly');
select is(
  (select array[confirmation_token, recovery_token, email_change_token_new, email_change]
   from auth.users where id = '00000000-0000-4000-8000-00000000a11c'),
  array['', '', '', '']::varchar[],
  'the user has '''' (not NULL) in the token columns GoTrue reads as strings, so it could sign in on a real stack');

-- Authenticating sets the role and the full set of claims PostgREST would set.
select tests.authenticate_as('helper_alice');
select is(current_user::text, 'authenticated', 'authenticate_as switches to the authenticated role');
select is(auth.uid(), '00000000-0000-4000-8000-00000000a11c'::uuid, 'auth.uid() is the user''s id');
select is(auth.jwt() ->> 'email', 'alice@helpers.test', 'the email claim is set');
select ok(auth.jwt() ?& array['aal', 'exp', 'is_anonymous', 'session_id', 'app_metadata', 'user_metadata', 'aud', 'role'],
  'the claims include role, aal, exp, is_anonymous, session and metadata');

select tests.authenticate_as_anon();
select is(current_user::text, 'anon', 'authenticate_as_anon switches to anon');
select is(auth.uid(), null, 'anon has no user id');

select tests.authenticate_as_service_role();
select is(auth.role(), 'service_role', 'authenticate_as_service_role sets the service_role claim');

select tests.clear_authentication();
select is(current_user::text, session_user::text, 'clear_authentication returns to the runner''s role');

-- Freezing time moves private.now() and only it.
select tests.freeze_time('2030-01-01 12:00:00+00');
select is(private.now(), '2030-01-01 12:00:00+00'::timestamptz, 'freeze_time sets private.now()');
select tests.unfreeze_time();
select ok(private.now() > '2030-01-01'::timestamptz is false and private.now() >= now(),
  'unfreeze_time brings private.now() back to the real clock');

-- Deleting in storage takes what the Storage API sets.
select tests.allow_storage_deletes();
select lives_ok($$ delete from storage.buckets where id = 'helpers-none' $$,
  'after allow_storage_deletes a delete in storage runs, as the Storage API''s would');

-- The probes used by the RLS matrices and error stories.
select is(tests.caught($$ select 1 / 0 $$) ->> 'code', '22012', 'tests.caught returns the SQLSTATE of the error');
select is(tests.rls_probe('anon', $$ select count(*) from auth.users $$), 'deny',
  'tests.rls_probe reports a missing privilege as deny');
select is(tests.rls_probe('service_role', $$ select count(*) from tests.helper_probe $$), 'allow',
  'tests.rls_probe reports rows seen as allow');
select is(current_user::text, session_user::text, 'and the probe''s role switch is undone');

select * from finish();
rollback;
