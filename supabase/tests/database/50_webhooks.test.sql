-- Outgoing webhooks (docs/webhooks.md): endpoints managed with webhooks.manage (owners, admins),
-- a signing secret shown once and never readable again, URLs that can only point outside
-- (https, no loopback / private / link-local / CGNAT literal), events emitted from where
-- they happen, and the delivery log under RLS.
-- Personas: owner, admin, member, viewer, stranger, anon.
begin;
select plan(53);

select tests.freeze_time('2031-09-01 12:00:00+00');
-- The admin joins before any endpoint exists; the member and viewer join later (member.added).
select tests.team('hooks-team', owner => 'owner', admins => '{admin}');
select tests.create_users('member', 'viewer', 'stranger');

create table tests.hook_secrets (label text primary key, endpoint_id uuid, secret text);
grant select, insert on tests.hook_secrets to authenticated;

-- ---------------------------------------------------------------------------
-- The permission
-- ---------------------------------------------------------------------------
select results_eq(
  $$ select role from public.role_permissions where permission = 'webhooks.manage' order by role $$,
  array['admin', 'owner'],
  'webhooks.manage is held by owners and admins only');

-- ---------------------------------------------------------------------------
-- Creating: the secret once
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
insert into tests.hook_secrets select 'main', (r ->> 'id')::uuid, r ->> 'secret'
from public.create_webhook_endpoint(tests.account_id('hooks-team'), ' https://hooks.example.com/ledgerbase ',
                                    array['member.added', 'api_key.created', 'api_key.revoked', 'credits.granted'],
                                    'Our billing service') r;
select tests.clear_authentication();

select ok((select secret ~ '^whsec_[A-Za-z0-9+/]{43}=$' from tests.hook_secrets where label = 'main'),
  'the secret is whsec_ + base64 of 32 random bytes');
select is((select s.secret from private.webhook_secrets s join tests.hook_secrets t on t.endpoint_id = s.endpoint_id),
  (select decode(substr(secret, 7), 'base64') from tests.hook_secrets where label = 'main'),
  'the database keeps the key bytes in private, so it can sign');
select results_eq(
  $$ select url, description, event_types, active from public.webhook_endpoints $$,
  $$ values ('https://hooks.example.com/ledgerbase', 'Our billing service',
             array['api_key.created', 'api_key.revoked', 'credits.granted', 'member.added'], true) $$,
  'the endpoint: trimmed URL, its description, its event types sorted, active');
select ok(not (select to_jsonb(e) ? 'secret' from public.webhook_endpoints e),
  'webhook_endpoints has no secret column');

select tests.authenticate_as('owner');
select is((tests.caught($$ select * from private.webhook_secrets $$)) ->> 'code', '42501',
  'the owner cannot read the secrets table: the secret is never readable after creation');
select is((tests.caught($$ select private.webhook_request(gen_random_uuid()) $$)) ->> 'code', '42501',
  'nor call the signer');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Who may manage
-- ---------------------------------------------------------------------------
insert into public.account_members (account_id, user_id, role) values
  (tests.account_id('hooks-team'), tests.user_id('member'), 'member'),
  (tests.account_id('hooks-team'), tests.user_id('viewer'), 'viewer');

select tests.authenticate_as('member');
select is((tests.caught(format($$ select public.create_webhook_endpoint(%L, 'https://x.example.com', '{*}') $$, tests.account_id('hooks-team')))) ->> 'code',
  '42501', 'a member cannot create an endpoint');
select is((tests.caught(format($$ select public.delete_webhook_endpoint(%L) $$, (select endpoint_id from tests.hook_secrets)))) ->> 'message',
  'not_found', 'nor delete one: to them it does not exist');
select tests.authenticate_as('stranger');
select is((tests.caught(format($$ select public.rotate_webhook_secret(%L) $$, (select endpoint_id from tests.hook_secrets)))) ->> 'message',
  'not_found', 'a stranger cannot rotate the secret');
select is((tests.caught(format($$ select public.update_webhook_endpoint(%L, url => 'https://evil.example.com') $$, (select endpoint_id from tests.hook_secrets)))) ->> 'message',
  'not_found', 'nor point the endpoint elsewhere');
select tests.clear_authentication();

