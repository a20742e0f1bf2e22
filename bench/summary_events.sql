-- Usage events for the summary pair (npm run bench -- --only=summary), numbered
-- :first..:last, in ONE insert ... select generate_series. psql variables: first, last,
-- accounts (the personal accounts of bench/setup.sql, 00000000-0000-4000-8000-<n>).
--   * every 10th event is the measured account's (n = 42): its j-th event cycles through 3
--     actions × 4 API keys (one of them none) × the 720 hours of November 2026 (UTC), so
--     its month has the same 8,640 rollup rows at 10^6 events as at 10^7;
--   * the rest spread over all accounts, actions, keys and the month (10-second steps);
--   * no user (the rollup's grain is the same with users; this keeps the insert fast).
insert into public.usage_events (account_id, action, quantity, credits_charged, api_key_id, created_at)
select case when g % 10 = 0 then '00000000-0000-4000-8000-000000000042'::uuid
            else ('00000000-0000-4000-8000-' || lpad((1 + g % :accounts)::text, 12, '0'))::uuid end,
       (array['api_call', 'ai_tokens', 'text_to_thumbnail'])[1 + case when g % 10 = 0 then (g / 10) % 3 else g % 3 end],
       1 + g % 7,
       1 + g % 5,
       (array[null, '5a000000-0000-4000-8000-000000000001', '5a000000-0000-4000-8000-000000000002',
              '5a000000-0000-4000-8000-000000000003'])[1 + case when g % 10 = 0 then (g / 30) % 4 else (g / 3) % 4 end]::uuid,
       timestamptz '2026-11-01 00:00:00+00'
         + case when g % 10 = 0 then ((g / 120) % 720) * interval '1 hour' + ((g / 10) * 7 % 3600) * interval '1 second'
                else ((g * 7919) % (30 * 86400)) * interval '1 second' end
from generate_series(:first::bigint, :last::bigint) g;
