-- API keys (docs/rpc.md#api-keys, docs/functions.md#usage): created with the plaintext shown once and only a hash kept;
-- managed by members with api_keys.manage; refused alike when unknown, malformed, revoked
-- or expired; scoped; and how the usage function meters with one (private.*_with_api_key).
-- Personas: owner, admin, member, viewer, stranger, staff admin, service_role, anon.
begin;
select plan(67);

select tests.freeze_time('2031-08-01 12:00:00+00');
select tests.team('keys-team', owner => 'owner', admins => '{admin}', members => '{member}', viewers => '{viewer}');
select tests.create_users('stranger', 'staff');
select tests.make_staff_admin('staff');
select tests.fund_wallet(tests.account_id('keys-team'), 100, 'credits for the key tests');

create table tests.keys (label text primary key, id uuid, key text, prefix text);
grant select, insert on tests.keys to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Creating: the plaintext once, a hash kept out of reach
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
insert into tests.keys select 'consume', (r ->> 'id')::uuid, r ->> 'key', r ->> 'prefix'
from public.create_api_key(tests.account_id('keys-team'), ' Production server ') r;
select tests.clear_authentication();

select ok((select key ~ '^lb_[0-9a-f]{12}_[0-9a-f]{64}$' from tests.keys where label = 'consume'),
  'the key is lb_<12 hex prefix>_<64 hex secret>: 256 bits of randomness');
select is((select split_part(key, '_', 2) from tests.keys where label = 'consume'), (select prefix from tests.keys where label = 'consume'),
  'the returned prefix is the key''s prefix');
select results_eq(
  $$ select k.account_id, k.name, k.prefix, k.scopes, k.expires_at, k.created_by, k.revoked_at, k.last_used_at
     from public.api_keys k join tests.keys t on t.id = k.id where t.label = 'consume' $$,
  $$ select tests.account_id('keys-team'), 'Production server', prefix, '{credits.consume}'::text[], null::timestamptz,
            tests.user_id('owner'), null::timestamptz, null::timestamptz
     from tests.keys where label = 'consume' $$,
  'the key row: trimmed name, its prefix, the default scope credits.consume, no expiry, its creator');
select is((select h.hash from private.api_key_hashes h join tests.keys t on t.id = h.api_key_id where t.label = 'consume'),
  (select encode(extensions.digest(key, 'sha256'), 'hex') from tests.keys where label = 'consume'),
  'only the sha256 of the key is stored, in private');
select hasnt_column('public', 'api_keys', 'hash', 'api_keys has no hash column a client could read');
select hasnt_column('public', 'api_keys', 'key', 'api_keys has no key column');
select ok(not exists (select from public.audit_log a, tests.keys t
                      where a.after::text like '%' || split_part(t.key, '_', 3) || '%'),
  'the secret appears in no audit entry');
select results_eq(
  $$ select action, actor_user_id, account_id, after - 'expires_at' from public.audit_log where action like 'api_key.%' $$,
  $$ select 'api_key.created', tests.user_id('owner'), tests.account_id('keys-team'),
            jsonb_build_object('name', 'Production server', 'prefix', prefix, 'scopes', array['credits.consume'])
     from tests.keys where label = 'consume' $$,
  'creating a key logs one api_key.created entry by its creator, without the secret');

select tests.authenticate_as('admin');
insert into tests.keys select 'read', (r ->> 'id')::uuid, r ->> 'key', r ->> 'prefix'
from public.create_api_key(tests.account_id('keys-team'), 'Dashboard', '{usage.read, credits.read, credits.read}') r;
insert into tests.keys select 'expiring', (r ->> 'id')::uuid, r ->> 'key', r ->> 'prefix'
from public.create_api_key(tests.account_id('keys-team'), 'Temporary', '{credits.consume,credits.read}', '2031-08-02 12:00:00+00') r;
select tests.clear_authentication();
select is((select scopes from public.api_keys k join tests.keys t on t.id = k.id where t.label = 'read'),
  '{credits.read,usage.read}'::text[], 'an admin creates keys too; scopes are deduplicated and sorted');
select is((select count(distinct key)::int from tests.keys), 3, 'every key is different');

-- Who may create keys, and with what.
select tests.authenticate_as('member');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), 'x') $$, '42501', 'permission denied', 'a member cannot create keys');
select tests.authenticate_as('viewer');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), 'x') $$, '42501', 'permission denied', 'a viewer cannot create keys');
select tests.authenticate_as('stranger');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), 'x') $$, '42501', 'permission denied', 'a stranger cannot create keys');
select tests.authenticate_as_anon();
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), 'x') $$, '42501', null, 'anon cannot create keys');
select tests.authenticate_as('owner');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), 'x', '{credits.consume, admin}') $$, '22023', 'invalid_scope', 'an unknown scope is refused');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), 'x', '{}') $$, '22023', 'invalid_scope', 'a key needs a scope');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), 'x', array[null]::text[]) $$, '22023', 'invalid_scope', 'a null scope is refused');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), '   ') $$, '22023', 'invalid_input', 'a blank name is refused');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), repeat('n', 101)) $$, '22023', 'invalid_input', 'a name over 100 characters is refused');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-team'), 'x', '{credits.consume}', '2031-08-01 12:00:00+00') $$,
  '22023', 'invalid_input', 'an expiry that is not in the future is refused');
