-- The wallet and consume_credits (docs/credits.md, docs/rpc.md#credits, docs/errors.md#stable-codes): signup bonus, team wallets,
-- pricing, the result and its records, who may spend, argument checks, insufficient
-- credits, idempotency; then lots: draw-down order, expiry, staff adjustments with debts,
-- the low-balance signal; and deleting a user who has usage. After the steps that change
-- a wallet the invariants are checked (tests.wallet_check): balance = sum of ledger deltas
-- = sum of unexpired remaining (debt lot included), available = balance - held.
--
-- World (the kit's named fixtures): team "t21-team" (tests.team) with t21_owner, t21_admin,
-- t21_member (who spends) and t21_viewer (who may not); t21_stranger; t21_staff, a staff admin.
-- The team is funded with 100 purchased credits by the runner (private.grant_credits).
-- The free plan's limits are emptied (no seed quotas) so only the wallet is under test.
begin;
select plan(130);

select tests.freeze_time('2031-05-10 12:00:00+00');
update public.plans set limits = '{}' where key = 'free';

select tests.create_users('t21_owner', 't21_admin', 't21_member', 't21_viewer', 't21_stranger', 't21_staff');
select tests.make_staff_admin('t21_staff');

-- The team, made by its owner through create_team_account (tests.team): an empty wallet.
select tests.team('t21-team', owner => 't21_owner', admins => '{t21_admin}', members => '{t21_member}', viewers => '{t21_viewer}', name => 'Wallet Co');

-- wallet_check(account): the kit's wallet invariant (tests.wallet_invariant: balance = sum of
-- ledger deltas = sum of unexpired remaining, debt lot included; available = balance - held,
-- held >= 0), and the last ledger entry's balance_after is the balance; otherwise the numbers.
create function tests.wallet_check(acc uuid) returns text
language sql stable security definer set search_path = '' as $$
  select case when tests.wallet_invariant(acc) <> 'ok' then tests.wallet_invariant(acc)
              when w.balance = coalesce(l.last_after, 0) then 'ok'
              else format('balance %s last balance_after %s', w.balance, l.last_after) end
  from public.credit_balances w,
       lateral (select (select x.balance_after from public.credit_ledger x where x.account_id = acc order by x.id desc limit 1) as last_after) l
  where w.account_id = acc
$$;
grant execute on function tests.wallet_check(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Signup bonus and team wallets
-- ---------------------------------------------------------------------------
-- A new user's personal account (id = user id) holds 50 credits from a never-expiring signup_bonus lot.
select results_eq(
  $$ select balance, held, available from public.credit_balances where account_id = tests.user_id('t21_member') $$,
  $$ values (50::bigint, 0::bigint, 50::bigint) $$,
  'a new user''s personal wallet holds the 50-credit signup bonus, nothing held');
select results_eq(
  $$ select source, amount, remaining, expires_at, idempotency_key from public.credit_grants where account_id = tests.user_id('t21_member') $$,
  $$ values ('signup_bonus', 50::bigint, 50::bigint, null::timestamptz, 'signup_bonus') $$,
  'the bonus is one signup_bonus lot that never expires (signup_bonus_expires_after is null)');
select results_eq(
  $$ select delta, balance_after, available_after, reason, actor_role from public.credit_ledger where account_id = tests.user_id('t21_member') $$,
  $$ values (50::bigint, 50::bigint, 50::bigint, 'signup_bonus', 'system') $$,
  'the bonus has its ledger entry');
select is(
  (select count(*)::int from public.credit_balances w join public.credit_grants g using (account_id)
   where w.account_id in (tests.user_id('t21_owner'), tests.user_id('t21_stranger'), tests.user_id('t21_staff'))
     and w.balance = 50 and g.source = 'signup_bonus'),
  3, 'every new user gets the bonus, once');
-- An anonymous sign-up (auth.users.is_anonymous) gets its wallet but no bonus: throw-away
-- sessions must not mint credits.
select tests.create_anonymous_user('t21_anonymous');
select results_eq(
  $$ select w.balance, w.held, w.available,
            (select count(*)::int from public.credit_grants g where g.account_id = w.account_id),
            (select count(*)::int from public.credit_ledger l where l.account_id = w.account_id)
     from public.credit_balances w where w.account_id = tests.user_id('t21_anonymous') $$,
  $$ values (0::bigint, 0::bigint, 0::bigint, 0, 0) $$,
  'an anonymous sign-up gets a personal wallet with 0 credits: no signup bonus lot, no ledger entry');
select is(tests.wallet_check(tests.user_id('t21_member')), 'ok', 'invariants hold for a fresh personal wallet');

-- A team made through the RPC gets a wallet with 0 and no bonus.
select tests.authenticate_as('t21_owner');
select lives_ok($$ select public.create_team_account('RPC Team', 't21-rpc') $$, 'the owner creates a second team through the RPC');
select tests.clear_authentication();
select results_eq(
  $$ select w.balance, w.held, w.available, (select count(*)::int from public.credit_grants g where g.account_id = a.id),
            (select count(*)::int from public.credit_ledger l where l.account_id = a.id)
     from public.accounts a join public.credit_balances w on w.account_id = a.id where a.slug = 't21-rpc' $$,
  $$ values (0::bigint, 0::bigint, 0::bigint, 0, 0) $$,
  'a team account gets a wallet with 0 credits, no bonus lot and no ledger entry');
select is(tests.wallet_check(tests.account_id('t21-team')), 'ok', 'the team''s empty wallet is consistent');

-- Fund the team: 100 purchased credits, never expiring.
select lives_ok($$ select private.grant_credits(tests.account_id('t21-team'), 100, 'purchase') $$,
  'the runner grants the team 100 purchased credits');

-- ---------------------------------------------------------------------------
-- consume_credits: the charge, the result, the records
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t21_member');
select is(
  public.consume_credits(tests.account_id('t21-team'), 'ai_tokens', 1500, 't21-tokens',
                         '{"model": "gpt-x", "tokens": 1500, "output_url": "https://cdn.test/x.png"}') - 'usage_event_id',
  '{"credits_charged": 2, "balance": 98, "available": 98, "replayed": false}'::jsonb,
  'a member consumes 1500 ai_tokens: ceil(1500 × 1 / 1000) = 2 credits charged, 98 left');
select is(
  (select array_agg(k order by k) from jsonb_object_keys(public.consume_credits(tests.account_id('t21-team'), 'text_to_thumbnail', 3)) k),
  '{available,balance,credits_charged,replayed,usage_event_id}'::text[],
  'the result has exactly usage_event_id, credits_charged, balance, available, replayed');
select results_eq(
  $$ select user_id, action, quantity, credits_charged, idempotency_key, metadata
     from public.usage_events where account_id = tests.account_id('t21-team') order by created_at, credits_charged $$,
  $$ values (tests.user_id('t21_member'), 'ai_tokens', 1500, 2::bigint, 't21-tokens',
             '{"model": "gpt-x", "tokens": 1500, "output_url": "https://cdn.test/x.png"}'::jsonb),
            (tests.user_id('t21_member'), 'text_to_thumbnail', 3, 30::bigint, null, '{}'::jsonb) $$,
  'each consumption is a usage_events row with the user, action, quantity, charge, key and metadata (visible to the member)');
select tests.clear_authentication();
select results_eq(
  $$ select l.delta, l.balance_after, l.available_after, l.reason, l.actor_user_id, l.actor_role
     from public.credit_ledger l join public.usage_events e on e.id = l.usage_event_id
     where l.account_id = tests.account_id('t21-team') order by l.id $$,
  $$ values (-2::bigint, 98::bigint, 98::bigint, 'consume', tests.user_id('t21_member'), 'authenticated'),
            (-30::bigint, 68::bigint, 68::bigint, 'consume', tests.user_id('t21_member'), 'authenticated') $$,
  'each charge is a consume ledger entry linked to its usage event, with balance_after and the acting user');
select is(tests.wallet_check(tests.account_id('t21-team')), 'ok', 'invariants hold after consuming');
select is((select remaining from public.credit_grants where account_id = tests.account_id('t21-team')), 68::bigint,
  'the purchased lot was drawn down to 68');

-- Rounding: ceil, never floor; a partial unit costs a whole credit.
select tests.authenticate_as('t21_admin');
select is((public.consume_credits(tests.account_id('t21-team'), 'ai_tokens', 1) ->> 'credits_charged')::int, 1,
  'an admin consumes 1 token: charged 1 credit (rounded up)');
select is((public.consume_credits(tests.account_id('t21-team'), 'ai_tokens', 2000) ->> 'credits_charged')::int, 2,
  '2000 tokens cost exactly 2');
select tests.authenticate_as('t21_owner');
select is(public.consume_credits(account_id => tests.account_id('t21-team'), action => 'api_call') - 'usage_event_id',
  '{"credits_charged": 1, "balance": 64, "available": 64, "replayed": false}'::jsonb,
  'the owner consumes one api_call with named arguments and defaults (quantity 1)');

-- A free action (credits 0) records usage and charges nothing: no ledger entry.
select tests.clear_authentication();
insert into public.billable_actions (key, name, category, credits, unit_size) values ('t21_free_action', 'Free', 't21', 0, 1);
insert into public.billable_actions (key, name, category, credits, unit_size, active) values ('t21_retired', 'Retired', 't21', 1, 1, false);
select tests.authenticate_as('t21_member');
select is(public.consume_credits(tests.account_id('t21-team'), 't21_free_action', 5, 't21-free') - 'usage_event_id',
  '{"credits_charged": 0, "balance": 64, "available": 64, "replayed": false}'::jsonb,
  'a zero-cost action charges 0');
select tests.clear_authentication();
select results_eq(
  $$ select (select count(*)::int from public.usage_events where idempotency_key = 't21-free'),
            (select count(*)::int from public.credit_ledger l join public.usage_events e on e.id = l.usage_event_id where e.idempotency_key = 't21-free') $$,
  $$ values (1, 0) $$,
  'its usage is recorded, with no ledger entry (the ledger has no zero deltas)');

-- ---------------------------------------------------------------------------
-- Who may consume
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t21_viewer');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call') $$,
  '42501', 'permission denied', 'a viewer (credits.read only) cannot consume the team''s credits');