-- RLS per persona on endpoints and deliveries (the member.added events above made deliveries).
select is(tests.rls_probe('owner', 'select count(*) from public.webhook_endpoints'), 'allow', 'the owner reads the endpoints');
select is(tests.rls_probe('admin', 'select count(*) from public.webhook_endpoints'), 'allow', 'an admin reads the endpoints');
select is(tests.rls_probe('member', 'select count(*) from public.webhook_endpoints'), 'deny', 'a member does not');
select is(tests.rls_probe('viewer', 'select count(*) from public.webhook_endpoints'), 'deny', 'a viewer does not');
select is(tests.rls_probe('stranger', 'select count(*) from public.webhook_endpoints'), 'deny', 'a stranger does not');
select is(tests.rls_probe('anon', 'select count(*) from public.webhook_endpoints'), 'deny', 'anon does not');
select is(tests.rls_probe('owner', 'select count(*) from public.webhook_deliveries'), 'allow', 'the owner reads the delivery log');
select is(tests.rls_probe('admin', 'select count(*) from public.webhook_deliveries'), 'allow', 'an admin reads the delivery log');
select is(tests.rls_probe('member', 'select count(*) from public.webhook_deliveries'), 'deny', 'a member does not');
select is(tests.rls_probe('viewer', 'select count(*) from public.webhook_deliveries'), 'deny', 'a viewer does not');
select is(tests.rls_probe('stranger', 'select count(*) from public.webhook_deliveries'), 'deny', 'a stranger does not');
select is(tests.rls_probe('anon', 'select count(*) from public.webhook_deliveries'), 'deny', 'anon does not');
select is(tests.rls_probe('owner', $$ update public.webhook_deliveries set status = 'delivered' $$), 'deny',
  'nobody writes the delivery log directly, not even the owner');

-- ---------------------------------------------------------------------------
-- Events from where they happen
-- ---------------------------------------------------------------------------
select set_eq(
  $$ select d.type, d.payload -> 'data' ->> 'user_id', d.status as delivery_status, j.kind, j.status as job_status
     from public.webhook_deliveries d join private.jobs j on j.idempotency_key = 'webhook:' || d.id $$,
  $$ values ('member.added', tests.user_id('member')::text, 'pending', 'webhook.deliver', 'pending'),
            ('member.added', tests.user_id('viewer')::text, 'pending', 'webhook.deliver', 'pending') $$,
  'each member who joined made one member.added delivery and one job, in the same transaction');
select ok((select bool_and(payload ->> 'type' = type and payload ? 'timestamp' and event_id ~ '^evt_[0-9a-f]{32}$')
           from public.webhook_deliveries),
  'the body is {type, timestamp, data} and the event id is evt_ + 32 hex');

select public.create_api_key(tests.account_id('hooks-team'), 'CI');
select public.revoke_api_key((select id from public.api_keys where account_id = tests.account_id('hooks-team')));
select public.admin_adjust_credits(tests.account_id('hooks-team'), 25, 'goodwill');
select results_eq(
  $$ select type from public.webhook_deliveries where type <> 'member.added' order by created_at, type $$,
  array['api_key.created', 'api_key.revoked', 'credits.granted'],
  'API key created and revoked and credits granted are emitted');
select is((select payload -> 'data' ->> 'amount' from public.webhook_deliveries where type = 'credits.granted'), '25',
  'credits.granted carries the lot''s amount');
delete from public.account_members where user_id = tests.user_id('viewer');
select is((select count(*)::int from public.webhook_deliveries where type = 'member.removed'), 0,
  'an event type the endpoint did not subscribe to (member.removed) is not delivered');
select is(private.emit_event(tests.account_id('hooks-team'), 'credits.auto_topup.failed', '{}'), 0,
  'a valid type nobody subscribed to queues nothing');
select is((tests.caught($$ select private.emit_event(gen_random_uuid(), 'credits.stolen', '{}') $$)) ->> 'message',
  'invalid_event_type', 'an unknown event type is refused');

