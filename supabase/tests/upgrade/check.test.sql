-- Upgrade test, stage 2: after the new migrations, every wallet reads as before, every
-- invariant holds, and the rules still see the old state (quota counters, debts, holds,
-- idempotency keys). Runs after supabase/tests/upgrade/fill.sql and the upgrade.
begin;
select plan(23);
set local ledgerbase.now = '2026-12-01 10:00:00+00';

create temp view after_state as
select 'wallet' as what, w.account_id::text as id,
       jsonb_build_object('balance', w.balance, 'held', w.held, 'available', w.available) as state
from public.credit_balances w where w.account_id::text like '0000000a-%'
union all
select 'lot', g.id::text, jsonb_build_object('account', g.account_id, 'source', g.source, 'amount', g.amount,
                                             'remaining', g.remaining, 'expires_at', g.expires_at)
from public.credit_grants g where g.account_id::text like '0000000a-%'
union all
select 'hold', h.id::text, jsonb_build_object('amount', h.amount, 'status', h.status, 'expires_at', h.expires_at,
                                              'credits_charged', h.credits_charged)
from public.credit_holds h where h.account_id::text like '0000000a-%'
union all
select 'ledger', l.id::text, jsonb_build_object('account', l.account_id, 'delta', l.delta, 'balance_after', l.balance_after,
                                                'reason', l.reason)
from public.credit_ledger l where l.account_id::text like '0000000a-%'
union all
select 'usage', e.id::text, jsonb_build_object('account', e.account_id, 'action', e.action, 'quantity', e.quantity,
                                               'credits_charged', e.credits_charged, 'idempotency_key', e.idempotency_key,
                                               'metadata', e.metadata)
from public.usage_events e where e.account_id::text like '0000000a-%'
union all
select 'payment', p.id::text, jsonb_build_object('account', p.account_id, 'status', p.status, 'settlement', p.settlement,
                                                 'amount', p.amount, 'credits_granted', p.credits_granted, 'paid_at', p.paid_at)
from public.payments p where p.account_id::text like '0000000a-%';

select is((select count(*) from upgrade_check.before where what = 'wallet'), 6::bigint, 'the six wallets were filled before');
select is((select (state ->> 'balance')::int from upgrade_check.before where what = 'wallet' and id = '0000000a-0000-4000-8000-000000000001'), 215,
  'before the upgrade the lot that expired at 09:00 was still counted (never swept)');
select set_eq($$ select what, id, state from after_state $$, $$ select what, id, state from upgrade_check.before $$,
  'every wallet, lot, hold, ledger entry and usage event reads exactly as before the upgrade');

-- The invariants, once the expiry job has run (the lot that expired an hour ago is still
-- counted until then, as before the upgrade).
select ok(private.expire_credit_grants() >= 1, 'the expiry job expires the lot that lapsed before the upgrade');
select is(
  (select count(*) from public.credit_balances w
   where w.account_id::text like '0000000a-%'
     and (w.balance <> (select coalesce(sum(l.delta), 0) from public.credit_ledger l where l.account_id = w.account_id)
          or w.balance <> (select coalesce(sum(g.remaining), 0) from public.credit_grants g
                           where g.account_id = w.account_id and (g.expires_at is null or g.expires_at > private.now()))
          or w.held <> (select coalesce(sum(h.amount), 0) from public.credit_holds h where h.account_id = w.account_id and h.status = 'held')
          or w.available <> w.balance - w.held)),
  0::bigint, 'balance = sum of the ledger = sum of unexpired lots; held = open holds; available = balance - held');
select is((select balance from public.credit_balances where account_id = '0000000a-0000-4000-8000-000000000001'), 175::bigint,
  'the wallet with expiring lots lost only the 40 that expired: 50 + 100 + 25');

-- Usage analytics: the usage events written before the upgrade keep their writer, so the
-- next fold puts them into the hourly rollup, each once (nothing written since: it alone
-- must match).
select private.fold_usage_events();
select bag_eq(
  $$ select r.account_id, r.hour, r.action, r.api_key_id, r.user_id, r.quantity, r.credits, r.events
     from private.usage_rollup r where r.account_id::text like '0000000a-%' $$,
  $$ select e.account_id, date_trunc('hour', e.created_at, 'UTC') as hour, e.action, e.api_key_id, e.user_id,
            sum(e.quantity)::bigint as quantity, sum(e.credits_charged)::bigint as credits, count(*) as events
     from public.usage_events e where e.account_id::text like '0000000a-%' group by 1, 2, 3, 4, 5 $$,
  'the usage events written before the upgrade are folded into the usage rollup, each once');