select lives_ok($$ select public.consume_credits(tests.user_id('t21_viewer'), 'api_call') $$,
  'the viewer consumes from their own personal wallet');
select tests.authenticate_as('t21_stranger');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call') $$,
  '42501', 'permission denied', 'a stranger cannot consume a team''s credits');
select throws_ok($$ select public.consume_credits(tests.user_id('t21_member'), 'api_call') $$,
  '42501', 'permission denied', 'a stranger cannot consume another user''s personal credits');
select tests.authenticate_as('t21_staff');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call') $$,
  '42501', 'permission denied', 'a staff admin does not spend customers'' credits through consume_credits');
select tests.authenticate_as_anon();
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call') $$,
  '42501', 'permission denied for function consume_credits', 'anon cannot execute consume_credits');
select tests.clear_authentication();
select results_eq(
  $$ select balance, (select count(*)::int from public.usage_events where account_id = tests.account_id('t21-team'))
     from public.credit_balances where account_id = tests.account_id('t21-team') $$,
  $$ values (64::bigint, 6) $$,
  'the refused callers changed nothing on the team wallet');

-- A server (service_role, e.g. the usage function) needs no membership, only an existing wallet.
select tests.authenticate_as_service_role();
select is(public.consume_credits(tests.account_id('t21-team'), 'api_call', 4) - 'usage_event_id',
  '{"credits_charged": 4, "balance": 60, "available": 60, "replayed": false}'::jsonb,
  'service_role consumes for the team');
