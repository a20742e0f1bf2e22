-- Pair 4: the newest 50 ledger entries of one's own account as an authenticated user,
-- under RLS, in the transaction shape PostgREST uses (role and claims set locally).
\set n random(1, :accounts)
begin;
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-' || lpad(:n::text, 12, '0') || '","role":"authenticated"}', true);
select * from public.credit_ledger where account_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid order by id desc limit 50;
commit;
