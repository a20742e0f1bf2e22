-- The wallet and consume_credits (docs/credits.md, docs/rpc.md#credits, docs/errors.md#stable-codes): signup bonus, team wallets,
-- pricing, the result and its records, who may spend, argument checks, insufficient
-- credits, idempotency; and deleting a user who has usage. Lots (draw-down order, expiry,
-- staff adjustments with debts, the low-balance signal) are 29_credits_lots. After the steps that change
-- a wallet the kit's invariant is checked (tests.wallet_invariant): balance = sum of ledger
-- deltas = sum of unexpired remaining (debt lot included) = the last balance_after,
-- available = balance - held.
--
-- World (the kit's named fixtures): team "t21-team" (tests.team) with t21_owner, t21_admin,
-- t21_member (who spends) and t21_viewer (who may not); t21_stranger; t21_staff, a staff admin.
-- The team is funded with 100 purchased credits by the runner (private.grant_credits).
-- The free plan's limits are emptied (no seed quotas) so only the wallet is under test.
begin;
select plan(66);

select tests.freeze_time('2031-05-10 12:00:00+00');
update public.plans set limits = '{}' where key = 'free';

select tests.create_users('t21_owner', 't21_admin', 't21_member', 't21_viewer', 't21_stranger', 't21_staff');
select tests.make_staff_admin('t21_staff');

-- The team, made by its owner through create_team_account (tests.team): an empty wallet.
select tests.team('t21-team', owner => 't21_owner', admins => '{t21_admin}', members => '{t21_member}', viewers => '{t21_viewer}', name => 'Wallet Co');


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
select is(tests.wallet_invariant(tests.user_id('t21_member')), 'ok', 'invariants hold for a fresh personal wallet');

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
select is(tests.wallet_invariant(tests.account_id('t21-team')), 'ok', 'the team''s empty wallet is consistent');

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
select is(tests.wallet_invariant(tests.account_id('t21-team')), 'ok', 'invariants hold after consuming');
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
select is(tests.wallet_invariant(tests.account_id('t21-team')), 'ok', 'invariants hold on the emptied wallet');

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
select is(tests.wallet_invariant(tests.user_id('t21_member')), 'ok', 'invariants hold on the member''s personal wallet');

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