select throws_ok($$ select public.consume_credits(gen_random_uuid(), 'api_call') $$,
  'PT404', 'not_found', 'service_role gets not_found for an account without a wallet');
select tests.clear_authentication();
select results_eq(
  $$ select e.user_id, l.actor_role, l.actor_user_id from public.usage_events e join public.credit_ledger l on l.usage_event_id = e.id
     where e.account_id = tests.account_id('t21-team') and e.quantity = 4 $$,
  $$ values (null::uuid, 'service_role', null::uuid) $$,
  'a server''s consumption records no user and service_role as the actor');

-- ---------------------------------------------------------------------------
-- Bad arguments and unknown actions
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t21_member');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'no_such_action') $$,
  'PT404', 'not_found', 'an unknown action is not_found');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 't21_retired') $$,
  'PT404', 'not_found', 'an inactive action is not_found');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', 0) $$,
  '22023', 'invalid_input', 'quantity 0 is invalid_input');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', -5) $$,
  '22023', 'invalid_input', 'a negative quantity is invalid_input');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', null) $$,
  '22023', 'invalid_input', 'a null quantity is invalid_input');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', 1, null, '["not", "an", "object"]') $$,
  '22023', 'invalid_input', 'array metadata is invalid_input');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', 1, null, '"text"') $$,
  '22023', 'invalid_input', 'scalar metadata is invalid_input');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', 1, null, null) $$,
  '22023', 'invalid_input', 'null metadata is invalid_input');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', 1, '') $$,
  '22023', 'invalid_input', 'an empty idempotency key is invalid_input');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', 1, repeat('k', 256)) $$,
  '22023', 'invalid_input', 'an idempotency key over 255 characters is invalid_input');

-- ---------------------------------------------------------------------------
-- Insufficient credits: PT402 with {required, available}, nothing changes
-- ---------------------------------------------------------------------------
select tests.clear_authentication();
create temp table t21_before on commit drop as
  select (select balance from public.credit_balances where account_id = tests.account_id('t21-team')) as balance,
         (select count(*) from public.credit_ledger where account_id = tests.account_id('t21-team')) as ledger,
         (select count(*) from public.usage_events where account_id = tests.account_id('t21-team')) as usage,
         (select array_agg(remaining order by id) from public.credit_grants where account_id = tests.account_id('t21-team')) as lots;
select tests.authenticate_as('t21_member');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'youtube_thumbnail', 4, 't21-big') $$,
  'PT402', 'insufficient_credits', '4 YouTube thumbnails (80) with 60 available: insufficient_credits');
select is(
  (tests.caught($$ select public.consume_credits(tests.account_id('t21-team'), 'youtube_thumbnail', 4) $$) ->> 'detail')::jsonb,
  '{"required": 80, "available": 60}'::jsonb,
  'the detail is the JSON {required, available}');
