-- Per-key rate limits (docs/rpc.md#set_api_key_rate_limit, docs/functions.md#usage): a key may carry its own bucket (capacity, refill per
-- second), set by create_api_key or set_api_key_rate_limit and shown in api_keys; the usage
-- function takes a cell from the key's bucket (scope api_key) and then one from the
-- account's; a key without a limit of its own gets the usage_api_key policy. Changes are
-- audited. The clock is frozen: no bucket refills during the stories.
-- Personas: Olga owns the team, Adam is its admin, Mia a member, Sam a stranger; anon.
begin;
select plan(23);

select tests.freeze_time('2031-09-01 12:00:00+00');
select tests.team('keys-35', owner => 'olga', admins => '{adam}', members => '{mia}');
select tests.create_users('sam');
select tests.fund_wallet(tests.account_id('keys-35'), 1000, 'credits for the key tests');

create table tests.keys35 (label text primary key, id uuid, key text);
grant select, insert on tests.keys35 to authenticated;

-- ---------------------------------------------------------------------------
-- Creating keys with and without a limit
-- ---------------------------------------------------------------------------
select tests.authenticate_as('adam');
insert into tests.keys35 select 'limited', (r ->> 'id')::uuid, r ->> 'key'
from public.create_api_key(tests.account_id('keys-35'), 'Batch worker', rate_limit_capacity => 3, rate_limit_refill_per_second => 0.5) r;
insert into tests.keys35 select 'production', (r ->> 'id')::uuid, r ->> 'key'
from public.create_api_key(tests.account_id('keys-35'), 'Production') r;
select is((select row(rate_limit_capacity, rate_limit_refill_per_second)::text from public.api_keys
           where id = (select id from tests.keys35 where label = 'limited')),
  '(3,0.5)', 'Adam''s batch key shows its own limit in api_keys');
select is((select row(rate_limit_capacity, rate_limit_refill_per_second)::text from public.api_keys
           where id = (select id from tests.keys35 where label = 'production')),
  '(,)', 'a key created as before has no limit of its own');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-35'), 'Half', rate_limit_capacity => 3) $$,
  '22023', 'invalid_input', 'a capacity without a refill is refused');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-35'), 'Zero', rate_limit_capacity => 0, rate_limit_refill_per_second => 1) $$,
  '22023', 'invalid_input', 'a capacity of 0 is refused');
select throws_ok($$ select public.create_api_key(tests.account_id('keys-35'), 'Stuck', rate_limit_capacity => 5, rate_limit_refill_per_second => 0) $$,
  '22023', 'invalid_input', 'a bucket that never refills is refused');
select tests.clear_authentication();
select is((select after - 'prefix' from public.audit_log where action = 'api_key.rate_limit_changed'
           and entity_id = (select id::text from tests.keys35 where label = 'limited')),
  '{"rate_limit_capacity": 3, "rate_limit_refill_per_second": 0.5}'::jsonb,
  'a key created with a limit logs the limit');

-- ---------------------------------------------------------------------------
-- The usage function: the key's bucket, then the account's
-- ---------------------------------------------------------------------------
select lives_ok($$ select private.consume_with_api_key((select key from tests.keys35 where label = 'limited'), 'api_call')
                   from generate_series(1, 3) $$, 'the batch key meters three calls');
select is(tests.caught($$ select private.consume_with_api_key((select key from tests.keys35 where label = 'limited'), 'api_call') $$)
            - 'detail',
  jsonb_build_object('code', 'PT429', 'message', 'rate_limited', 'hint', 'retry after 2 seconds'),
  'its fourth call is rate limited: one cell refills in 2 seconds');
select is((tests.caught($$ select private.consume_with_api_key((select key from tests.keys35 where label = 'limited'), 'api_call') $$)
            ->> 'detail')::jsonb ->> 'policy', 'usage_api_key', 'by the usage_api_key bucket of the key');
select lives_ok($$ select private.consume_with_api_key((select key from tests.keys35 where label = 'production'), 'api_call') $$,
  'the production key of the same account still meters');
select is((select count(*)::int from public.usage_events where account_id = tests.account_id('keys-35')), 4,
  'four calls were metered, the refused ones not');
select lives_ok($$ select private.consume_with_api_key((select key from tests.keys35 where label = 'production'), 'api_call')
                   from generate_series(1, 59) $$, 'a key without a limit of its own takes 60 calls (usage_api_key)');
select throws_ok($$ select private.consume_with_api_key((select key from tests.keys35 where label = 'production'), 'api_call') $$,
  'PT429', 'rate_limited', 'and is refused the 61st: one key cannot drain the account''s 120');
select throws_ok($$ select private.balance_with_api_key((select key from tests.keys35 where label = 'limited')) $$,
  'PT429', 'rate_limited', 'every route of the usage function counts against the key');

-- ---------------------------------------------------------------------------
-- Changing the limit
-- ---------------------------------------------------------------------------
select tests.authenticate_as('mia');
select throws_ok($$ select public.set_api_key_rate_limit((select id from tests.keys35 where label = 'limited'), 100, 10) $$,
  '42501', 'permission denied', 'a member cannot lift a key''s limit (api_keys.manage)');
select tests.authenticate_as('sam');
select throws_ok($$ select public.set_api_key_rate_limit((select id from tests.keys35 where label = 'limited'), 100, 10) $$,
  'PT404', 'not_found', 'a stranger finds no such key');
select tests.authenticate_as_anon();
select throws_ok($$ select public.set_api_key_rate_limit((select id from tests.keys35 where label = 'limited'), 100, 10) $$,
  '42501', null, 'anon cannot call it');
select tests.authenticate_as('olga');
select lives_ok($$ select public.set_api_key_rate_limit((select id from tests.keys35 where label = 'limited'), 100, 10) $$,
  'Olga raises the batch key''s limit to 100, refilled 10 a second');
select throws_ok($$ select public.set_api_key_rate_limit((select id from tests.keys35 where label = 'limited'), 100, null) $$,
  '22023', 'invalid_input', 'half a limit is refused');
select tests.clear_authentication();
select lives_ok($$ select private.consume_with_api_key((select key from tests.keys35 where label = 'limited'), 'api_call') $$,
  'the new limit applies at the next call');
select is((select after - 'prefix' from public.audit_log where action = 'api_key.rate_limit_changed'
           and actor_user_id = tests.user_id('olga')),
  '{"rate_limit_capacity": 100, "rate_limit_refill_per_second": 10}'::jsonb,
  'the change is audited as Olga''s');
select is((select before from public.audit_log where action = 'api_key.rate_limit_changed'
           and actor_user_id = tests.user_id('olga')),
  '{"rate_limit_capacity": 3, "rate_limit_refill_per_second": 0.5}'::jsonb,
  'with the limit it replaced');
select is(tests.wallet_invariant(tests.account_id('keys-35')), 'ok',
  'and the calls the buckets let through left the team''s wallet in agreement with its ledger and lots');

select * from finish();
rollback;
