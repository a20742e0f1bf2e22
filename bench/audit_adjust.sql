-- Pair 6: an audited staff adjustment (a ledger entry, the wallet, one audit entry) on the
-- client's own account (pgbench client n adjusts account n + 1), on the trusted path.
\set n :client_id + 1
select public.admin_adjust_credits(('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid, -1, 'bench: audited staff adjustment');