select ok(
  (tests.caught($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', 61) $$) ->> 'detail')::jsonb
    = '{"required": 61, "available": 60}'::jsonb,
  'one credit short is refused too (no overdraft by one)');
select tests.clear_authentication();
select results_eq(
  $$ select (select balance from public.credit_balances where account_id = tests.account_id('t21-team')),
            (select count(*) from public.credit_ledger where account_id = tests.account_id('t21-team')),
            (select count(*) from public.usage_events where account_id = tests.account_id('t21-team')),
            (select array_agg(remaining order by id) from public.credit_grants where account_id = tests.account_id('t21-team')) $$,
  $$ select balance, ledger, usage, lots from t21_before $$,
  'a refused consumption changes neither balance, lots, ledger nor usage_events');
select is((select count(*)::int from public.usage_events where idempotency_key = 't21-big'), 0,
  'the refused call did not keep its idempotency key: a retry after buying credits is a fresh call');
select tests.authenticate_as('t21_member');
select is((public.consume_credits(tests.account_id('t21-team'), 'youtube_thumbnail', 3, 't21-big') ->> 'credits_charged')::int, 60,
  'exactly the available credits can be spent (60 of 60)');
select is(
  (select balance::text || '/' || available from public.credit_balances where account_id = tests.account_id('t21-team')),
  '0/0', 'the team wallet is empty, not negative');
select throws_ok($$ select public.consume_credits(tests.account_id('t21-team'), 'api_call') $$,
  'PT402', 'insufficient_credits', 'an empty wallet refuses even 1 credit');
select lives_ok($$ select public.consume_credits(tests.account_id('t21-team'), 't21_free_action') $$,
  'a zero-cost action still works on an empty wallet');
select tests.clear_authentication();
select is(tests.wallet_check(tests.account_id('t21-team')), 'ok', 'invariants hold on the emptied wallet');

-- ---------------------------------------------------------------------------
-- Idempotency
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t21_member');
-- The first call with key t21-tokens charged 2 (balance 98 after it). A retry replays it.
select is(
  public.consume_credits(tests.account_id('t21-team'), 'ai_tokens', 1500, 't21-tokens',
                         '{"output_url": "https://cdn.test/x.png", "tokens": 1500, "model": "gpt-x"}'),
  jsonb_build_object('usage_event_id', (select id from public.usage_events where idempotency_key = 't21-tokens'),
                     'credits_charged', 2, 'balance', 98, 'available', 98, 'replayed', true),
  'same key and parameters (metadata keys in another order): the original result with replayed = true');
select throws_ok(
  $$ select public.consume_credits(tests.account_id('t21-team'), 'ai_tokens', 1600, 't21-tokens',
                                   '{"model": "gpt-x", "tokens": 1500, "output_url": "https://cdn.test/x.png"}') $$,
  'PT409', 'idempotency_conflict', 'same key, other quantity: idempotency_conflict');
select throws_ok(
  $$ select public.consume_credits(tests.account_id('t21-team'), 'api_call', 1500, 't21-tokens',
                                   '{"model": "gpt-x", "tokens": 1500, "output_url": "https://cdn.test/x.png"}') $$,
  'PT409', 'idempotency_conflict', 'same key, other action: idempotency_conflict');
select throws_ok(
  $$ select public.consume_credits(tests.account_id('t21-team'), 'ai_tokens', 1500, 't21-tokens', '{"model": "other"}') $$,
  'PT409', 'idempotency_conflict', 'same key, other metadata: idempotency_conflict');
-- Replays need no credits: the wallet is empty now.
select tests.authenticate_as('t21_owner');
select is(
  (public.consume_credits(tests.account_id('t21-team'), 't21_free_action', 5, 't21-free') ->> 'replayed')::boolean, true,
  'another member of the account replays the same keyed call (keys are per account)');
select tests.clear_authentication();
select results_eq(
  $$ select (select count(*)::int from public.usage_events where idempotency_key = 't21-tokens'),
            (select count(*)::int from public.credit_ledger l join public.usage_events e on e.id = l.usage_event_id where e.idempotency_key = 't21-tokens'),
            (select balance from public.credit_balances where account_id = tests.account_id('t21-team')) $$,
  $$ values (1, 1, 0::bigint) $$,
  'replays and conflicts charged nothing: one usage event, one ledger entry');

-- Keys are per account: the same key on the member's personal wallet is a new call.
select tests.authenticate_as('t21_member');
select is(
  public.consume_credits(tests.user_id('t21_member'), 'api_call', 2, 't21-tokens') - 'usage_event_id',
  '{"credits_charged": 2, "balance": 48, "available": 48, "replayed": false}'::jsonb,
  'the same key on another account is independent');
select is(
  public.consume_credits(tests.user_id('t21_member'), 'api_call', 2, 't21-tokens') - 'usage_event_id',
  '{"credits_charged": 2, "balance": 48, "available": 48, "replayed": true}'::jsonb,
  'and replays there without a second charge');
select tests.clear_authentication();
select is(tests.wallet_check(tests.user_id('t21_member')), 'ok', 'invariants hold on the member''s personal wallet');

-- ---------------------------------------------------------------------------
-- Nobody changes a wallet but the credit functions
-- ---------------------------------------------------------------------------
select tests.authenticate_as('t21_owner');
select throws_ok($$ update public.credit_balances set balance = 1000000 where account_id = tests.account_id('t21-team') $$,
  '42501', 'permission denied for table credit_balances', 'the owner cannot top up the balance directly');
select throws_ok($$ insert into public.credit_grants (account_id, source, amount, remaining) values (tests.account_id('t21-team'), 'promo', 1000, 1000) $$,
  '42501', 'permission denied for view credit_grants', 'the owner cannot grant credits directly');
select throws_ok($$ select private.grant_credits(tests.account_id('t21-team'), 1000, 'promo') $$,
  '42501', 'permission denied for schema private', 'the owner cannot call the private grant function');
select tests.clear_authentication();
select is((select balance from public.credit_balances where account_id = tests.account_id('t21-team')), 0::bigint,
  'the team balance is still 0');

-- ===========================================================================
-- Lots: draw-down order, expiry, staff adjustments with debts, low-balance signal
-- ===========================================================================
-- World (time frozen at T0 = 2031-07-01 00:00 UTC):
--   team "order"   (owner + member) lots a..g set up by the runner, drawn down by the member
--   team "expiry"  (owner + member) lots that expire while in use
--   debtor         a user whose personal wallet a staff admin adjusts into debt and back
--   saver          a user whose personal wallet crosses the low-balance threshold (20)
select tests.freeze_time('2031-07-01 00:00:00+00');
select tests.create_users('t25_owner', 't25_member', 't25_stranger', 't25_staff', 't25_debtor', 't25_saver');
select tests.make_staff_admin('t25_staff');

select tests.team('t25-order', owner => 't25_owner', members => '{t25_member}', name => 'Order Co');
select tests.team('t25-expiry', owner => 't25_owner', members => '{t25_member}', name => 'Expiry Co');

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
select private.grant_credits(tests.account_id('t25-order'), 10, 'purchase', '2031-07-11 00:00+00', 'a');
select private.grant_credits(tests.account_id('t25-order'), 10, 'promo', '2031-07-21 00:00+00', 'b');
select private.grant_credits(tests.account_id('t25-order'), 10, 'purchase', '2031-07-21 00:00+00', 'c');
select private.grant_credits(tests.account_id('t25-order'), 10, 'subscription', null, 'd');
select private.grant_credits(tests.account_id('t25-order'), 10, 'admin', null, 'e');
select private.grant_credits(tests.account_id('t25-order'), 10, 'referral', '2031-07-21 00:00+00', 'f');
select private.grant_credits(tests.account_id('t25-order'), 10, 'signup_bonus', null, 'g');
-- (backdated in storage, as if granted over the past days; the wallet then reloads its first lot)
update ledger.lots g set created_at = now() - v.age
from (values ('a', interval '1 day'), ('b', '4 days'), ('c', '8 days'), ('d', '9 days'), ('e', '5 days'), ('f', '6 days'), ('g', '7 days')) v (k, age)
where g.account_id = tests.account_id('t25-order') and g.idempotency_key = v.k;
select private.settle_lot(tests.account_id('t25-order'));
select private.load_lot(tests.account_id('t25-order'));

select results_eq(
  $$ select balance, next_expiry_at from public.credit_balances where account_id = tests.account_id('t25-order') $$,
  $$ values (70::bigint, '2031-07-11 00:00+00'::timestamptz) $$,
  'seven lots: balance 70, next expiry is the soonest lot''s');

select tests.authenticate_as('t25_member');
select lives_ok($$ select public.consume_credits(tests.account_id('t25-order'), 'api_call', 5) $$, 'the member spends 5');
select is(tests.lots(tests.account_id('t25-order')), 'a=5,b=10,c=10,d=10,e=10,f=10,g=10',
  'the soonest-expiring lot (a, paid and newest) goes first');
select lives_ok($$ select public.consume_credits(tests.account_id('t25-order'), 'api_call', 10) $$, 'the member spends 10');
select is(tests.lots(tests.account_id('t25-order')), 'a=0,b=10,c=10,d=10,e=10,f=5,g=10',
  'a is used up and the draw continues into f: on the T0+20d tie, the oldest promotional lot');
select lives_ok($$ select public.consume_credits(tests.account_id('t25-order'), 'api_call', 10) $$, 'the member spends 10');
select is(tests.lots(tests.account_id('t25-order')), 'a=0,b=5,c=10,d=10,e=10,f=0,g=10',
  'then b, the younger promotional lot, before the older paid lot c');
select lives_ok($$ select public.consume_credits(tests.account_id('t25-order'), 'api_call', 10) $$, 'the member spends 10');
select is(tests.lots(tests.account_id('t25-order')), 'a=0,b=0,c=5,d=10,e=10,f=0,g=10',
  'then c, the paid lot of the tie');
select lives_ok($$ select public.consume_credits(tests.account_id('t25-order'), 'api_call', 20) $$, 'the member spends 20');
select is(tests.lots(tests.account_id('t25-order')), 'a=0,b=0,c=0,d=10,e=5,f=0,g=0',
  'then the never-expiring lots: promotional g (older) and e before paid d');
select lives_ok($$ select public.consume_credits(tests.account_id('t25-order'), 'api_call', 10) $$, 'the member spends 10');
select is(tests.lots(tests.account_id('t25-order')), 'a=0,b=0,c=0,d=5,e=0,f=0,g=0',
  'the paid never-expiring lot d comes last, although it is the oldest');
select tests.clear_authentication();
select is(tests.wallet_check(tests.account_id('t25-order')), 'ok', 'invariants hold after the draw-down');
select throws_ok($$ select private.grant_credits(tests.account_id('t25-order'), 10, 'promo', '2031-06-30 00:00+00') $$,
  '22023', 'invalid_input', 'a lot cannot be granted already expired');
select throws_ok($$ select private.grant_credits(tests.account_id('t25-order'), 0, 'promo') $$,
  '22023', 'invalid_input', 'a lot must hold credits');
select is(private.grant_credits(tests.account_id('t25-order'), 99, 'promo', null, 'a'),
  (select id from public.credit_grants where account_id = tests.account_id('t25-order') and idempotency_key = 'a'),
  'granting again with a used idempotency key returns the first lot and grants nothing');
select is((select balance from public.credit_balances where account_id = tests.account_id('t25-order')), 5::bigint,
  'the balance is still 5');

-- ---------------------------------------------------------------------------
-- Expiry: expired credits are never spent
-- ---------------------------------------------------------------------------
-- Lots p1: 30 promo expiring T0+1d, p2: 20 purchased, never expiring.
select private.grant_credits(tests.account_id('t25-expiry'), 30, 'promo', '2031-07-02 00:00+00', 'p1');
select private.grant_credits(tests.account_id('t25-expiry'), 20, 'purchase', null, 'p2');
select tests.authenticate_as('t25_member');
select is(public.consume_credits(tests.account_id('t25-expiry'), 'api_call', 10) - 'usage_event_id',
  '{"credits_charged": 10, "balance": 40, "available": 40, "replayed": false}'::jsonb,
  'before expiry the member spends 10 of 50, from the expiring lot');

-- The moment p1 expires, its 20 remaining credits stop counting.
select tests.freeze_time('2031-07-02 00:00:00+00');
select is(
  (tests.caught($$ select public.consume_credits(tests.account_id('t25-expiry'), 'api_call', 25) $$) ->> 'detail')::jsonb,
  '{"required": 25, "available": 20}'::jsonb,
  'at the expiry instant 25 credits are refused: only the 20 never-expiring credits are available');
select is(public.consume_credits(tests.account_id('t25-expiry'), 'api_call', 5) - 'usage_event_id',
  '{"credits_charged": 5, "balance": 15, "available": 15, "replayed": false}'::jsonb,
  'spending 5 after expiry leaves 15: the expired credits were not spent');
select tests.clear_authentication();
select results_eq(
  $$ select l.delta, l.balance_after, l.reason, g.idempotency_key
     from public.credit_ledger l left join public.credit_grants g on g.id = l.grant_id
     where l.account_id = tests.account_id('t25-expiry') order by l.id desc limit 2 $$,
  $$ values (-5::bigint, 15::bigint, 'consume', null::text), (-20::bigint, 20::bigint, 'expire', 'p1') $$,
  'the consumption first expired p1 inline (an expire entry of -20), then charged p2');
select is(tests.lots(tests.account_id('t25-expiry')), 'p1=0,p2=15', 'p1 is empty, p2 paid the 5');
select is(tests.wallet_check(tests.account_id('t25-expiry')), 'ok', 'invariants hold after inline expiry');
select is((select next_expiry_at from public.credit_balances where account_id = tests.account_id('t25-expiry')), null,
  'no expiring lot is left: next_expiry_at is cleared');

-- The sweep expires lots nobody touched; it is idempotent.
select private.grant_credits(tests.account_id('t25-expiry'), 10, 'promo', '2031-07-03 00:00+00', 'p3');
select tests.freeze_time('2031-07-03 06:00:00+00');
select tests.authenticate_as('t25_member');
select is((select balance from public.credit_balances where account_id = tests.account_id('t25-expiry')), 25::bigint,
  'before the sweep the stored balance still counts the lapsed p3 (25)');
select tests.clear_authentication();
select cmp_ok(private.expire_credit_grants(), '>=', 1, 'private.expire_credit_grants() expires p3');
select is(private.expire_credit_grants(), 0, 'running it again expires nothing');
select results_eq(
  $$ select (select count(*)::int from public.credit_ledger where account_id = tests.account_id('t25-expiry') and reason = 'expire'),
            (select balance from public.credit_balances where account_id = tests.account_id('t25-expiry')),
            tests.lots(tests.account_id('t25-expiry')) $$,
  $$ values (2, 15::bigint, 'p1=0,p2=15,p3=0') $$,
  'one expire entry per lot, once: balance back to 15');
select is(tests.wallet_check(tests.account_id('t25-expiry')), 'ok', 'invariants hold after the sweep');
select is(tests.wallet_check(tests.account_id('t25-order')), 'ok', 'the sweep left the order team''s unexpired lots alone');
select tests.authenticate_as('t25_member');
select throws_ok($$ select public.consume_credits(tests.account_id('t25-expiry'), 'api_call', 16) $$,
  'PT402', 'insufficient_credits', 'after the sweep, 16 credits are refused with 15 left');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Staff adjustments, debts and repayment
-- ---------------------------------------------------------------------------
select tests.freeze_time('2031-07-05 00:00:00+00');
select tests.authenticate_as('t25_debtor');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t25_debtor'), 1000, 'I deserve it') $$,
  '42501', 'permission denied', 'a user cannot adjust their own credits');
select tests.authenticate_as('t25_owner');
select throws_ok($$ select public.admin_adjust_credits(tests.account_id('t25-order'), 100, 'top up my team') $$,
  '42501', 'permission denied', 'a team owner cannot adjust their team''s credits');
select tests.authenticate_as('t25_member');
select throws_ok($$ select public.admin_adjust_credits(tests.account_id('t25-order'), -5, 'take it away') $$,
  '42501', 'permission denied', 'a member cannot adjust credits');
select tests.authenticate_as_anon();
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t25_debtor'), 5, 'anon gift') $$,
  '42501', 'permission denied for function admin_adjust_credits', 'anon cannot execute admin_adjust_credits');

