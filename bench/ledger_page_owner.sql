-- Baseline of pair 4: the same page as the table owner (postgres: owner, BYPASSRLS),
-- the same transaction shape without the role switch.
\set n random(1, :accounts)
begin;
select set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-' || lpad(:n::text, 12, '0') || '","role":"authenticated"}', true);
select * from public.credit_ledger where account_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid order by id desc limit 50;
commit;