-- Subscriptions and payments (written by Stripe processing) emit too.
select public.update_webhook_endpoint((select endpoint_id from tests.hook_secrets), event_types => '{*}');
insert into public.subscriptions (account_id, stripe_subscription_id, plan_key, status, last_event_id, last_event_type, last_event_created)
values (tests.account_id('hooks-team'), 'sub_hooks1', 'pro', 'active', 'evt_1', 'customer.subscription.created', now());
update public.subscriptions set status = 'canceled' where stripe_subscription_id = 'sub_hooks1';
insert into public.payments (account_id, kind, item_key, amount, status, settlement, stripe_checkout_session_id)
values (tests.account_id('hooks-team'), 'credit_pack', 'pack_small', 500, 'paid', 'paid', 'cs_test_hooks');
update public.payments set amount_refunded = 200, status = 'partially_refunded' where account_id = tests.account_id('hooks-team');
select results_eq(
  $$ select type from public.webhook_deliveries
     where type like 'subscription.%' or type like 'payment.%' order by type $$,
  array['payment.refunded', 'payment.succeeded', 'subscription.canceled', 'subscription.created'],
  'subscription created and canceled, payment succeeded and refunded are emitted');

-- The credit engine's low-balance seam still warns billing managers, and now emits credits.low.
select private.on_low_balance(tests.account_id('hooks-team'), 3);
select is((select payload -> 'data' ->> 'available' from public.webhook_deliveries where type = 'credits.low'), '3',
  'on_low_balance emits credits.low with the available credits');
select is((select count(*)::int from public.notifications where data ->> 'kind' = 'low_balance' and data ->> 'account_id' = tests.account_id('hooks-team')::text), 2,
  'and still notifies the owner and the admin (billing.manage)');

-- ---------------------------------------------------------------------------
-- Redelivery and rotation
-- ---------------------------------------------------------------------------
select tests.authenticate_as('admin');
select isnt(public.redeliver_webhook((select id from public.webhook_deliveries where type = 'api_key.created')), null::uuid,
  'an admin redelivers a delivery');
select tests.clear_authentication();
select is((select count(distinct id)::int || '/' || count(distinct event_id)::int from public.webhook_deliveries where type = 'api_key.created'),
  '2/1', 'the redelivery is a new delivery of the same event (same webhook-id)');
select tests.authenticate_as('owner');
insert into tests.hook_secrets select 'rotated', (r ->> 'id')::uuid, r ->> 'secret'
from public.rotate_webhook_secret((select endpoint_id from tests.hook_secrets where label = 'main')) r;
select tests.clear_authentication();
select results_eq(
  $$ select expires_at from private.webhook_secrets order by id $$,
  $$ values ('2031-09-02 12:00:00+00'::timestamptz), (null) $$,
  'after rotation the old secret signs for 24 h more, the new one until the next rotation');
select is((select count(*)::int from tests.hook_secrets where secret like 'whsec_%'), 2, 'rotation shows the new secret once');

-- ---------------------------------------------------------------------------
-- Where endpoints may point
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
select is((tests.caught(format($$ select public.create_webhook_endpoint(%L, %L, '{*}') $$, tests.account_id('hooks-team'), u))) ->> 'message',
  'invalid_url', format('%s is refused', u))
from unnest(array['http://hooks.example.com/plain', 'https://127.0.0.1/hook', 'https://10.1.2.3/hook', 'https://169.254.169.254/latest/meta-data',
                  'https://[::1]/hook', 'https://[::ffff:10.0.0.1]/hook', 'https://100.64.0.1/hook', 'https://localhost:8443/hook',
                  'https://user:pw@hooks.example.com/', 'ftp://hooks.example.com/']) u;
select is((tests.caught(format($$ select public.create_webhook_endpoint(%L, 'https://ok.example.com', '{credits.stolen}') $$, tests.account_id('hooks-team')))) ->> 'message',
  'invalid_event_type', 'an unknown event type is refused at creation');
select tests.clear_authentication();

update private.settings set value = 'true' where key = 'webhook_allow_loopback';
select tests.authenticate_as('owner');
select is((tests.caught(format($$ select public.create_webhook_endpoint(%L, 'http://127.0.0.1:9999/hook', '{*}') $$, tests.account_id('hooks-team')))),
  null, 'with webhook_allow_loopback, http to loopback is accepted (local development)');
select is((tests.caught(format($$ select public.create_webhook_endpoint(%L, 'https://10.1.2.3/hook', '{*}') $$, tests.account_id('hooks-team')))) ->> 'message',
  'invalid_url', 'but private addresses stay refused');
select tests.clear_authentication();

select is(private.refused_webhook_address('::ffff:169.254.169.254'), 'link-local (cloud metadata)',
  'IPv4-mapped IPv6 is judged by the IPv4 address inside');
select is(private.refused_webhook_address('8.8.8.8'), null, 'a public address passes');

select * from finish();
rollback;
