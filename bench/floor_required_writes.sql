-- Pair 2c (for information): the four row writes SPEC §4.3 requires of any consumption
-- (usage event, wallet, lot, ledger entry) in one function, with no validation, no
-- permission, no idempotency, no rate limit and no quota: a floor for consume_credits.
\set n random(1, :accounts)
select bench.required_writes(('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid);
