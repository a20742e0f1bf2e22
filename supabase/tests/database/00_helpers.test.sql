-- Test helpers for every pgTAP file, installed by this first file (in the repository,
-- not downloaded). They are created outside the test transaction so they stay for the
-- files that follow; the throw-away test database is dropped after the run.
--
--   tests.create_supabase_user(identifier, email, id, metadata)  a user in auth.users (triggers run)
--   tests.create_anonymous_user(identifier, metadata)             an anonymous sign-up (is_anonymous, no email)
--   tests.get_supabase_uid(identifier)                           that user's id
--   tests.authenticate_as(identifier)                            act as that user, full JWT claims
--   tests.authenticate_as_anon()                                 act as the anon key
--   tests.authenticate_as_service_role()                         act as the service_role key
--   tests.clear_authentication()                                 back to the test runner's role
--   tests.freeze_time(ts) / tests.unfreeze_time()                the clock of private.now()
--   tests.allow_storage_deletes()                                 delete in storage as the Storage API does
--   tests.caught(statement)                                       the error a statement raises, as JSON
--   tests.rls_probe(persona, statement)                           allow / deny for a statement as a persona
--
-- Named fixtures (a story names its people and teams; no UUID literals):
--   tests.user_id(name) / tests.account_id(name)                 a user's id; a team's (by slug) or a user's personal account
--   tests.create_users(variadic names)                            users name@test.ledgerbase.dev that do not exist yet
--   tests.team(slug, owner, admins, members, viewers, name,      a team created by its (primary) owner through create_team_account,
--              owners)                                            with co-owners,
--                                                                 members added directly (invitations have their own stories)
--   tests.add_members(account, role, variadic names)              people join an existing team with a role
--   tests.invite(label, account, email, role)                     an invitation by the current persona, token kept in
--                                                                 tests.invitations under the label
--   tests.make_staff_admin(name)                                  a staff admin (public.user_roles)
--   tests.act_as(persona)                                         a user's name, 'anon' or 'service_role'
--   tests.fund_wallet(account, credits, reason)                   credits granted by a staff adjustment
--   tests.wallet_invariant(account)                               'ok' when wallet = sum of ledger = sum of lots' remaining
--                                                                 = the last ledger entry's balance_after
--   tests.rows_affected(statement)                                rows a write changed (RLS filters writes silently)
--   tests.seen_as(persona, query)                                 a one-value query's answer as a persona, undone
--   tests.rls_matrix(personas, cases)                             persona × table × operation: allow / deny, one test each
--   tests.rls_seen(personas, query, expected, description)        persona × what a query sees, one test each

create extension if not exists pgtap with schema extensions;

create schema if not exists tests;
comment on schema tests is 'pgTAP helpers; exists only in test databases.';
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_supabase_user(
  identifier text,
  email text default null,
  id uuid default null,
  metadata jsonb default '{}'::jsonb,
  anonymous boolean default false
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
    case when not anonymous then coalesce(email, identifier || '@test.ledgerbase.dev') end, '',
    case when not anonymous then now() end,
    '', '', '', '',
    case when anonymous then '{"provider": "anonymous", "providers": ["anonymous"]}'::jsonb
         else '{"provider": "email", "providers": ["email"]}'::jsonb end,
    coalesce(metadata, '{}'::jsonb) || jsonb_build_object('test_identifier', identifier),
    now(), now(), anonymous
  );
  return user_id;
end
$$;

create or replace function tests.create_anonymous_user(identifier text, metadata jsonb default '{}'::jsonb)
returns uuid
language sql
set search_path = ''
as $$
  select tests.create_supabase_user(identifier, metadata => metadata, anonymous => true)
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


-- ---------------------------------------------------------------------------
-- Named fixtures
-- ---------------------------------------------------------------------------
create or replace function tests.user_id(name text)
returns uuid
language sql
stable
set search_path = ''
as $$
  select tests.get_supabase_uid(name)
$$;