select tests.authenticate_as('t25_staff');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t25_debtor'), 0, 'nothing') $$,
  '22023', 'invalid_input', 'a zero adjustment is invalid');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t25_debtor'), 5, ' x ') $$,
  '22023', 'invalid_input', 'a reason under 3 characters is invalid');
select is(public.admin_adjust_credits(tests.user_id('t25_debtor'), 25, 'goodwill for outage', 'adj-1'),
  '{"balance": 75, "available": 75}'::jsonb, 'a staff admin adds 25 credits: balance 75');
select is(public.admin_adjust_credits(tests.user_id('t25_debtor'), 25, 'goodwill for outage', 'adj-1'),
  '{"balance": 75, "available": 75}'::jsonb, 'repeating the same keyed adjustment does not add again');
select tests.clear_authentication();
select results_eq(
  $$ select g.source, g.amount, g.remaining, g.expires_at, l.reason, l.delta, l.actor_user_id, l.metadata ->> 'reason'
     from public.credit_grants g join public.credit_ledger l on l.grant_id = g.id
     where g.account_id = tests.user_id('t25_debtor') and g.source = 'admin' $$,
  $$ values ('admin', 25::bigint, 25::bigint, null::timestamptz, 'admin', 25::bigint, tests.user_id('t25_staff'), 'goodwill for outage') $$,
  'the addition is one never-expiring admin lot with one ledger entry naming the staff admin and the reason');

