-- The one-statement v2 common path with the plan on the wallet row (bench/candidates/v2_plan_on_wallet.sql), random account of :accounts.
\set n random(1, :accounts)
select bench.v2p_consume(('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid, 'api_call', 1);