-- A team by its slug, else the personal account of the user of that name (its id is the user's).
create or replace function tests.account_id(name text)
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  found uuid;
begin
  select a.id into found from public.accounts a where a.slug = account_id.name;
  if found is null then
    select a.id into found from public.accounts a
    where a.kind = 'personal' and a.id = (tests.get_supabase_user(account_id.name) ->> 'id')::uuid;
  end if;
  if found is null then
    raise exception 'tests: no account "%"; create it with tests.team() or tests.create_supabase_user()', name;
  end if;
  return found;
end
$$;

create or replace function tests.create_users(variadic names text[])
returns void
language sql
set search_path = ''
as $$
  select tests.create_supabase_user(n) from unnest(names) n where tests.get_supabase_user(n) is null
$$;

create or replace function tests.make_staff_admin(name text)
returns void
language sql
security definer
set search_path = ''
as $$
  update public.user_roles set role = 'admin' where user_id = tests.get_supabase_uid(name)
$$;

-- Acts as a persona: a test user's name, 'anon' or 'service_role'.
create or replace function tests.act_as(persona text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  case persona
    when 'anon' then perform tests.authenticate_as_anon();
    when 'service_role' then perform tests.authenticate_as_service_role();
    else perform tests.authenticate_as(persona);
  end case;
end
$$;

-- People joining a team with a role, inserted into account_members as postgres (the
-- invitation flow has its own stories); people who do not exist yet are created.
create or replace function tests.add_members(account uuid, role text, variadic people text[])
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform tests.create_users(variadic people);
  insert into public.account_members (account_id, user_id, role)
  select account, tests.get_supabase_uid(person), add_members.role from unnest(people) person;
end
$$;

-- Invitations the stories made, by label: the token is shown only once, to the inviter.
create table if not exists tests.invitations (label text primary key, token text, invitation_id uuid, expires_at timestamptz);
grant select, insert, update on tests.invitations to authenticated, service_role;

-- An invitation by the current persona (public.invite_member), its token kept under a label.
create or replace function tests.invite(label text, account uuid, email text, role text default 'member')
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  r jsonb := public.invite_member(account, email, role);
begin
  insert into tests.invitations values (label, r ->> 'token', (r ->> 'invitation_id')::uuid, (r ->> 'expires_at')::timestamptz)
  on conflict on constraint invitations_pkey do update set token = excluded.token, invitation_id = excluded.invitation_id, expires_at = excluded.expires_at;
  return r;
end
$$;

-- A team as its owner makes it (public.create_team_account: slug rules, owner membership,
-- wallet, audit), then the others added to account_members directly, as postgres: the
-- invitation flow and the plan's member limit have stories of their own. People who do not
-- exist yet are created (name@test.ledgerbase.dev). Call it as the test runner.
create or replace function tests.team(
  slug text,
  owner text,
  admins text[] default '{}',
  members text[] default '{}',
  viewers text[] default '{}',
  name text default null,
  owners text[] default '{}'
) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  team_id uuid;
begin
  perform tests.create_users(variadic array[owner] || owners || admins || members || viewers);
  perform tests.authenticate_as(owner);
  select (public.create_team_account(coalesce(team.name, initcap(replace(team.slug, '-', ' '))), team.slug)).id into team_id;
  perform tests.clear_authentication();
  perform tests.add_members(team_id, 'owner', variadic owners);
  perform tests.add_members(team_id, 'admin', variadic admins);
  perform tests.add_members(team_id, 'member', variadic members);
  perform tests.add_members(team_id, 'viewer', variadic viewers);
  return team_id;
end
$$;

-- Credits on an account's wallet, as a staff adjustment (public.admin_adjust_credits).
create or replace function tests.fund_wallet(account uuid, credits bigint, reason text default 'test credits')
returns void
language sql
set search_path = ''
as $$
  select public.admin_adjust_credits(account, credits, reason)
$$;

-- The wallet invariant, read through the public tables only: balance = sum of the ledger's
-- deltas = the remaining credits of the unexpired lots = the last ledger entry's
-- balance_after, and available = balance - held with held >= 0. 'ok', or the numbers that
-- disagree.
create or replace function tests.wallet_invariant(account uuid)
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select case when w.account_id is null then 'no wallet'
              when w.balance = l.total and w.balance = g.total and w.balance = coalesce(l.last_after, 0)
                   and w.available = w.balance - w.held and w.held >= 0
              then 'ok'
              else format('balance %s held %s available %s ledger %s lots %s last balance_after %s',
                          w.balance, w.held, w.available, l.total, g.total, l.last_after) end
  from (select account) a
  left join public.credit_balances w on w.account_id = a.account
  cross join lateral (select coalesce(sum(x.delta), 0) as total,
                             (select y.balance_after from public.credit_ledger y where y.account_id = a.account
                              order by y.id desc limit 1) as last_after
                      from public.credit_ledger x where x.account_id = a.account) l
  cross join lateral (select coalesce(sum(x.remaining), 0) as total from public.credit_grants x
                      where x.account_id = a.account and (x.expires_at is null or x.expires_at > private.now())) g
$$;

-- How many rows a write changed (RLS filters writes silently: 0 means refused).
create or replace function tests.rows_affected(statement text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  n integer;
begin
  execute statement;
  get diagnostics n = row_count;
  return n;
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
    perform tests.act_as(persona);
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


-- A one-value query's answer as a persona (as text; null when it sees nothing), undone like a
-- probe; 'denied' when the persona lacks the privilege.
create or replace function tests.seen_as(persona text, query text)
returns text
language plpgsql
set search_path = ''
as $$
declare
  answer text;
begin
  begin
    perform tests.act_as(persona);
    execute query into answer;
    raise exception using errcode = 'TPROB', message = 'probe rolled back';
  exception
    when sqlstate 'TPROB' then null;
    when insufficient_privilege then answer := 'denied';
  end;
  return answer;
end
$$;

-- The RLS matrix: cases is a query giving (tbl, op, statement, allowed text[]), one row per
-- table and operation; every statement runs as every persona (tests.rls_probe) and is one
-- test: 'allow' for the personas in allowed, 'deny' for the others.
create or replace function tests.rls_matrix(personas text[], cases text)
returns setof text
language plpgsql
set search_path = extensions  -- pgTAP's functions call each other unqualified
as $$
declare
  tbl text;
  op text;
  statement text;
  allowed text[];
  persona text;
  expected text;
begin
  for tbl, op, statement, allowed in
    execute format('select t.tbl::text, t.op::text, t.statement::text, t.allowed::text[]'
                   ' from (%s) as t(tbl, op, statement, allowed)', cases)
  loop
    foreach persona in array personas loop
      expected := case when persona = any (allowed) then 'allow' else 'deny' end;
      return next is(tests.rls_probe(persona, statement), expected, format('%s × %s × %s: %s', tbl, persona, op, expected));
    end loop;
  end loop;
end
$$;

-- What each persona sees: query gives one value; expected[i] is what personas[i] sees.
-- One test per persona.
create or replace function tests.rls_seen(personas text[], query text, expected text[], description text)
returns setof text
language plpgsql
set search_path = extensions  -- pgTAP's functions call each other unqualified
as $$
begin
  if cardinality(personas) <> cardinality(expected) then
    raise exception 'tests: % personas but % expected answers', cardinality(personas), cardinality(expected);
  end if;
  for i in 1 .. cardinality(personas) loop
    return next is(tests.seen_as(personas[i], query), expected[i], format('%s: %s', personas[i], description));
  end loop;
end
$$;

revoke all on all functions in schema tests from public;
grant execute on all functions in schema tests to anon, authenticated, service_role;

-- The helpers themselves are tested: everything else stands on them.
begin;
select plan(18 + 23);

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

-- Named fixtures: a team by names, found again by names.
select tests.create_supabase_user('helper_olivia', 'olivia@helpers.test');
select tests.team('helper-acme', owner => 'helper_olivia', owners => '{helper_otto}', admins => '{helper_adam}',
                  members => '{helper_mia}', viewers => '{helper_vic}');
select is(tests.user_id('helper_olivia'), tests.get_supabase_uid('helper_olivia'), 'tests.user_id finds a user by name');
select tests.create_anonymous_user('helper_ghost');
select is((select row(is_anonymous, email, raw_app_meta_data ->> 'provider')::text from auth.users where id = tests.user_id('helper_ghost')),
  row(true, null::text, 'anonymous')::text, 'tests.create_anonymous_user makes an anonymous sign-up: no email, provider anonymous');
select is(tests.account_id('helper_olivia'), tests.user_id('helper_olivia'),
  'tests.account_id of a user''s name is their personal account');
select results_eq(
  $$ select u.raw_user_meta_data ->> 'test_identifier', m.role from public.account_members m join auth.users u on u.id = m.user_id
     where m.account_id = tests.account_id('helper-acme') order by m.role, 1 $$,
  $$ values ('helper_adam', 'admin'), ('helper_mia', 'member'), ('helper_olivia', 'owner'), ('helper_otto', 'owner'),
            ('helper_vic', 'viewer') $$,
  'tests.team makes the team with its owners, admins, members and viewers, creating the people it does not know');
select is((select row(kind, name, primary_owner)::text from public.accounts where slug = 'helper-acme'),
  row('team', 'Helper Acme', tests.user_id('helper_olivia'))::text,
  'the team is named after its slug and owned by its owner, as create_team_account makes it');
select is((select email from auth.users where id = tests.user_id('helper_mia')), 'helper_mia@test.ledgerbase.dev',
  'a person tests.team creates has the default test email');
select is(current_user::text, session_user::text, 'tests.team leaves the runner''s role in place');
select throws_ok($$ select tests.account_id('no-such-team') $$, 'P0001', null, 'asking for an unknown account fails loudly');

update public.plans set max_members = null where key = 'free';  -- room on the free plan, for this file
select tests.authenticate_as('helper_olivia');
select tests.invite('helper', tests.account_id('helper-acme'), 'guest@helpers.test', 'viewer');
select tests.clear_authentication();
select is((select i.email || ' ' || i.role from public.account_invitations i join tests.invitations t on t.invitation_id = i.id
           where t.label = 'helper' and t.token ~ '^[A-Za-z0-9_-]{43}$'), 'guest@helpers.test viewer',
  'tests.invite invites as the persona and keeps the token under its label');

select tests.make_staff_admin('helper_vic');
select is((select role from public.user_roles where user_id = tests.user_id('helper_vic')), 'admin',
  'tests.make_staff_admin makes a staff admin');

-- The wallet: funded, and its invariant.
select tests.fund_wallet(tests.account_id('helper-acme'), 25);
select is((select balance from public.credit_balances where account_id = tests.account_id('helper-acme')), 25::bigint,
  'tests.fund_wallet puts the credits on the wallet');
select is(tests.wallet_invariant(tests.account_id('helper-acme')), 'ok', 'and the wallet invariant holds');
select is(tests.wallet_invariant(gen_random_uuid()), 'no wallet', 'the invariant of an account without a wallet says so');
-- (a lot changed behind the credit functions' back: in storage, once the wallet has written its
-- figure back)
select private.settle_lot(tests.account_id('helper-acme'));
update ledger.lots set remaining = remaining - 1 where account_id = tests.account_id('helper-acme');
select isnt(tests.wallet_invariant(tests.account_id('helper-acme')), 'ok',
  'a lot that disagrees with the ledger breaks the invariant, and the check says so');
-- (two entries that cancel out, the last with a wrong balance_after: sums agree, the chain does not)
insert into ledger.entries (account_id, delta, balance_after, available_after, reason) values
  (tests.account_id('helper_olivia'), 1, 51, 51, 'promo'), (tests.account_id('helper_olivia'), -1, 999, 999, 'promo');
select matches(tests.wallet_invariant(tests.account_id('helper_olivia')), 'last balance_after 999$',
  'a last ledger entry whose balance_after is not the balance breaks the invariant');

-- The RLS runners.
select is(tests.rows_affected($$ update tests.helper_probe set id = 2 $$), 1, 'tests.rows_affected counts the rows a write changed');
select is(tests.seen_as('helper_mia', $$ select auth.uid() $$), tests.user_id('helper_mia')::text,
  'tests.seen_as answers as the persona');
select is(tests.seen_as('anon', $$ select count(*) from auth.users $$), 'denied',
  'and says denied when the persona lacks the privilege');
select * from tests.rls_matrix('{anon,service_role}', $cases$
  values ('helper_probe', 'select', $$ select count(*) from tests.helper_probe $$, '{service_role}') $cases$);
select * from tests.rls_seen('{helper_olivia,helper_adam}', $$ select auth.uid() = tests.user_id('helper_olivia') $$,
  '{true,false}', 'only the owner is the owner');
select is(current_user::text, session_user::text, 'and the runners leave the runner''s role in place');

select * from finish();
rollback;