-- Taking back more than the balance leaves a debt.
select tests.authenticate_as('t25_staff');
select is(public.admin_adjust_credits(tests.user_id('t25_debtor'), -100, 'chargeback fraud', 'adj-2'),
  '{"balance": -25, "available": -25}'::jsonb, 'removing 100 of 75 credits leaves balance and available at -25');
select is(public.admin_adjust_credits(tests.user_id('t25_debtor'), -100, 'chargeback fraud', 'adj-2'),
  '{"balance": -25, "available": -25}'::jsonb, 'repeating the keyed removal does not remove again');
select tests.clear_authentication();
select is(tests.lots(tests.user_id('t25_debtor')), 'admin:adj-1=0,clawback=-25,signup_bonus=0',
  'every lot is drawn to 0 and the rest is one debt lot of -25');
select is(tests.wallet_check(tests.user_id('t25_debtor')), 'ok', 'invariants hold in debt (the debt lot counts)');
select tests.authenticate_as('t25_debtor');
select is(
  tests.caught($$ select public.consume_credits(tests.user_id('t25_debtor'), 'api_call') $$) - 'hint',
  jsonb_build_object('code', 'PT402', 'message', 'insufficient_credits', 'detail', '{"required": 1, "available": -25}'),
  'a user in debt cannot consume (PT402, available -25)');
