-- Upgrade test, stage 1: wallets as users of the previous release have them.
--
-- Run (by `npm test`, step "upgrade") on a database with every migration older than the
-- upgrade under test and the seed. Business time is frozen at 2026-12-01 10:00 UTC for
-- the whole session. Six accounts, one story each, then a snapshot of what clients can
-- read (upgrade_check.before) for stage 2 to compare.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset tuples_only on
set ledgerbase.now = '2026-12-01 10:00:00+00';

-- The free plan caps api_call at 3 a month; the rate limits are out of the way.
update public.plans set limits = '{"quotas": {"api_call": 3}}' where key = 'free';
update private.rate_limit_policies set capacity = 1000, refill_per_second = 1000;

insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select '00000000-0000-0000-0000-000000000000', ('0000000a-0000-4000-8000-00000000000' || n)::uuid,
       'authenticated', 'authenticated', 'upgrade' || n || '@upgrade.test', '', now(),
       '{"provider": "email", "providers": ["email"]}', '{}', now(), now()
from generate_series(1, 6) n;

-- 1. lots: never expiring (signup bonus 50), expiring next year, and one that expired an
--    hour ago and was never swept (granted two hours ago).
--    Nothing changes this wallet after 09:00, so the expired lot still counts until the
--    expiry job (or the next change) expires it.
set ledgerbase.now = '2026-12-01 08:00:00+00';
select private.grant_credits('0000000a-0000-4000-8000-000000000001', 100, 'subscription', '2027-01-01 00:00:00+00', 'sub');
select private.grant_credits('0000000a-0000-4000-8000-000000000001', 25, 'purchase', null, 'pack');
select private.grant_credits('0000000a-0000-4000-8000-000000000001', 40, 'promo', '2026-12-01 09:00:00+00', 'soon');
set ledgerbase.now = '2026-12-01 10:00:00+00';

-- 2. holds open (one past its ttl, not yet released, and one live) and a captured one.
set ledgerbase.now = '2026-12-01 09:00:00+00';
select public.reserve_credits('0000000a-0000-4000-8000-000000000002', 'text_to_thumbnail', 1, 'lapsed', 60);
set ledgerbase.now = '2026-12-01 10:00:00+00';
select private.grant_credits('0000000a-0000-4000-8000-000000000002', 200, 'purchase', null, 'pack');
select public.reserve_credits('0000000a-0000-4000-8000-000000000002', 'text_to_thumbnail', 2, 'live', 3600);
select public.capture_credits((public.reserve_credits('0000000a-0000-4000-8000-000000000002', 'youtube_thumbnail', 1, 'done') ->> 'hold_id')::uuid);

-- 3. a debt after a clawback larger than what was left.
select public.consume_credits('0000000a-0000-4000-8000-000000000003', 'text_to_thumbnail', 3);
select private.clawback_credits('0000000a-0000-4000-8000-000000000003', 45, 'clawback', 'refund-1');

-- 4. quota counters: 3 of 3 api_calls used this month, one of them replayable by its key.
select public.consume_credits('0000000a-0000-4000-8000-000000000004', 'api_call', 2, 'call-1', '{"route": "/v1"}');
select public.consume_credits('0000000a-0000-4000-8000-000000000004', 'api_call', 1);

-- 5. a plain wallet with a history.
select public.consume_credits('0000000a-0000-4000-8000-000000000005', 'ai_tokens', 4500);
select public.admin_adjust_credits('0000000a-0000-4000-8000-000000000005', 7, 'goodwill', 'adj-1');
-- ... and usage that charged nothing (a free action): a usage event without a ledger entry.
insert into public.billable_actions (key, name, category, credits, unit_size) values ('upgrade_free', 'Free check', 'api', 0, 1);
select public.consume_credits('0000000a-0000-4000-8000-000000000005', 'upgrade_free', 2, 'free-1', '{"check": true}');

-- 6. a subscription invoice paid through the stripe-webhook function's call: a payment, the
--    plan's credits as a lot, and the event recorded (the upgrade rewrites how a payment row
--    is written; stage 2 reports the same invoice again).
create schema upgrade_check;
insert into public.plans (key, name, tier, price_cents, stripe_price_id, included_credits, active)
values ('upgrade_pro', 'Upgrade Pro', 5, 2000, 'price_upgrade_pro', 1000, true);
create function upgrade_check.invoice_event(event_id text, type text) returns jsonb
language sql as $$
  select jsonb_build_object('id', event_id, 'object', 'event', 'type', type,
    'created', extract(epoch from timestamptz '2026-12-01 10:00:00+00')::bigint,
    'data', jsonb_build_object('object', jsonb_build_object(
      'id', 'in_upgrade_6', 'object', 'invoice', 'customer', 'cus_upgrade6', 'currency', 'usd', 'status', 'paid',
      'amount_paid', 2000, 'amount_due', 2000, 'subtotal', 2000, 'total', 2000, 'billing_reason', 'subscription_create',
      'status_transitions', jsonb_build_object('paid_at', extract(epoch from timestamptz '2026-12-01 10:00:00+00')::bigint),
      'parent', jsonb_build_object('subscription_details', jsonb_build_object('subscription', 'sub_upgrade6',
        'metadata', jsonb_build_object('account_id', '0000000a-0000-4000-8000-000000000006'))),
      'lines', jsonb_build_object('data', jsonb_build_array(jsonb_build_object('quantity', 1,
        'pricing', jsonb_build_object('price_details', jsonb_build_object('price', 'price_upgrade_pro')),
        'period', jsonb_build_object('start', extract(epoch from timestamptz '2026-12-01 00:00:00+00')::bigint,
                                     'end', extract(epoch from timestamptz '2026-12-31 00:00:00+00')::bigint)))))))
$$;
select private.receive_stripe_event(upgrade_check.invoice_event('evt_upgrade_paid', 'invoice.paid'));

-- What clients can read, to compare after the upgrade.
create table upgrade_check.before as
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
