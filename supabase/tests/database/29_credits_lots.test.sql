-- Lots (docs/credits.md#lots, docs/credits.md#draw-down-order, docs/credits.md#expiry,
-- docs/credits.md#clawbacks-and-debt, docs/credits.md#low-balance): the order consumption
-- draws lots in, expired credits never spent, staff adjustments into debt and back, and the
-- low-balance signal. After the steps that change a wallet the kit's invariant is checked
-- (tests.wallet_invariant: balance = sum of ledger deltas = sum of unexpired remaining, debt
-- lot included, = the last balance_after; available = balance - held).
-- The free plan's limits are emptied (no seed quotas) so only the wallet is under test.
begin;
select plan(64);

update public.plans set limits = '{}' where key = 'free';

-- World (time frozen at T0 = 2031-07-01 00:00 UTC):
--   team "t29-order"  (t29_owner + t29_member) lots a..g set up by the runner, drawn down by the member
--   team "t29-expiry" (t29_owner + t29_member) lots that expire while in use
--   t29_debtor       a user whose personal wallet a staff admin adjusts into debt and back
--   t29_saver        a user whose personal wallet crosses the low-balance threshold (20)
select tests.freeze_time('2031-07-01 00:00:00+00');
select tests.create_users('t29_owner', 't29_member', 't29_stranger', 't29_staff', 't29_debtor', 't29_saver');
select tests.make_staff_admin('t29_staff');

select tests.team('t29-order', owner => 't29_owner', members => '{t29_member}', name => 'Order Co');
select tests.team('t29-expiry', owner => 't29_owner', members => '{t29_member}', name => 'Expiry Co');

-- The lots of an account as "key=remaining,..." in key order.
create function tests.lots(acc uuid) returns text
language sql stable set search_path = '' as $$
  select string_agg(coalesce(idempotency_key, source) || '=' || remaining, ',' order by coalesce(idempotency_key, source))
  from public.credit_grants where account_id = acc
$$;
grant execute on function tests.lots(uuid) to authenticated;

-- ---------------------------------------------------------------------------
-- Draw-down order
-- ---------------------------------------------------------------------------
-- Seven lots of 10. Expected order: soonest expiry first, never-expiring last; on a tie
-- promotional (signup_bonus, referral, promo, admin) before paid (purchase, subscription);
-- then oldest. Ages are chosen to contradict the first two rules where they apply:
--   a  purchase      expires T0+10d   newest of all          -> 1st (soonest expiry beats age and paid)
--   f  referral      expires T0+20d   6 days old             -> 2nd
--   b  promo         expires T0+20d   4 days old             -> 3rd (promotional, younger than f)
--   c  purchase      expires T0+20d   8 days old             -> 4th (paid after promotional despite age)
--   g  signup_bonus  never            7 days old             -> 5th
--   e  admin         never            5 days old             -> 6th
--   d  subscription  never            9 days old (oldest)    -> 7th (paid, never-expiring: last)
select private.grant_credits(tests.account_id('t29-order'), 10, 'purchase', '2031-07-11 00:00+00', 'a');
select private.grant_credits(tests.account_id('t29-order'), 10, 'promo', '2031-07-21 00:00+00', 'b');
select private.grant_credits(tests.account_id('t29-order'), 10, 'purchase', '2031-07-21 00:00+00', 'c');
select private.grant_credits(tests.account_id('t29-order'), 10, 'subscription', null, 'd');
select private.grant_credits(tests.account_id('t29-order'), 10, 'admin', null, 'e');
select private.grant_credits(tests.account_id('t29-order'), 10, 'referral', '2031-07-21 00:00+00', 'f');
select private.grant_credits(tests.account_id('t29-order'), 10, 'signup_bonus', null, 'g');
-- (backdated in storage, as if granted over the past days; the wallet then reloads its first lot)
update ledger.lots g set created_at = now() - v.age
from (values ('a', interval '1 day'), ('b', '4 days'), ('c', '8 days'), ('d', '9 days'), ('e', '5 days'), ('f', '6 days'), ('g', '7 days')) v (k, age)
where g.account_id = tests.account_id('t29-order') and g.idempotency_key = v.k;
select private.settle_lot(tests.account_id('t29-order'));
select private.load_lot(tests.account_id('t29-order'));

select results_eq(
  $$ select balance, next_expiry_at from public.credit_balances where account_id = tests.account_id('t29-order') $$,
  $$ values (70::bigint, '2031-07-11 00:00+00'::timestamptz) $$,
  'seven lots: balance 70, next expiry is the soonest lot''s');

select tests.authenticate_as('t29_member');
select lives_ok($$ select public.consume_credits(tests.account_id('t29-order'), 'api_call', 5) $$, 'the member spends 5');
select is(tests.lots(tests.account_id('t29-order')), 'a=5,b=10,c=10,d=10,e=10,f=10,g=10',
  'the soonest-expiring lot (a, paid and newest) goes first');
select lives_ok($$ select public.consume_credits(tests.account_id('t29-order'), 'api_call', 10) $$, 'the member spends 10');
select is(tests.lots(tests.account_id('t29-order')), 'a=0,b=10,c=10,d=10,e=10,f=5,g=10',
  'a is used up and the draw continues into f: on the T0+20d tie, the oldest promotional lot');
select lives_ok($$ select public.consume_credits(tests.account_id('t29-order'), 'api_call', 10) $$, 'the member spends 10');
select is(tests.lots(tests.account_id('t29-order')), 'a=0,b=5,c=10,d=10,e=10,f=0,g=10',
  'then b, the younger promotional lot, before the older paid lot c');
select lives_ok($$ select public.consume_credits(tests.account_id('t29-order'), 'api_call', 10) $$, 'the member spends 10');
select is(tests.lots(tests.account_id('t29-order')), 'a=0,b=0,c=5,d=10,e=10,f=0,g=10',
  'then c, the paid lot of the tie');
select lives_ok($$ select public.consume_credits(tests.account_id('t29-order'), 'api_call', 20) $$, 'the member spends 20');
select is(tests.lots(tests.account_id('t29-order')), 'a=0,b=0,c=0,d=10,e=5,f=0,g=0',
  'then the never-expiring lots: promotional g (older) and e before paid d');
select lives_ok($$ select public.consume_credits(tests.account_id('t29-order'), 'api_call', 10) $$, 'the member spends 10');
select is(tests.lots(tests.account_id('t29-order')), 'a=0,b=0,c=0,d=5,e=0,f=0,g=0',
  'the paid never-expiring lot d comes last, although it is the oldest');
select tests.clear_authentication();
select is(tests.wallet_invariant(tests.account_id('t29-order')), 'ok', 'invariants hold after the draw-down');
select throws_ok($$ select private.grant_credits(tests.account_id('t29-order'), 10, 'promo', '2031-06-30 00:00+00') $$,
  '22023', 'invalid_input', 'a lot cannot be granted already expired');
select throws_ok($$ select private.grant_credits(tests.account_id('t29-order'), 0, 'promo') $$,
  '22023', 'invalid_input', 'a lot must hold credits');
select is(private.grant_credits(tests.account_id('t29-order'), 99, 'promo', null, 'a'),
  (select id from public.credit_grants where account_id = tests.account_id('t29-order') and idempotency_key = 'a'),
  'granting again with a used idempotency key returns the first lot and grants nothing');
select is((select balance from public.credit_balances where account_id = tests.account_id('t29-order')), 5::bigint,
  'the balance is still 5');

-- ---------------------------------------------------------------------------
-- Expiry: expired credits are never spent
-- ---------------------------------------------------------------------------
-- Lots p1: 30 promo expiring T0+1d, p2: 20 purchased, never expiring.
select private.grant_credits(tests.account_id('t29-expiry'), 30, 'promo', '2031-07-02 00:00+00', 'p1');
select private.grant_credits(tests.account_id('t29-expiry'), 20, 'purchase', null, 'p2');
select tests.authenticate_as('t29_member');
select is(public.consume_credits(tests.account_id('t29-expiry'), 'api_call', 10) - 'usage_event_id',
  '{"credits_charged": 10, "balance": 40, "available": 40, "replayed": false}'::jsonb,
  'before expiry the member spends 10 of 50, from the expiring lot');

-- The moment p1 expires, its 20 remaining credits stop counting.
select tests.freeze_time('2031-07-02 00:00:00+00');
select is(
  (tests.caught($$ select public.consume_credits(tests.account_id('t29-expiry'), 'api_call', 25) $$) ->> 'detail')::jsonb,
  '{"required": 25, "available": 20}'::jsonb,
  'at the expiry instant 25 credits are refused: only the 20 never-expiring credits are available');
select is(public.consume_credits(tests.account_id('t29-expiry'), 'api_call', 5) - 'usage_event_id',
  '{"credits_charged": 5, "balance": 15, "available": 15, "replayed": false}'::jsonb,
  'spending 5 after expiry leaves 15: the expired credits were not spent');
select tests.clear_authentication();
select results_eq(
  $$ select l.delta, l.balance_after, l.reason, g.idempotency_key
     from public.credit_ledger l left join public.credit_grants g on g.id = l.grant_id
     where l.account_id = tests.account_id('t29-expiry') order by l.id desc limit 2 $$,
  $$ values (-5::bigint, 15::bigint, 'consume', null::text), (-20::bigint, 20::bigint, 'expire', 'p1') $$,
  'the consumption first expired p1 inline (an expire entry of -20), then charged p2');
select is(tests.lots(tests.account_id('t29-expiry')), 'p1=0,p2=15', 'p1 is empty, p2 paid the 5');
select is(tests.wallet_invariant(tests.account_id('t29-expiry')), 'ok', 'invariants hold after inline expiry');
select is((select next_expiry_at from public.credit_balances where account_id = tests.account_id('t29-expiry')), null,
  'no expiring lot is left: next_expiry_at is cleared');

-- The sweep expires lots nobody touched; it is idempotent.
select private.grant_credits(tests.account_id('t29-expiry'), 10, 'promo', '2031-07-03 00:00+00', 'p3');
select tests.freeze_time('2031-07-03 06:00:00+00');
select tests.authenticate_as('t29_member');
select is((select balance from public.credit_balances where account_id = tests.account_id('t29-expiry')), 25::bigint,
  'before the sweep the stored balance still counts the lapsed p3 (25)');
select tests.clear_authentication();
select cmp_ok(private.expire_credit_grants(), '>=', 1, 'private.expire_credit_grants() expires p3');
select is(private.expire_credit_grants(), 0, 'running it again expires nothing');
select results_eq(
  $$ select (select count(*)::int from public.credit_ledger where account_id = tests.account_id('t29-expiry') and reason = 'expire'),
            (select balance from public.credit_balances where account_id = tests.account_id('t29-expiry')),
            tests.lots(tests.account_id('t29-expiry')) $$,
  $$ values (2, 15::bigint, 'p1=0,p2=15,p3=0') $$,
  'one expire entry per lot, once: balance back to 15');
select is(tests.wallet_invariant(tests.account_id('t29-expiry')), 'ok', 'invariants hold after the sweep');
select is(tests.wallet_invariant(tests.account_id('t29-order')), 'ok', 'the sweep left the order team''s unexpired lots alone');
select tests.authenticate_as('t29_member');
select throws_ok($$ select public.consume_credits(tests.account_id('t29-expiry'), 'api_call', 16) $$,
  'PT402', 'insufficient_credits', 'after the sweep, 16 credits are refused with 15 left');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Staff adjustments, debts and repayment
-- ---------------------------------------------------------------------------
select tests.freeze_time('2031-07-05 00:00:00+00');
select tests.authenticate_as('t29_debtor');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t29_debtor'), 1000, 'I deserve it') $$,
  '42501', 'permission denied', 'a user cannot adjust their own credits');
