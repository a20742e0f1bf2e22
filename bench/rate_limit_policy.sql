-- Pair 3b (for information): the named policy as consume_credits applies it: policy
-- lookup, the account's plan overrides, then the GCRA check; random account of :accounts.
\set n random(1, :accounts)
select private.rate_limit('consume_credits', ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid);