select tests.authenticate_as_service_role();
select is((public.create_api_key(tests.account_id('keys-team'), 'From the server') ->> 'key') ~ '^lb_', true,
  'the service role (a trusted server) creates keys for any account');
select throws_ok($$ select public.create_api_key(gen_random_uuid(), 'x') $$, 'PT404', 'not_found',
  'a server asking for an unknown account gets not_found');
select tests.clear_authentication();

-- Rate limit: a burst of 10 keys per user (policy create_api_key).
delete from private.rate_limit_buckets where key like 'create_api_key:%';
select tests.authenticate_as('stranger');
select public.create_api_key(tests.user_id('stranger'), 'k' || n) from generate_series(1, 10) n;
select throws_ok($$ select public.create_api_key(tests.user_id('stranger'), 'one too many') $$, 'PT429', 'rate_limited',
  'the eleventh key in a burst is rate-limited');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Who reads keys (RLS), and nobody writes them directly
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
select is((select count(*)::int from public.api_keys where account_id = tests.account_id('keys-team')), 4, 'the owner reads the team''s keys');
select tests.authenticate_as('admin');
select is((select count(*)::int from public.api_keys), 4, 'an admin (api_keys.manage) reads the team''s keys and no others');
select throws_ok($$ update public.api_keys set revoked_at = null $$, '42501', null, 'an admin cannot update keys directly');
select throws_ok($$ insert into public.api_keys (account_id, name, prefix, scopes) values (tests.account_id('keys-team'), 'x', '000000000000', '{credits.consume}') $$,
  '42501', null, 'nor insert keys directly');
select throws_ok($$ delete from public.api_keys $$, '42501', null, 'nor delete keys');
select throws_ok($$ select count(*) from private.api_key_hashes $$, '42501', null, 'nor read the hashes');
select tests.authenticate_as('member');
select is((select count(*)::int from public.api_keys), 0, 'a member (no api_keys.manage) reads no keys');
select tests.authenticate_as('viewer');
select is((select count(*)::int from public.api_keys), 0, 'a viewer reads no keys');
select tests.authenticate_as('stranger');
select is((select count(*)::int from public.api_keys), 10, 'a stranger reads only the keys of their own account');
select tests.authenticate_as('staff');
select is((select count(*)::int from public.api_keys), 14, 'a staff admin reads every key');
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.api_keys), 14, 'the service role reads every key');
select throws_ok($$ select count(*) from private.api_key_hashes $$, '42501', null, 'the service role cannot read the hashes');
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from public.api_keys $$, '42501', null, 'anon cannot read keys');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Authenticating a key: the same refusal for every bad key
-- ---------------------------------------------------------------------------
select results_eq(
  $$ select a.api_key_id, a.account_id, a.scopes from private.authenticate_api_key((select key from tests.keys where label = 'read')) a $$,
  $$ select id, tests.account_id('keys-team'), '{credits.read,usage.read}'::text[] from tests.keys where label = 'read' $$,
  'a valid key yields its id, account and scopes');