-- The rules still see the old state.
select is(public.consume_credits('0000000a-0000-4000-8000-000000000004', 'api_call', 2, 'call-1', '{"route": "/v1"}') ->> 'replayed',
  'true', 'an idempotency key used before the upgrade replays');
select is(public.consume_credits('0000000a-0000-4000-8000-000000000005', 'upgrade_free', 2, 'free-1', '{"check": true}') - 'usage_event_id',
  jsonb_build_object('credits_charged', 0, 'balance', 52, 'available', 52, 'replayed', true),
  'usage that charged nothing before the upgrade replays, with the wallet as it stands');
select is(
  (select count(*) from public.credit_ledger where account_id = '0000000a-0000-4000-8000-000000000005' and delta = 0), 0::bigint,
  'and it is not a ledger entry: the ledger shows changes of balance only');
select throws_ok($$ select public.consume_credits('0000000a-0000-4000-8000-000000000004', 'api_call', 1) $$,
  'PT429', 'quota_exceeded', 'the 3 api_calls counted before the upgrade still use up the month''s quota');
select is((select balance from public.credit_balances where account_id = '0000000a-0000-4000-8000-000000000003'), -25::bigint,
  'the debt after the clawback is still owed');
select throws_ok($$ select public.consume_credits('0000000a-0000-4000-8000-000000000003', 'api_call', 1) $$,
  'PT402', 'insufficient_credits', 'an account in debt cannot consume');
select is((public.admin_adjust_credits('0000000a-0000-4000-8000-000000000003', 30, 'repay check', 'adj-repay') ->> 'balance')::int, 5,
  'new credits repay the debt first');
select is((select status from public.credit_holds where idempotency_key = 'lapsed'), 'expired',
  'the hold that lapsed before the upgrade was released by the expiry job');
select is((public.capture_credits((select id from public.credit_holds where idempotency_key = 'live')) ->> 'credits_charged')::int, 20,
  'the hold opened before the upgrade is captured for what it reserved');

-- The payment recorded before the upgrade: the same invoice reported again (Stripe sends
-- invoice.payment_succeeded beside invoice.paid) changes nothing and grants nothing twice.
select is((select count(*) from upgrade_check.before where what = 'payment'), 1::bigint, 'one payment was recorded before');
select is(private.receive_stripe_event(upgrade_check.invoice_event('evt_upgrade_again', 'invoice.payment_succeeded')),
  'processed', 'the same invoice reported again after the upgrade is processed');
select results_eq(
  $$ select p.status, p.credits_granted, w.balance from public.payments p join public.credit_balances w using (account_id)
     where p.stripe_invoice_id = 'in_upgrade_6' $$,
  $$ values ('paid', 1000::bigint, 1050::bigint) $$,
  'and leaves the payment paid, its 1,000 plan credits granted once (balance: 50 signup + 1,000)');

-- The members read what they read before, through the policies as they are now: the owner
-- of wallet 1 her whole ledger, the owner of wallet 2 nothing of it.
create temp table ledger_count as
  select count(*) as n from public.credit_ledger where account_id = '0000000a-0000-4000-8000-000000000001';
grant select on ledger_count to authenticated;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "0000000a-0000-4000-8000-000000000001", "role": "authenticated"}', true);
select is((select count(*) from public.credit_ledger where account_id = '0000000a-0000-4000-8000-000000000001'),
  (select n from ledger_count), 'the owner of wallet 1 reads her whole ledger under row-level security');
select set_config('request.jwt.claims', '{"sub": "0000000a-0000-4000-8000-000000000002", "role": "authenticated"}', true);
select is((select count(*) from public.credit_ledger where account_id = '0000000a-0000-4000-8000-000000000001'), 0::bigint,
  'the owner of wallet 2 reads none of it');
reset role;

-- The audit entries written before the upgrade (signups, staff adjustments) and everything
-- written since seal into one chain without a break.
select private.seal_audit_log();
select ok((select count(*) from public.audit_log where sealed_at is null) = 0,
  'every audit entry, before and after the upgrade, is sealed');
select is_empty($$ select * from private.verify_audit_chain() $$,
  'the migrated chain and the entries written after the upgrade verify intact');

select * from finish();
rollback;