select tests.authenticate_as_service_role();
select is(public.admin_adjust_credits(tests.user_id('t25_debtor'), 10, 'partial goodwill'),
  '{"balance": -15, "available": -15}'::jsonb, 'service_role may adjust too: +10 repays part of the debt');
select tests.clear_authentication();
select is(tests.lots(tests.user_id('t25_debtor')), 'admin=0,admin:adj-1=0,clawback=-15,signup_bonus=0',
  'the new lot went entirely to the debt');
select lives_ok($$ select private.grant_credits(tests.user_id('t25_debtor'), 40, 'purchase', null, 'buy-40') $$,
  'the debtor buys 40 credits');
select results_eq(
  $$ select balance, available, tests.lots(tests.user_id('t25_debtor')) from public.credit_balances
     where account_id = tests.user_id('t25_debtor') $$,
  $$ values (25::bigint, 25::bigint, 'admin=0,admin:adj-1=0,buy-40=25,clawback=0,signup_bonus=0') $$,
  'the purchase repays the debt lot first (15) and keeps 25');
select tests.authenticate_as('t25_debtor');
select is((public.consume_credits(tests.user_id('t25_debtor'), 'api_call', 5) ->> 'balance')::int, 20,
  'once the debt is repaid the user consumes again');
select tests.clear_authentication();
select is(tests.wallet_check(tests.user_id('t25_debtor')), 'ok', 'invariants hold after repayment');

