-- Pair 3: one GCRA check (the conditional upsert) on a random key of :accounts.
\set key random(1, :accounts)
select private.check_rate_limit('bench', :key, 1000000000, 1000000);
