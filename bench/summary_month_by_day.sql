-- The measured call: one account's month by day, by action (as a server: the trusted path).
select count(*) from public.usage_summary('00000000-0000-4000-8000-000000000042',
  '2026-11-01 00:00:00+00', '2026-12-01 00:00:00+00', 'day', 'action');
