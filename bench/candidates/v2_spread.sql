-- The v2 common path (bench/candidates/v2_common_path.sql) on a random account of :accounts.
\set n random(1, :accounts)
select bench.v2_consume(('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid, 'api_call', 1);
