-- Information only: the same month by day as a plain group by over usage_events, which
-- grows with the account's events (what the rollup saves).
select count(*) from (
  select date_trunc('day', e.created_at, 'UTC'), e.action, sum(e.quantity), sum(e.credits_charged), count(*)
  from public.usage_events e
  where e.account_id = '00000000-0000-4000-8000-000000000042'
    and e.created_at >= '2026-11-01 00:00:00+00' and e.created_at < '2026-12-01 00:00:00+00'
  group by 1, 2) g;