select tests.authenticate_as('t29_owner');
select throws_ok($$ select public.admin_adjust_credits(tests.account_id('t29-order'), 100, 'top up my team') $$,
  '42501', 'permission denied', 'a team owner cannot adjust their team''s credits');
select tests.authenticate_as('t29_member');
select throws_ok($$ select public.admin_adjust_credits(tests.account_id('t29-order'), -5, 'take it away') $$,
  '42501', 'permission denied', 'a member cannot adjust credits');
select tests.authenticate_as_anon();
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t29_debtor'), 5, 'anon gift') $$,
  '42501', 'permission denied for function admin_adjust_credits', 'anon cannot execute admin_adjust_credits');

select tests.authenticate_as('t29_staff');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t29_debtor'), 0, 'nothing') $$,
  '22023', 'invalid_input', 'a zero adjustment is invalid');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t29_debtor'), 5, ' x ') $$,
  '22023', 'invalid_input', 'a reason under 3 characters is invalid');
select is(public.admin_adjust_credits(tests.user_id('t29_debtor'), 25, 'goodwill for outage', 'adj-1'),
  '{"balance": 75, "available": 75}'::jsonb, 'a staff admin adds 25 credits: balance 75');
select is(public.admin_adjust_credits(tests.user_id('t29_debtor'), 25, 'goodwill for outage', 'adj-1'),
  '{"balance": 75, "available": 75}'::jsonb, 'repeating the same keyed adjustment does not add again');
