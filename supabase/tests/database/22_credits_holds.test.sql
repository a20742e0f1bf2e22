-- Holds for long jobs (docs/credits.md#holds, docs/rpc.md#reserve_credits, docs/errors.md): reserve_credits, capture_credits,
-- release_credits, expiry of holds, the expiry of the credits behind a hold, and capture
-- limits: never more than reserved, and quotas count only what was captured.
--
-- World (time frozen at T0 = 2031-08-01 12:00 UTC): team "t22-team" (tests.team) with
-- t22_owner, t22_member (who reserves and captures), t22_viewer (who may not spend), funded
-- with 100 never-expiring purchased credits; t22_stranger, who must not touch its holds. The owner's personal
-- wallet (50 signup credits + 40 expiring promo credits) backs two holds whose credits expire.
begin;
select plan(74 + 10);

select tests.freeze_time('2031-08-01 12:00:00+00');
update public.plans set limits = '{}' where key = 'free';

select tests.create_users('t22_owner', 't22_member', 't22_viewer', 't22_stranger');
select tests.team('t22-team', owner => 't22_owner', members => '{t22_member}', viewers => '{t22_viewer}', name => 'Holds Co');
select private.grant_credits(tests.account_id('t22-team'), 100, 'purchase', null, 'fund');

-- The kit's wallet invariant (tests.wallet_invariant: balance = ledger = lots = the last
-- balance_after, available = balance - held), and what holds add to it: held = the open
-- holds, held <= max(balance, 0).
create function tests.wallet_check(acc uuid) returns text
language sql stable security definer set search_path = '' as $$
  select case when tests.wallet_invariant(acc) <> 'ok' then tests.wallet_invariant(acc)
              when w.held = h.total and w.held <= greatest(w.balance, 0) then 'ok'
              else format('held %s open holds %s balance %s', w.held, h.total, w.balance) end
  from public.credit_balances w,
       lateral (select coalesce(sum(amount), 0) as total from public.credit_holds where account_id = acc and status = 'held') h
  where w.account_id = acc
$$;
-- Hold ids by idempotency key, for the personas (bypasses RLS; ids are not secrets here).
create function tests.hold(key text) returns uuid
language sql stable security definer set search_path = '' as $$
  select id from public.credit_holds where idempotency_key = hold.key
$$;
grant execute on function tests.hold(text) to anon, authenticated, service_role;
create function tests.wallet(acc uuid) returns text
language sql stable security definer set search_path = '' as $$
  select balance || '/' || held || '/' || available from public.credit_balances where account_id = acc
$$;
grant execute on function tests.wallet(uuid) to authenticated;

-- ---------------------------------------------------------------------------
-- Reserve: held goes up, available down, balance unchanged, nothing charged
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t22_member');
select is(
  public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 3, 'h1') - 'hold_id',
  '{"amount": 30, "expires_at": "2031-08-01T12:15:00+00:00", "available": 70, "replayed": false}'::jsonb,
  'the member reserves 3 thumbnails: 30 held for the default 900 seconds, 70 available');
select tests.clear_authentication();
select is(tests.wallet(tests.account_id('t22-team')), '100/30/70', 'wallet: balance 100, held 30, available 70');
select results_eq(
  $$ select user_id, action, quantity, credits_per_unit, unit_size, amount, status, usage_event_id, credits_charged
     from public.credit_holds where id = tests.hold('h1') $$,
  $$ values (tests.user_id('t22_member'), 'text_to_thumbnail', 3, 10::bigint, 1, 30::bigint, 'held', null::uuid, null::bigint) $$,
  'the hold records who, what, the price at reservation and its amount');
select is((select count(*)::int from public.credit_ledger where account_id = tests.account_id('t22-team')), 1,
  'a reservation writes no ledger entry (only the funding grant is there)');
select is(tests.wallet_check(tests.account_id('t22-team')), 'ok', 'invariants hold with an open hold (held = sum of open holds)');

-- Idempotent reserve.
select tests.authenticate_as('t22_member');
select is(
  public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 3, 'h1'),
  jsonb_build_object('hold_id', tests.hold('h1'), 'amount', 30, 'expires_at', '2031-08-01T12:15:00+00:00', 'available', 70, 'replayed', true),
  'reserving again with the same key returns the same hold, replayed');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 4, 'h1') $$,
  'PT409', 'idempotency_conflict', 'the same key with another quantity: idempotency_conflict');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'your_face', 3, 'h1') $$,
  'PT409', 'idempotency_conflict', 'the same key with another action: idempotency_conflict');
