-- Baseline of pair 2: the hand-written RPC on a random profile of :accounts.
\set n random(1, :accounts)
select bench.generate(('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid, 'api_call', 1);