select tests.clear_authentication();
select results_eq(
  $$ select g.source, g.amount, g.remaining, g.expires_at, l.reason, l.delta, l.actor_user_id, l.metadata ->> 'reason'
     from public.credit_grants g join public.credit_ledger l on l.grant_id = g.id
     where g.account_id = tests.user_id('t29_debtor') and g.source = 'admin' $$,
  $$ values ('admin', 25::bigint, 25::bigint, null::timestamptz, 'admin', 25::bigint, tests.user_id('t29_staff'), 'goodwill for outage') $$,
  'the addition is one never-expiring admin lot with one ledger entry naming the staff admin and the reason');

-- Taking back more than the balance leaves a debt.
select tests.authenticate_as('t29_staff');
select is(public.admin_adjust_credits(tests.user_id('t29_debtor'), -100, 'chargeback fraud', 'adj-2'),
  '{"balance": -25, "available": -25}'::jsonb, 'removing 100 of 75 credits leaves balance and available at -25');
select is(public.admin_adjust_credits(tests.user_id('t29_debtor'), -100, 'chargeback fraud', 'adj-2'),
  '{"balance": -25, "available": -25}'::jsonb, 'repeating the keyed removal does not remove again');
select tests.clear_authentication();
select is(tests.lots(tests.user_id('t29_debtor')), 'admin:adj-1=0,clawback=-25,signup_bonus=0',
  'every lot is drawn to 0 and the rest is one debt lot of -25');