select is(tests.wallet(tests.account_id('t22-team')), '100/30/70', 'the replay and the conflicts held nothing more');

-- Held credits cannot be spent.
select is(
  (tests.caught($$ select public.consume_credits(tests.account_id('t22-team'), 'api_call', 71) $$) ->> 'detail')::jsonb,
  '{"required": 71, "available": 70}'::jsonb,
  'consuming 71 with 30 of 100 held is insufficient_credits (available 70)');

-- ---------------------------------------------------------------------------
-- Capture
-- ---------------------------------------------------------------------------
select is(
  public.capture_credits(tests.hold('h1'), 2) - 'usage_event_id',
  '{"credits_charged": 20, "released": 10, "balance": 80, "available": 80, "replayed": false}'::jsonb,
  'capturing 2 of 3 reserved thumbnails charges 20 and releases the other 10');
select tests.clear_authentication();
select is(tests.wallet(tests.account_id('t22-team')), '80/0/80', 'wallet: balance 80, nothing held');
select results_eq(
  $$ select h.status, h.credits_charged, h.settled_at, e.quantity, e.credits_charged, e.user_id, e.action, l.delta, l.reason, l.balance_after
     from public.credit_holds h join public.usage_events e on e.id = h.usage_event_id and e.hold_id = h.id
     join public.credit_ledger l on l.usage_event_id = e.id and l.hold_id = h.id
     where h.id = tests.hold('h1') $$,
  $$ values ('captured', 20::bigint, '2031-08-01 12:00:00+00'::timestamptz, 2, 20::bigint, tests.user_id('t22_member'),
             'text_to_thumbnail', -20::bigint, 'capture', 80::bigint) $$,
  'the capture is one usage event (2 units, 20 credits) and one capture ledger entry, both linked to the hold');
select is(tests.wallet_check(tests.account_id('t22-team')), 'ok', 'invariants hold after a capture');

select tests.authenticate_as('t22_member');
select is(
  public.capture_credits(tests.hold('h1')),
  jsonb_build_object('usage_event_id', (select usage_event_id from public.credit_holds where id = tests.hold('h1')),
                     'credits_charged', 20, 'released', 0, 'balance', 80, 'available', 80, 'replayed', true),
  'capturing twice replays the first capture');
select is(tests.wallet(tests.account_id('t22-team')), '80/0/80', 'the second capture charged nothing');

-- Capturing more than reserved is refused (the capture limits at the end tell the quota story).
select lives_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 2, 'h2') $$,
  'the member reserves 2 thumbnails (20)');
select throws_ok($$ select public.capture_credits(hold_id => tests.hold('h2'), quantity => 5) $$,
  '22023', 'invalid_input', 'capturing 5 units of a 2-unit hold is invalid_input');
select is(
  public.capture_credits(hold_id => tests.hold('h2'), quantity => 2) - 'usage_event_id',
  '{"credits_charged": 20, "released": 0, "balance": 60, "available": 60, "replayed": false}'::jsonb,
  'capturing the 2 reserved units charges the 20 held');
select is((select quantity from public.usage_events e where e.hold_id = tests.hold('h2')), 2,
  'the usage event records the 2 units used');
select throws_ok($$ select public.capture_credits(tests.hold('h2'), 0) $$,
  '22023', 'invalid_input', 'a capture quantity of 0 is invalid_input');

-- ---------------------------------------------------------------------------
-- Release
-- ---------------------------------------------------------------------------
select is(public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 1, 'h3') ->> 'available', '50',
  'reserving 10 more leaves 50 available');
select is(public.release_credits(tests.hold('h3')), '{"released": 10, "available": 60}'::jsonb,
  'releasing gives the 10 back');
select is(public.release_credits(tests.hold('h3')), '{"released": 0, "available": 60}'::jsonb,
  'releasing again releases 0');
select throws_ok($$ select public.capture_credits(tests.hold('h3')) $$,
  'PT410', 'gone', 'a released hold cannot be captured (gone)');
select tests.clear_authentication();
select results_eq(
  $$ select status, settled_at, (select count(*)::int from public.usage_events where hold_id = tests.hold('h3')) from public.credit_holds where id = tests.hold('h3') $$,
  $$ values ('released', '2031-08-01 12:00:00+00'::timestamptz, 0) $$,
  'the hold is released, with no usage event');
select is(tests.wallet_check(tests.account_id('t22-team')), 'ok', 'invariants hold after a release');

