-- Benchmark data for `npm run bench` (run as postgres on a throw-away database, after
-- the migrations and the seed). psql variables: accounts, ledger_rows.
--
-- Account n (1..:accounts) is the personal account of user n, whose id is
-- 00000000-0000-4000-8000-<n as 12 decimal digits>, so pgbench scripts can build it
-- from an integer.
\set ON_ERROR_STOP 1

-- The bare baseline: one integer id, one balance, nothing else.
create schema bench;
create table bench.wallets (id integer primary key, balance bigint not null);
insert into bench.wallets select g, 1000000000000 from generate_series(1, :accounts) g;

-- Every measured call must succeed: raise the rate limits and the free plan's quota
-- (both stay in force, so their checks and counters are part of what is measured).
update private.rate_limit_policies set capacity = 1000000000, refill_per_second = 1000000;
update public.plans set limits = jsonb_set(limits, '{quotas,api_call}', '1000000000000'::jsonb, true)
where key = 'free';

-- :accounts users; the signup trigger gives each a personal account, an owner
-- membership, a wallet and the signup bonus.
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select '00000000-0000-0000-0000-000000000000',
       ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
       'authenticated', 'authenticated', 'bench' || g || '@bench.ledgerbase.dev', '', now(),
       '{"provider": "email", "providers": ["email"]}', '{}', now(), now()
from generate_series(1, :accounts) g;

-- History: :ledger_rows ledger entries spread evenly over the accounts, in +1/-1 pairs
-- (a promo credit and its consumption) so that every wallet's balance still equals the
-- sum of its ledger deltas and of its lots' remaining credits.
insert into public.credit_ledger (account_id, delta, balance_after, available_after, reason, actor_role, created_at)
select ('00000000-0000-4000-8000-' || lpad((1 + g % :accounts)::text, 12, '0'))::uuid,
       case when (g / :accounts) % 2 = 0 then 1 else -1 end,
       50 + case when (g / :accounts) % 2 = 0 then 1 else 0 end,
       50 + case when (g / :accounts) % 2 = 0 then 1 else 0 end,
       case when (g / :accounts) % 2 = 0 then 'promo' else 'consume' end,
       'system',
       now() - make_interval(secs => (:ledger_rows - g))
from generate_series(0, :ledger_rows - 1) g;

-- Enough credits for every measured call: one promo lot per wallet, expiring in 2100 so
-- that it comes first in draw-down order (before the never-expiring signup bonus), through
-- the real grant function (wallet, lot and ledger stay consistent; the wallet row then
-- carries this lot, as it carries the first lot of any wallet).
select count(private.grant_credits(a.id, 1000000000000, 'promo', '2100-01-01 00:00:00+00'))
from public.accounts a
where a.id::text like '00000000-0000-4000-8000-%';

vacuum analyze;

-- Floors for pairs 2b and 2c (information): what a function call costs, and what the
-- row writes every consumption must make cost, without any of consume_credits' checks.
create function bench.update_in_function(id integer) returns void
language plpgsql security definer set search_path = '' as $$
begin
  update bench.wallets w set balance = w.balance - 1 where w.id = update_in_function.id and w.balance >= 1;
end
$$;

create function bench.required_writes(account uuid) returns void
language plpgsql security definer set search_path = '' as $$
declare
  wallet public.credit_balances;
begin
  -- The two rows a consumption writes: the wallet (balance and the lot it carries) and one
  -- entry that is both ledger entry and usage event.
  update public.credit_balances w set balance = w.balance - 1, lot_remaining = w.lot_remaining - 1
  where w.account_id = account
  returning w.* into wallet;
  insert into ledger.entries (account_id, delta, balance_after, available_after, reason, usage_event_id,
                              action, quantity, credits_charged)
  values (account, -1, wallet.balance, wallet.available, 'consume', pg_catalog.gen_random_uuid(), 'bench_floor', 1, 1);
end
$$;
