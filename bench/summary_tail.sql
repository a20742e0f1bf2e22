-- A raw tail the folder has not folded yet: 200 events of the measured account in
-- November 2026, written after the fold (usage_summary adds them from usage_events).
insert into public.usage_events (account_id, action, quantity, credits_charged, created_at)
select '00000000-0000-4000-8000-000000000042', 'api_call', 1, 1,
       timestamptz '2026-11-01 00:00:00+00' + (g * 12960) * interval '1 second'
from generate_series(1, 200) g;