-- ---------------------------------------------------------------------------
-- Expired holds
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t22_member');
select is(public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 1, 'h4', 60) ->> 'expires_at',
  '2031-08-01T12:01:00+00:00', 'a hold with ttl_seconds 60 expires a minute later');
select tests.freeze_time('2031-08-01 12:01:00+00');
select throws_ok($$ select public.capture_credits(tests.hold('h4')) $$,
  'PT410', 'gone', 'at its expiry the hold cannot be captured (gone)');
select is(tests.caught($$ select public.capture_credits(tests.hold('h4')) $$) ->> 'detail', 'the hold is expired',
  'the detail says it expired');
select tests.clear_authentication();
select is(tests.wallet(tests.account_id('t22-team')), '60/10/50', 'until the sweep the expired hold still counts as held');
select is(private.release_expired_holds(), 1, 'private.release_expired_holds() releases it');
select is(private.release_expired_holds(), 0, 'and releases nothing the second time');
select results_eq(
  $$ select (select status from public.credit_holds where id = tests.hold('h4')), tests.wallet(tests.account_id('t22-team')) $$,
  $$ values ('expired', '60/0/60') $$,
  'the hold is marked expired and its credits are available again');

-- Releasing an expired hold by hand marks it expired too.
select tests.authenticate_as('t22_member');
select lives_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 1, 'h5', 1) $$, 'a 1-second hold');
select tests.freeze_time('2031-08-01 12:01:05+00');
select is(public.release_credits(tests.hold('h5')), '{"released": 10, "available": 60}'::jsonb, 'releasing it after expiry gives the credits back');
select tests.clear_authentication();
select is((select status from public.credit_holds where id = tests.hold('h5')), 'expired', 'and marks it expired');

-- ---------------------------------------------------------------------------
-- Refusals
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t22_member');
select is(
  tests.caught($$ select public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 7, 'h-big') $$) - 'hint',
  jsonb_build_object('code', 'PT402', 'message', 'insufficient_credits', 'detail', '{"required": 70, "available": 60}'),
  'reserving 70 with 60 available: insufficient_credits with {required, available}');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'api_call', 1, null, 0) $$,
  '22023', 'invalid_input', 'ttl_seconds 0 is invalid');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'api_call', 1, null, 86401) $$,
  '22023', 'invalid_input', 'ttl_seconds above max_hold_seconds (86400) is invalid');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'api_call', 1, null, null) $$,
  '22023', 'invalid_input', 'a null ttl_seconds is invalid');
select lives_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'api_call', 1, 'h-max', 86400) $$,
  'ttl_seconds 86400 is accepted');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'api_call', 0) $$,
  '22023', 'invalid_input', 'quantity 0 is invalid');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'no_such_action') $$,
  'PT404', 'not_found', 'an unknown action is not_found');
select throws_ok($$ select public.capture_credits(gen_random_uuid()) $$,
  'PT404', 'not_found', 'an unknown hold is not_found');
select throws_ok($$ select public.release_credits(gen_random_uuid()) $$,
  'PT404', 'not_found', 'releasing an unknown hold is not_found');
select lives_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 1, 'h6', 3600) $$,
  'the member opens hold h6 (10)');

select tests.authenticate_as('t22_viewer');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'api_call') $$,
  '42501', 'permission denied', 'a viewer cannot reserve');
select throws_ok($$ select public.capture_credits(tests.hold('h6')) $$,
  '42501', 'permission denied', 'a viewer cannot capture the member''s hold');
select throws_ok($$ select public.release_credits(tests.hold('h6')) $$,
  '42501', 'permission denied', 'a viewer cannot release it');
select tests.authenticate_as('t22_stranger');
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'api_call') $$,
  '42501', 'permission denied', 'a stranger cannot reserve on the team');
-- A stranger is told what an unknown id would tell them: nothing about the hold's existence.
select throws_ok($$ select public.capture_credits(tests.hold('h6')) $$,
  'PT404', 'not_found', 'a stranger cannot capture the team''s hold (not_found, as for an unknown id)');
select throws_ok($$ select public.release_credits(tests.hold('h6')) $$,
  'PT404', 'not_found', 'a stranger cannot release the team''s hold (not_found, as for an unknown id)');
select tests.authenticate_as_anon();
select throws_ok($$ select public.reserve_credits(tests.account_id('t22-team'), 'api_call') $$,
  '42501', 'permission denied for function reserve_credits', 'anon cannot execute reserve_credits');