select throws_ok($$ select private.authenticate_api_key('lb_000000000000_' || repeat('0', 64)) $$, 'PT401', 'invalid_api_key',
  'an unknown key is refused');
select throws_ok($$ select private.authenticate_api_key((select 'lb_' || prefix || '_' || repeat('0', 64) from tests.keys where label = 'read')) $$,
  'PT401', 'invalid_api_key', 'a known prefix with a wrong secret is refused the same way');
select throws_ok($$ select private.authenticate_api_key('Bearer nonsense') $$, 'PT401', 'invalid_api_key', 'a malformed key is refused the same way');
select throws_ok($$ select private.authenticate_api_key(null) $$, 'PT401', 'invalid_api_key', 'no key is refused the same way');
select throws_ok($$ select private.authenticate_api_key(upper((select key from tests.keys where label = 'read'))) $$, 'PT401', 'invalid_api_key',
  'keys are case-sensitive');

select tests.freeze_time('2031-08-02 12:00:00+00');
select throws_ok($$ select private.authenticate_api_key((select key from tests.keys where label = 'expiring')) $$, 'PT401', 'invalid_api_key',
  'a key is refused from its expiry on');
select tests.freeze_time('2031-08-01 12:00:00+00');
select lives_ok($$ select private.authenticate_api_key((select key from tests.keys where label = 'expiring')) $$, 'and accepted before it');

-- ---------------------------------------------------------------------------
-- Metering with a key (what the usage function runs)
-- ---------------------------------------------------------------------------
create table tests.audit_mark as select max(id) as id from public.audit_log;
select is(
  private.consume_with_api_key((select key from tests.keys where label = 'consume'), 'api_call', 7, 'req-1', '{"route": "/v1/chat"}') - 'usage_event_id',
  '{"credits_charged": 7, "balance": 93, "available": 93, "replayed": false}'::jsonb,
  'consume_with_api_key charges the key''s account');
select results_eq(
  $$ select e.account_id, e.user_id, e.api_key_id, e.quantity, e.metadata from public.usage_events e where e.idempotency_key = 'req-1' $$,
  $$ select tests.account_id('keys-team'), null::uuid, id, 7, '{"route": "/v1/chat"}'::jsonb from tests.keys where label = 'consume' $$,
  'the usage event records the key and no user');
select is((select actor_role from public.credit_ledger where usage_event_id = (select id from public.usage_events where idempotency_key = 'req-1')),
  'system', 'the ledger entry''s actor is a server');
select is((select last_used_at from public.api_keys k join tests.keys t on t.id = k.id where t.label = 'consume'),
  '2031-08-01 12:00:00+00'::timestamptz, 'the key''s last use is recorded');
select is(
  (private.consume_with_api_key((select key from tests.keys where label = 'consume'), 'api_call', 7, 'req-1', '{"route": "/v1/chat"}') ->> 'replayed')::boolean,
  true, 'the same idempotency key replays instead of charging twice');
select throws_ok($$ select private.consume_with_api_key((select key from tests.keys where label = 'consume'), 'api_call', 8, 'req-1', '{"route": "/v1/chat"}') $$,
  'PT409', 'idempotency_conflict', 'the same idempotency key with other parameters is a conflict');
select throws_ok($$ select private.consume_with_api_key((select key from tests.keys where label = 'consume'), 'api_call', 200) $$,
  'PT402', 'insufficient_credits', 'more than the balance is refused with insufficient_credits');