-- A key names one adjustment: reusing it for a different one is an idempotency_conflict (docs/errors.md#stable-codes),
-- never a silent no-op nor a unique-violation error.
select tests.authenticate_as('t25_staff');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t25_debtor'), 500, 'goodwill for outage', 'adj-1') $$,
  'PT409', 'idempotency_conflict', 'the key of a +25 adjustment reused for +500: idempotency_conflict');
select throws_ok($$ select public.admin_adjust_credits(tests.user_id('t25_debtor'), 10, 'chargeback fraud', 'adj-2') $$,
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
select tests.authenticate_as('t25_saver');
select lives_ok($$ select public.consume_credits(tests.user_id('t25_saver'), 'text_to_thumbnail', 3) $$,
  'the saver spends 30 of 50: 20 available, not below the threshold');
select tests.clear_authentication();
select results_eq(
  $$ select (select low_balance_since from public.credit_balances where account_id = tests.user_id('t25_saver')),
            (select count(*)::int from tests.low_balance_calls) $$,
  $$ values (null::timestamptz, 0) $$,
  'at exactly the threshold nothing is signalled');
select tests.authenticate_as('t25_saver');
select lives_ok($$ select public.consume_credits(tests.user_id('t25_saver'), 'api_call') $$, 'the saver spends 1 more: 19');
select tests.freeze_time('2031-07-06 09:00:00+00');
select lives_ok($$ select public.consume_credits(tests.user_id('t25_saver'), 'api_call') $$, 'and 1 more an hour later: 18');
select tests.clear_authentication();
select results_eq(
  $$ select (select low_balance_since from public.credit_balances where account_id = tests.user_id('t25_saver')),
            (select array_agg(available) from tests.low_balance_calls where account_id = tests.user_id('t25_saver')) $$,
  $$ values ('2031-07-06 08:00:00+00'::timestamptz, '{19}'::bigint[]) $$,
  'falling below 20 sets low_balance_since (the time it fell) and calls the seam once, with 19');
select lives_ok($$ select private.grant_credits(tests.user_id('t25_saver'), 10, 'promo') $$, 'a grant lifts the saver to 28');
select is((select low_balance_since from public.credit_balances where account_id = tests.user_id('t25_saver')), null,
  'rising above the threshold clears low_balance_since');
select tests.authenticate_as('t25_saver');
select lives_ok($$ select public.consume_credits(tests.user_id('t25_saver'), 'text_to_thumbnail') $$, 'spending 10 drops it to 18 again');
select tests.clear_authentication();
select results_eq(
  $$ select (select low_balance_since from public.credit_balances where account_id = tests.user_id('t25_saver')),
            (select array_agg(available order by available desc) from tests.low_balance_calls where account_id = tests.user_id('t25_saver')) $$,
  $$ values ('2031-07-06 09:00:00+00'::timestamptz, '{19,18}'::bigint[]) $$,
  'falling again signals again');

-- ---------------------------------------------------------------------------
-- A user with usage history can still be deleted (usage_events.user_id is ON DELETE SET NULL)
-- ---------------------------------------------------------------------------
create temp table deleted_member on commit drop as select tests.user_id('t21_member') as id;
select lives_ok($$ delete from auth.users where id = tests.user_id('t21_member') $$,
  'the member, who consumed team credits, can be deleted');
select is(
  (select count(*)::int from public.usage_events where account_id = tests.account_id('t21-team') and user_id is null),
  (select count(*)::int from public.usage_events where account_id = tests.account_id('t21-team')
     and (user_id is null or user_id = (select id from deleted_member))),
  'the team keeps the deleted member''s usage, without the user id');

select * from finish();
rollback;