select is(tests.wallet_invariant(tests.user_id('t29_debtor')), 'ok', 'invariants hold in debt (the debt lot counts)');
select tests.authenticate_as('t29_debtor');
select is(
  tests.caught($$ select public.consume_credits(tests.user_id('t29_debtor'), 'api_call') $$) - 'hint',
  jsonb_build_object('code', 'PT402', 'message', 'insufficient_credits', 'detail', '{"required": 1, "available": -25}'),
  'a user in debt cannot consume (PT402, available -25)');
select tests.authenticate_as_service_role();
select is(public.admin_adjust_credits(tests.user_id('t29_debtor'), 10, 'partial goodwill'),
  '{"balance": -15, "available": -15}'::jsonb, 'service_role may adjust too: +10 repays part of the debt');
select tests.clear_authentication();
select is(tests.lots(tests.user_id('t29_debtor')), 'admin=0,admin:adj-1=0,clawback=-15,signup_bonus=0',
  'the new lot went entirely to the debt');
select lives_ok($$ select private.grant_credits(tests.user_id('t29_debtor'), 40, 'purchase', null, 'buy-40') $$,
  'the debtor buys 40 credits');
select results_eq(
  $$ select balance, available, tests.lots(tests.user_id('t29_debtor')) from public.credit_balances
     where account_id = tests.user_id('t29_debtor') $$,
  $$ values (25::bigint, 25::bigint, 'admin=0,admin:adj-1=0,buy-40=25,clawback=0,signup_bonus=0') $$,
  'the purchase repays the debt lot first (15) and keeps 25');
