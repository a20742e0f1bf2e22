-- Auto top-up, the SQL rules (docs/billing.md#auto-top-up). The Stripe side (charges,
-- webhooks) is proved by the Deno story auto_topup_test.ts; here: who may read and change
-- the settings, one pending charge per account, failures that count and turn it off.
-- (The account's own threshold: 55_auto_topup_threshold.)
--
-- World: team "topup-team" (tests.team) whose owner (billing.manage) turns auto top-up on and
-- is told of failures; its viewer (billing.read) reads the settings and may not change them;
-- a stranger sees nothing.
begin;
select plan(16);

select tests.create_users('owner', 'viewer', 'stranger');
select tests.team('topup-team', owner => 'owner', viewers => '{viewer}', name => 'Topup team');
-- 100 credits on the wallet, above the threshold: turning auto top-up on charges nothing yet.
select tests.fund_wallet(tests.account_id('topup-team'), 100);
insert into public.credit_packs (key, name, credits, price_cents) values ('topup_pack', '100 credits', 100, 500);

-- ---------------------------------------------------------------------------
-- Settings: billing.manage writes, billing.read reads
-- ---------------------------------------------------------------------------
select tests.authenticate_as('owner');
select is((public.set_auto_topup(tests.account_id('topup-team'), true, 50, 'topup_pack')).monthly_limit, 4,
  'the owner turns auto top-up on; monthly_limit defaults to 4');
select tests.clear_authentication();

select is(tests.rls_probe('viewer', $$ select count(*) from public.auto_topup_settings where account_id = tests.account_id('topup-team') $$),
  'allow', 'a viewer (billing.read) reads the settings');
select is(tests.rls_probe('stranger', $$ select count(*) from public.auto_topup_settings where account_id = tests.account_id('topup-team') $$),
  'deny', 'a stranger reads nothing');
select is(tests.rls_probe('owner', $$ update public.auto_topup_settings set threshold = 1 $$),
  'deny', 'nobody writes the settings directly, not even the owner');
select is(tests.rls_probe('anon', $$ select count(*) from public.auto_topup_attempts $$), 'deny', 'anon reads no attempts');
select tests.authenticate_as('viewer');
select is(tests.caught($$ select public.set_auto_topup(tests.account_id('topup-team'), false, 50, 'topup_pack') $$) ->> 'code',
  '42501', 'billing.read alone cannot change them');
select tests.authenticate_as('owner');
select is(tests.caught($$ select public.set_auto_topup(tests.account_id('topup-team'), true, 50, 'topup_pack', 0) $$) ->> 'message',
  'invalid_input', 'a monthly limit of 0 is refused');
select is(tests.caught($$ select public.set_auto_topup(tests.account_id('topup-team'), true, 50, 'no_such_pack') $$) ->> 'message',
  'invalid_input', 'an unknown pack is refused');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- One pending charge; failures count and three turn it off
-- ---------------------------------------------------------------------------
select isnt(private.start_auto_topup(tests.account_id('topup-team'), 10), null, 'below the threshold: a charge is queued');
select is(private.start_auto_topup(tests.account_id('topup-team'), 10), null, 'a second crossing while it is pending queues nothing');
select is(private.start_auto_topup(tests.account_id('topup-team'), 60), null, 'above the threshold: nothing');
select is((select count(*)::int from private.jobs where kind = 'credits.auto_topup'
           and payload ->> 'attempt_id' in (select id::text from public.auto_topup_attempts where account_id = tests.account_id('topup-team'))),
  1, 'one job for the one attempt');

select private.auto_topup_failed((select id from public.auto_topup_attempts where account_id = tests.account_id('topup-team') and status = 'pending'),
  'card_declined', 'Your card was declined.');
select private.auto_topup_failed((select id from public.auto_topup_attempts where account_id = tests.account_id('topup-team') and status = 'failed' limit 1),
  'card_declined', 'a repeated report');
select is((select consecutive_failures from public.auto_topup_settings where account_id = tests.account_id('topup-team')), 1,
  'a failure counts once, however often it is reported');
select private.start_auto_topup(tests.account_id('topup-team'), 10);
select private.auto_topup_failed((select id from public.auto_topup_attempts where account_id = tests.account_id('topup-team') and status = 'pending'),
  'insufficient_funds', 'Your card has insufficient funds.');
select private.start_auto_topup(tests.account_id('topup-team'), 10);
select private.auto_topup_failed((select id from public.auto_topup_attempts where account_id = tests.account_id('topup-team') and status = 'pending'),
  'requires_action', 'The payment needs the customer.');
select is((select (enabled, consecutive_failures, disabled_reason like 'turned off after 3 failed charges in a row%')::text
           from public.auto_topup_settings where account_id = tests.account_id('topup-team')),
  '(f,3,t)', 'three failures in a row turn auto top-up off with the reason');
select is((select count(*)::int from public.notifications where user_id = tests.user_id('owner')
           and data ->> 'kind' = 'auto_topup_failed'), 3, 'the owner (billing.manage) was told each time');
select is((select count(*)::int from public.notifications where user_id = tests.user_id('viewer')
           and data ->> 'kind' = 'auto_topup_failed'), 0, 'the viewer was not');

select * from finish();
rollback;
