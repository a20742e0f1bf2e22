-- Pair 1b (for information): the two row writes of pair 2c on ONE account (every
-- client): the floor for consume_credits on a hot account.
select bench.required_writes('00000000-0000-4000-8000-000000000001'::uuid);
