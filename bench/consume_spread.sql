-- Pair 2: consume_credits on a random account of :accounts, on the trusted path.
\set n random(1, :accounts)
select public.consume_credits(('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid, 'api_call', 1);