select throws_ok($$ select public.capture_credits(gen_random_uuid()) $$,
  '42501', 'permission denied for function capture_credits', 'anon cannot execute capture_credits');
select tests.clear_authentication();
select results_eq(
  $$ select tests.wallet(tests.account_id('t22-team')), (select status from public.credit_holds where id = tests.hold('h6')),
            (select count(*)::int from public.credit_holds where account_id = tests.account_id('t22-team')) $$,
  $$ values ('60/11/49', 'held', 7) $$,
  'the refusals created no hold and left h6 open');

-- Holds belong to the account: the owner captures the member's hold.
select tests.authenticate_as('t22_owner');
select is((public.capture_credits(tests.hold('h6')) ->> 'credits_charged')::int, 10, 'the owner captures the member''s hold');
select tests.authenticate_as_service_role();
select is(public.release_credits(tests.hold('h-max')), '{"released": 1, "available": 50}'::jsonb, 'service_role releases a hold');
select tests.clear_authentication();
select is(tests.wallet_check(tests.account_id('t22-team')), 'ok', 'invariants hold on the team wallet at the end');

-- ---------------------------------------------------------------------------
-- Credits behind a hold expire: the newest holds shrink so held <= balance
-- ---------------------------------------------------------------------------
-- The owner's personal wallet: 50 never-expiring signup credits + 40 promo credits expiring at 13:00.
select private.grant_credits(tests.user_id('t22_owner'), 40, 'promo', '2031-08-01 13:00+00', 'soon');
select tests.authenticate_as('t22_owner');
select lives_ok($$ select public.reserve_credits(tests.user_id('t22_owner'), 'text_to_thumbnail', 3, 'old-hold', 7200) $$,
  'the owner reserves 30 (older hold)');
select lives_ok($$ select public.reserve_credits(tests.user_id('t22_owner'), 'text_to_thumbnail', 5, 'new-hold', 7200) $$,
  'then 50 (newer hold)');
select tests.clear_authentication();
update public.credit_holds set created_at = now() - interval '1 minute' where id = tests.hold('old-hold');
select is(tests.wallet(tests.user_id('t22_owner')), '90/80/10', 'balance 90, held 80, available 10');
select tests.freeze_time('2031-08-01 13:00:00+00');
select is(private.expire_credit_grants(), 1, 'at 13:00 the sweep expires the 40 promo credits');
select results_eq(
  $$ select tests.wallet(tests.user_id('t22_owner')),
            (select amount from public.credit_holds where id = tests.hold('old-hold')),
            (select amount from public.credit_holds where id = tests.hold('new-hold')) $$,
  $$ values ('50/50/0', 30::bigint, 20::bigint) $$,
  'balance 50: the newest hold shrank from 50 to 20 so that held (50) <= balance');
select is(tests.wallet_check(tests.user_id('t22_owner')), 'ok', 'invariants hold after expiry shrank a hold');
select tests.authenticate_as('t22_owner');
select is(public.capture_credits(tests.hold('new-hold')) - 'usage_event_id',
  '{"credits_charged": 20, "released": 0, "balance": 30, "available": 0, "replayed": false}'::jsonb,
  'capturing the shrunk hold charges at most its 20 remaining credits');
select is((public.capture_credits(tests.hold('old-hold')) ->> 'balance')::int, 0, 'capturing the older hold spends the rest');
select tests.clear_authentication();
select is(tests.wallet_check(tests.user_id('t22_owner')), 'ok', 'invariants hold at the end; no expired credit was spent');

-- ---------------------------------------------------------------------------
-- A clawback shrinks open holds too; a hold emptied that way captures for 0
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t22_member');
select is(public.reserve_credits(tests.account_id('t22-team'), 'text_to_thumbnail', 3, 'cb', 3600) ->> 'available', '20',
  'the member reserves 30 of the team''s 50');
select tests.clear_authentication();
select lives_ok($$ select private.clawback_credits(tests.account_id('t22-team'), 70, 'clawback', 'refund-1') $$,
  'a refund claws back 70 credits (more than the balance)');
select results_eq(
  $$ select tests.wallet(tests.account_id('t22-team')), (select amount from public.credit_holds where id = tests.hold('cb')) $$,
  $$ values ('-20/0/-20', 0::bigint) $$,
  'the team owes 20; the open hold shrank to 0 so nothing is held beyond the balance');
