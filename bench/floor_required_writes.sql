-- Pair 2c (for information): the four row writes of any consumption as stored in 2026-11 (docs/credits.md#consuming)
-- (usage event, wallet, lot, ledger entry) in one function, with no validation, no
-- permission, no idempotency, no rate limit and no quota: a floor for consume_credits.
\set n random(1, :accounts)
select bench.required_writes(('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid);