select tests.authenticate_as('t29_debtor');
select is((public.consume_credits(tests.user_id('t29_debtor'), 'api_call', 5) ->> 'balance')::int, 20,
  'once the debt is repaid the user consumes again');
select tests.clear_authentication();
select is(tests.wallet_invariant(tests.user_id('t29_debtor')), 'ok', 'invariants hold after repayment');

-- A key names one adjustment: reusing it for a different one is an idempotency_conflict (docs/errors.md#stable-codes),
-- never a silent no-op nor a unique-violation error.
select tests.authenticate_as('t29_staff');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t29_debtor'), 500, 'goodwill for outage', 'adj-1') $$,
  'PT409', 'idempotency_conflict', 'the key of a +25 adjustment reused for +500: idempotency_conflict');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t29_debtor'), 10, 'chargeback fraud', 'adj-2') $$,
  'PT409', 'idempotency_conflict', 'the key of a removal reused for an addition: idempotency_conflict');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Low balance: signalled once when available falls below 20, cleared when it rises
-- ---------------------------------------------------------------------------
create table tests.low_balance_calls (account_id uuid, available bigint);
create or replace function private.on_low_balance(account_id uuid, available bigint)
returns void language sql set search_path = '' as $$
  insert into tests.low_balance_calls values (on_low_balance.account_id, on_low_balance.available)
$$;
select is(private.low_balance_threshold(), 20::bigint, 'the low_balance_threshold setting is 20');
select tests.freeze_time('2031-07-06 08:00:00+00');
select tests.authenticate_as('t29_saver');
select lives_ok($$ select public.consume_credits(tests.user_id('t29_saver'), 'text_to_thumbnail', 3) $$,
  'the saver spends 30 of 50: 20 available, not below the threshold');
select tests.clear_authentication();
select results_eq(
  $$ select (select low_balance_since from public.credit_balances where account_id = tests.user_id('t29_saver')),
            (select count(*)::int from tests.low_balance_calls) $$,
  $$ values (null::timestamptz, 0) $$,
  'at exactly the threshold nothing is signalled');
select tests.authenticate_as('t29_saver');
select lives_ok($$ select public.consume_credits(tests.user_id('t29_saver'), 'api_call') $$, 'the saver spends 1 more: 19');
select tests.freeze_time('2031-07-06 09:00:00+00');
select lives_ok($$ select public.consume_credits(tests.user_id('t29_saver'), 'api_call') $$, 'and 1 more an hour later: 18');
select tests.clear_authentication();
select results_eq(
  $$ select (select low_balance_since from public.credit_balances where account_id = tests.user_id('t29_saver')),
            (select array_agg(available) from tests.low_balance_calls where account_id = tests.user_id('t29_saver')) $$,
  $$ values ('2031-07-06 08:00:00+00'::timestamptz, '{19}'::bigint[]) $$,
  'falling below 20 sets low_balance_since (the time it fell) and calls the seam once, with 19');
select lives_ok($$ select private.grant_credits(tests.user_id('t29_saver'), 10, 'promo') $$, 'a grant lifts the saver to 28');
select is((select low_balance_since from public.credit_balances where account_id = tests.user_id('t29_saver')), null,
  'rising above the threshold clears low_balance_since');
select tests.authenticate_as('t29_saver');
select lives_ok($$ select public.consume_credits(tests.user_id('t29_saver'), 'text_to_thumbnail') $$, 'spending 10 drops it to 18 again');
select tests.clear_authentication();
select results_eq(
  $$ select (select low_balance_since from public.credit_balances where account_id = tests.user_id('t29_saver')),
            (select array_agg(available order by available desc) from tests.low_balance_calls where account_id = tests.user_id('t29_saver')) $$,
  $$ values ('2031-07-06 09:00:00+00'::timestamptz, '{19,18}'::bigint[]) $$,
  'falling again signals again');

select * from finish();
rollback;
