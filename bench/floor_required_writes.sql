-- Pair 2c (for information): the two row writes of any consumption (docs/credits.md#consuming)
-- (the wallet row with the lot it carries, one entry that is ledger entry and usage event)
-- in one function, with no validation, no permission, no idempotency, no rate limit and
-- no quota: a floor for consume_credits.
\set n random(1, :accounts)
select bench.required_writes(('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid);