select is(tests.wallet_check(tests.account_id('t22-team')), 'ok', 'invariants hold with a debt and an emptied hold');
select tests.authenticate_as('t22_member');
select is(tests.caught($$ select public.capture_credits(tests.hold('cb')) $$), null,
  'capturing the emptied hold does not fail (it charges at most the held amount: 0)');
select tests.clear_authentication();
select results_eq(
  $$ select status, credits_charged, tests.wallet(tests.account_id('t22-team')) from public.credit_holds where id = tests.hold('cb') $$,
  $$ values ('captured', 0::bigint, '-20/0/-20') $$,
  'the hold is captured for 0 credits and the debt is unchanged');

-- ===========================================================================
-- Capture limits: a capture never charges or counts more than was reserved
-- (docs/rpc.md#capture_credits)
-- ===========================================================================
-- A hold is a promise about a quantity: capture_credits(hold_id, quantity) may charge the
-- reserved quantity or less, and a quantity above the reserved one is invalid_input (22023)
-- that changes nothing. Plan quotas count only the captured units: what a hold reserved
-- and did not use goes back to the quota when it is captured.
--
-- World (time frozen in March 2033, free plan capped at 3 api_calls a month): team
-- "capture-team" with its owner capture_owner, funded with 100 purchased credits.
select tests.freeze_time('2033-03-15 12:00:00+00');
update public.plans set limits = '{"quotas": {"api_call": 3}}' where key = 'free';
update private.rate_limit_policies set capacity = 1000, refill_per_second = 1000 where name in ('consume_credits', 'reserve_credits');

select tests.team('capture-team', owner => 'capture_owner', name => 'Capture Co');
select private.grant_credits(tests.account_id('capture-team'), 100, 'purchase', null, 'fund');

-- What the wallet, the hold and the quota counter look like (bypasses RLS).
create function tests.capture_state(key text) returns text
language sql stable security definer set search_path = '' as $$
  select w.balance || '/' || w.held || ' hold ' || h.status || ' used ' || coalesce(w.quota_used ->> 'api_call', '0')
         || ' events ' || (select count(*) from public.usage_events e where e.account_id = w.account_id)
  from public.credit_balances w join public.credit_holds h on h.account_id = w.account_id and h.idempotency_key = key
  where w.account_id = tests.account_id('capture-team')
$$;
grant execute on function tests.capture_state(text) to authenticated;

-- ---------------------------------------------------------------------------
-- A capture above the reserved quantity is refused and changes nothing
-- ---------------------------------------------------------------------------
select tests.authenticate_as('capture_owner');
select lives_ok($$ select public.reserve_credits(tests.account_id('capture-team'), 'api_call', 1, 'one-unit') $$,
  'the owner reserves 1 api_call (1 credit, 1 unit of the quota)');
select is(tests.capture_state('one-unit'), '100/1 hold held used 1 events 0', 'the hold counts 1 unit against the quota');

select throws_ok($$ select public.capture_credits(tests.hold('one-unit'), 2147483647) $$,
  '22023', 'invalid_input', 'capturing 2,147,483,647 units of a 1-unit hold is invalid_input');
select is(tests.caught($$ select public.capture_credits(tests.hold('one-unit'), 2) $$) ->> 'detail',
  'quantity must not exceed the 1 unit reserved by the hold',
  'the detail says what the hold allows');
select is(tests.capture_state('one-unit'), '100/1 hold held used 1 events 0',
  'the refused captures charged nothing, counted nothing against the quota and left the hold open');
select lives_ok($$ select public.consume_credits(tests.account_id('capture-team'), 'api_call', 2) $$,
  'the rest of the month''s quota (2 of 3) is still usable: nobody is locked out');

-- ---------------------------------------------------------------------------
-- Quotas count only what is captured
-- ---------------------------------------------------------------------------
select is((public.capture_credits(tests.hold('one-unit'), 1) ->> 'credits_charged')::int, 1,
  'capturing the reserved unit charges it');
select is(tests.capture_state('one-unit'), '97/0 hold captured used 3 events 2', 'the quota is used up by 3 real units');

-- Next month: a new quota period.
select tests.freeze_time('2033-04-02 12:00:00+00');
select lives_ok($$ select public.reserve_credits(tests.account_id('capture-team'), 'api_call', 3, 'three-units') $$,
  'in April a hold of 3 units takes the whole quota');
select public.capture_credits(tests.hold('three-units'), 1);
select is(tests.capture_state('three-units'), '96/0 hold captured used 1 events 3',
  'capturing 1 of the 3 reserved units counts 1 against April''s quota');
select tests.clear_authentication();


select * from finish();
rollback;