select tests.freeze_time('2031-08-01 12:00:30+00');
select private.consume_with_api_key((select key from tests.keys where label = 'consume'), 'api_call');
select is((select last_used_at from public.api_keys k join tests.keys t on t.id = k.id where t.label = 'consume'),
  '2031-08-01 12:00:00+00'::timestamptz, 'within a minute, last use is not written again');
select tests.freeze_time('2031-08-01 12:01:30+00');
select private.consume_with_api_key((select key from tests.keys where label = 'consume'), 'api_call');
select is((select last_used_at from public.api_keys k join tests.keys t on t.id = k.id where t.label = 'consume'),
  '2031-08-01 12:01:30+00'::timestamptz, 'after a minute it is');
select is((select count(*)::int from public.audit_log where id > (select id from tests.audit_mark)), 0,
  'metering with a key writes no audit entry');

-- Scopes.
select throws_ok($$ select private.consume_with_api_key((select key from tests.keys where label = 'read'), 'api_call') $$,
  'PT403', 'insufficient_scope', 'a key without credits.consume cannot meter');
select is(private.balance_with_api_key((select key from tests.keys where label = 'consume')) ->> 'account_id', tests.account_id('keys-team')::text,
  'a metering key (credits.consume) may read the balance it draws from');
select is(private.balance_with_api_key((select key from tests.keys where label = 'read')),
  jsonb_build_object('account_id', tests.account_id('keys-team'), 'balance', 91, 'held', 0, 'available', 91),
  'a key with credits.read reads the balance');
select is(
  (select jsonb_agg(q order by q::int) from jsonb_array_elements(
     jsonb_path_query_array(private.usage_with_api_key((select key from tests.keys where label = 'read'), 10), '$.events[*].quantity')) q),
  '[1, 1, 7]'::jsonb, 'a key with usage.read lists the account''s usage events');
select throws_ok($$ select private.usage_with_api_key((select key from tests.keys where label = 'expiring')) $$,
  'PT403', 'insufficient_scope', 'a key without usage.read cannot list usage');

-- ---------------------------------------------------------------------------
-- Revoking
-- ---------------------------------------------------------------------------
select tests.authenticate_as('member');
select throws_ok($$ select public.revoke_api_key((select id from tests.keys where label = 'consume')) $$, '42501', 'permission denied',
  'a member cannot revoke a key');
select tests.authenticate_as('stranger');
select throws_ok($$ select public.revoke_api_key((select id from tests.keys where label = 'consume')) $$, 'PT404', 'not_found',
  'a stranger cannot revoke a key (not_found, as for an unknown id)');
select throws_ok($$ select public.revoke_api_key(gen_random_uuid()) $$, 'PT404', 'not_found', 'an unknown key is not found');
select tests.authenticate_as('admin');
select public.revoke_api_key((select id from tests.keys where label = 'consume'));
select public.revoke_api_key((select id from tests.keys where label = 'consume'));
select tests.clear_authentication();
select results_eq(
  $$ select k.revoked_at, k.revoked_by from public.api_keys k join tests.keys t on t.id = k.id where t.label = 'consume' $$,
  $$ values ('2031-08-01 12:01:30+00'::timestamptz, tests.user_id('admin')) $$,
  'revoking records when and by whom');
select results_eq(
  $$ select a.action, a.actor_user_id, a.entity_id from public.audit_log a where a.action = 'api_key.revoked' $$,
  $$ select 'api_key.revoked', tests.user_id('admin'), id::text from tests.keys where label = 'consume' $$,
  'revoking logs one api_key.revoked entry, and revoking again logs nothing more');
select throws_ok($$ select private.consume_with_api_key((select key from tests.keys where label = 'consume'), 'api_call') $$,
  'PT401', 'invalid_api_key', 'a revoked key is refused like an unknown one');

select is(tests.wallet_invariant(tests.account_id('keys-team')), 'ok',
  'every charge made with a key left the team''s wallet in agreement with its ledger and lots');

select private.seal_audit_log();
select is_empty($$ select * from private.verify_audit_chain() $$, 'the audit chain, these entries sealed, is intact');

select * from finish();
rollback;
