-- Usage events for the summary pair (npm run bench -- --only=summary), numbered
-- :first..:last, in ONE insert ... select generate_series. psql variables: first, last,
-- accounts (the personal accounts of bench/setup.sql, 00000000-0000-4000-8000-<n>).
--   * every 10th event is the measured account's (n = 42), the rest spread over all accounts;
--   * three actions, four API keys (one of them none), times spread over November 2026
--     (UTC) at 10-second steps, so the measured account uses every hour of the month;
--   * no user (the rollup's grain is the same with users; this keeps the insert fast).
insert into public.usage_events (account_id, action, quantity, credits_charged, api_key_id, created_at)
select case when g % 10 = 0 then '00000000-0000-4000-8000-000000000042'::uuid
            else ('00000000-0000-4000-8000-' || lpad((1 + g % :accounts)::text, 12, '0'))::uuid end,
       (array['api_call', 'ai_tokens', 'text_to_thumbnail'])[1 + g % 3],
       1 + g % 7,
       1 + g % 5,
       (array[null, '5a000000-0000-4000-8000-000000000001', '5a000000-0000-4000-8000-000000000002',
              '5a000000-0000-4000-8000-000000000003'])[1 + (g / 3) % 4]::uuid,
       timestamptz '2026-11-01 00:00:00+00' + ((g::bigint * 7919) % (30 * 86400)) * interval '1 second'
from generate_series(:first::bigint, :last::bigint) g;
