-- Usage analytics (SPEC §4.12): how much an account used, by what, per hour, day or month,
-- exact and cheap at once; and the operator's revenue and credit figures per day.
--
--   usage_events.writer_xid     the transaction that wrote the event (column default
--                               pg_current_xact_id(): the consuming transaction writes nothing more)
--   private.usage_rollup        per account, UTC hour, action, API key and user: quantity, credits, events
--   private.usage_fold_state    the watermark: every event written by a transaction below
--                               folded_below is in the rollup, none at or above it
--   private.fold_usage_events() the folder (a sweeper, every 10 seconds where pg_cron takes
--                               seconds): folds the events of finished transactions past the watermark
--   public.usage_summary(...)   rollup + the raw events past the watermark, in one snapshot
--   public.revenue_summary(...) staff admins: MRR, pack revenue and credits per UTC day
--
-- Why a watermark on transaction ids and not on time: an event's created_at is its
-- transaction's start, so a transaction that started before a fold and commits after it
-- would be skipped by a time watermark. As the audit sealer does, the folder only folds
-- events of transactions below the oldest transaction still running (the xmin of its
-- snapshot): nothing below it can still commit, so an event is folded exactly once, and
-- everything at or above it is the raw tail that usage_summary adds.
--
-- Buckets are in UTC: an hour bucket is date_trunc('hour', created_at, 'UTC'), days and
-- months are rolled up from the hours, also in UTC, whatever the session's TimeZone.

-- ---------------------------------------------------------------------------
-- The writer of every usage event
-- ---------------------------------------------------------------------------
-- Added without a default first: existing events keep null (they are folded below), and the
-- table is not rewritten. New events get the writing transaction's id.
alter table public.usage_events add column writer_xid xid8;
alter table public.usage_events alter column writer_xid set default pg_catalog.pg_current_xact_id();
-- Only new rows are checked (existing ones are null and folded by this migration).
alter table public.usage_events add constraint usage_events_writer_xid_present check (writer_xid is not null) not valid;
comment on column public.usage_events.writer_xid is
  'The transaction that wrote the event (pg_current_xact_id()); null only for events older than usage analytics. private.fold_usage_events folds an event into the rollup once every transaction up to this one has finished.';

-- A BRIN index finds the tail past the watermark: events are appended in roughly increasing
-- writer order, and a BRIN index costs a consuming transaction next to nothing (no btree
-- page to split or contend on). The folder summarizes new ranges as it goes.
create index usage_events_writer_brin on public.usage_events
  using brin (((writer_xid::text)::bigint)) with (pages_per_range = 32, autosummarize = on);

-- ---------------------------------------------------------------------------
-- The rollup
-- ---------------------------------------------------------------------------
create table private.usage_rollup (
  account_id uuid not null references public.accounts (id) on delete cascade,
  hour timestamptz not null check (hour = pg_catalog.date_trunc('hour', hour, 'UTC')),
  action text not null,
  api_key_id uuid,
  user_id uuid,
  quantity bigint not null check (quantity > 0),
  credits bigint not null check (credits >= 0),
  events bigint not null check (events > 0),
  -- The sums ride along in the index, so a summary reads an account's hours from contiguous
  -- index pages (an index-only scan) wherever the folder happened to put the rows.
  constraint usage_rollup_key unique nulls not distinct (account_id, hour, action, api_key_id, user_id)
    include (quantity, credits, events)
);
comment on table private.usage_rollup is
  'Usage events summed per account, UTC hour, action, API key and user, written only by private.fold_usage_events (never by the consuming transaction). Together with the events past private.usage_fold_state it equals a group by over usage_events.';
comment on column private.usage_rollup.hour is 'Start of the UTC hour of the events'' created_at.';
comment on column private.usage_rollup.quantity is 'Sum of the events'' quantity.';
comment on column private.usage_rollup.credits is 'Sum of the events'' credits_charged.';
comment on column private.usage_rollup.events is 'How many events.';
alter table private.usage_rollup enable row level security;
create policy "Clients never access the usage rollup" on private.usage_rollup
  as restrictive for all to anon, authenticated using (false) with check (false);

create table private.usage_fold_state (
  singleton boolean primary key default true check (singleton),
  folded_below xid8 not null,
  folded_at timestamptz,
  events_folded bigint not null default 0 check (events_folded >= 0)
);
comment on table private.usage_fold_state is
  'The folding watermark: every usage event whose writer_xid is below folded_below (or null) is in private.usage_rollup, and none at or above it. Its row lock serializes folders.';
comment on column private.usage_fold_state.folded_below is
  'The oldest transaction that was still running at the last fold: events of transactions from here on are the raw tail.';
alter table private.usage_fold_state enable row level security;
create policy "Clients never access the fold state" on private.usage_fold_state
  as restrictive for all to anon, authenticated using (false) with check (false);

-- ---------------------------------------------------------------------------
-- The folder
-- ---------------------------------------------------------------------------
create or replace function private.fold_usage_events()
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  state private.usage_fold_state;
  own xid8 := pg_catalog.pg_current_xact_id_if_assigned();
  boundary xid8;
  folded bigint;
begin
  -- Folders take turns (the row lock); consuming transactions never wait for them.
  select s.* into state from private.usage_fold_state s where s.singleton for update;
  -- A new snapshot, taken after the lock: below its xmin every transaction has finished, so
  -- every event of theirs that will ever exist is visible now. The caller's own events wait
  -- for the next fold (they are not committed yet).
  boundary := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
  if own is not null and own < boundary then
    boundary := own;
  end if;
  if boundary <= state.folded_below then
    return 0;
  end if;
  -- New full page ranges get their summary, so the next scans skip them.
  perform pg_catalog.brin_summarize_new_values('public.usage_events_writer_brin'::pg_catalog.regclass);

  with batch as (
    select e.account_id, pg_catalog.date_trunc('hour', e.created_at, 'UTC') as hour, e.action, e.api_key_id, e.user_id,
           sum(e.quantity)::bigint as quantity, sum(e.credits_charged)::bigint as credits, count(*) as events
    from public.usage_events e
    where (e.writer_xid::text)::bigint >= (state.folded_below::text)::bigint
      and (e.writer_xid::text)::bigint < (boundary::text)::bigint
    group by 1, 2, 3, 4, 5
  ), merged as (
    insert into private.usage_rollup as r (account_id, hour, action, api_key_id, user_id, quantity, credits, events)
    select b.account_id, b.hour, b.action, b.api_key_id, b.user_id, b.quantity, b.credits, b.events from batch b
    on conflict on constraint usage_rollup_key do update
      set quantity = r.quantity + excluded.quantity,
          credits = r.credits + excluded.credits,
          events = r.events + excluded.events
  )
  -- (a data-modifying CTE always runs to completion, referenced or not)
  select coalesce(sum(b.events), 0) into folded from batch b;

  update private.usage_fold_state s
     set folded_below = boundary, folded_at = pg_catalog.now(), events_folded = s.events_folded + folded
   where s.singleton;
  return folded;
end
$$;
comment on function private.fold_usage_events() is
  'Folds the usage events of finished transactions past the watermark into private.usage_rollup and moves the watermark to the oldest transaction still running; returns how many events it folded. Safe to run concurrently (folders take turns) and at any time; a sweeper runs it every 10 seconds (every minute on pg_cron before 1.5).';

insert into private.sweepers (name, schedule, function_name, description) values
  ('fold-usage-events', '10 seconds', 'private.fold_usage_events',
   'Folds new usage events into the usage rollup (usage_summary stays exact without it; it only stays cheap).')
on conflict (name) do nothing;

-- A deleted user's usage stays in the rollup without the user, as it does in usage_events
-- (user_id on delete set null).
create or replace function private.forget_rollup_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  with gone as (
    delete from private.usage_rollup r where r.user_id = old.id
    returning r.account_id, r.hour, r.action, r.api_key_id, r.quantity, r.credits, r.events
  )
  insert into private.usage_rollup as r (account_id, hour, action, api_key_id, user_id, quantity, credits, events)
  select g.account_id, g.hour, g.action, g.api_key_id, null, sum(g.quantity), sum(g.credits), sum(g.events)
  from gone g group by 1, 2, 3, 4
  on conflict on constraint usage_rollup_key do update
    set quantity = r.quantity + excluded.quantity, credits = r.credits + excluded.credits, events = r.events + excluded.events;
  return old;
end
$$;
comment on function private.forget_rollup_user() is
  'Trigger after a user is deleted: their rows of the usage rollup merge into the rows without a user, as usage_events.user_id is set null.';
create trigger forget_rollup_user after delete on auth.users
  for each row execute function private.forget_rollup_user();

-- ---------------------------------------------------------------------------
-- The existing events, folded now
-- ---------------------------------------------------------------------------
insert into private.usage_rollup (account_id, hour, action, api_key_id, user_id, quantity, credits, events)
select e.account_id, pg_catalog.date_trunc('hour', e.created_at, 'UTC'), e.action, e.api_key_id, e.user_id,
       sum(e.quantity), sum(e.credits_charged), count(*)
from public.usage_events e
where e.writer_xid is null
group by 1, 2, 3, 4, 5;
-- This migration holds usage_events exclusively since the column was added: every event
-- written by a transaction below the oldest one running now existed then (writer_xid null).
insert into private.usage_fold_state (folded_below, folded_at, events_folded)
select pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()), pg_catalog.now(),
       (select count(*) from public.usage_events e where e.writer_xid is null);

-- ---------------------------------------------------------------------------
-- usage_summary
-- ---------------------------------------------------------------------------
create or replace function private.check_usage_summary_arguments(since timestamptz, until timestamptz, bucket text, group_by text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if bucket is null or bucket not in ('hour', 'day', 'month') then
    raise exception using errcode = '22023', message = 'invalid_bucket',
      detail = pg_catalog.format('bucket must be hour, day or month, not %s', coalesce(pg_catalog.quote_literal(bucket), 'null'));
  end if;
  if group_by is null or group_by not in ('action', 'category', 'api_key', 'user') then
    raise exception using errcode = '22023', message = 'invalid_group_by',
      detail = pg_catalog.format('group_by must be action, category, api_key or user, not %s', coalesce(pg_catalog.quote_literal(group_by), 'null'));
  end if;
  if since is null or until is null or not pg_catalog.isfinite(since) or not pg_catalog.isfinite(until) then
    raise exception using errcode = '22023', message = 'invalid_range', detail = 'since and until must be finite timestamps';
  end if;
  if since >= until then
    raise exception using errcode = '22023', message = 'invalid_range',
      detail = pg_catalog.format('since (%s) must be before until (%s): the range is [since, until)', since, until);
  end if;
end
$$;
comment on function private.check_usage_summary_arguments(timestamptz, timestamptz, text, text) is
  'Raises 22023 invalid_bucket, invalid_group_by or invalid_range for arguments usage_summary cannot answer.';

create or replace function public.usage_summary(
  account_id uuid,
  since timestamptz,
  until timestamptz,
  bucket text default 'day',
  group_by text default 'action'
) returns table (bucket_start timestamptz, key text, quantity bigint, credits bigint, events bigint)
language plpgsql
stable
security definer
set search_path = ''
-- The planner cannot know how few events are past the watermark (a parameter), so on a big
-- table its estimate crosses the JIT thresholds and every call would compile a plan for tens
-- of milliseconds: measured at 10^7 events (bench/README.md, "Usage summary").
set jit = off
as $$
#variable_conflict use_column
declare
  lo timestamptz; -- the first whole UTC hour in the range
  hi timestamptz; -- the end of the last whole UTC hour in the range
begin
  perform private.check_usage_summary_arguments(since, until, bucket, group_by);
  if private.is_trusted_caller() or not public.is_staff_admin() then
    perform private.authorize_wallet(usage_summary.account_id, 'credits.read');
  end if;
  lo := pg_catalog.date_trunc('hour', since, 'UTC');
  if lo < since then
    lo := lo + interval '1 hour';
  end if;
  hi := greatest(pg_catalog.date_trunc('hour', until, 'UTC'), lo);

  -- One statement, one snapshot: the rollup, the watermark and the tail agree.
  return query
  with state as (
    select (s.folded_below::text)::bigint as below from private.usage_fold_state s where s.singleton
  ), tail as materialized (
    -- Every account's events past the watermark: the few not folded yet (the BRIN index).
    select e.account_id, e.created_at, e.action, e.api_key_id, e.user_id, e.quantity, e.credits_charged
    from public.usage_events e
    where (e.writer_xid::text)::bigint >= (select st.below from state st)
  ), units as (
    -- Whole hours from the rollup ...
    select r.hour as at, r.action, r.api_key_id, r.user_id, r.quantity, r.credits, r.events
    from private.usage_rollup r
    where r.account_id = usage_summary.account_id and r.hour >= lo and r.hour < hi
    union all
    -- ... and from the events not folded yet,
    select t.created_at, t.action, t.api_key_id, t.user_id, t.quantity::bigint, t.credits_charged, 1::bigint
    from tail t
    where t.account_id = usage_summary.account_id and t.created_at >= lo and t.created_at < hi
    union all
    -- and the parts of hours at the ends of the range, from the events themselves (skipped
    -- when the range starts and ends on whole hours).
    select e.created_at, e.action, e.api_key_id, e.user_id, e.quantity::bigint, e.credits_charged, 1::bigint
    from public.usage_events e
    where since < lo and e.account_id = usage_summary.account_id and e.created_at >= since and e.created_at < least(lo, until)
    union all
    select e.created_at, e.action, e.api_key_id, e.user_id, e.quantity::bigint, e.credits_charged, 1::bigint
    from public.usage_events e
    where hi < until and e.account_id = usage_summary.account_id and e.created_at >= hi and e.created_at < until
  )
  select pg_catalog.date_trunc(bucket, u.at, 'UTC') as bucket_start,
         case group_by
           when 'action' then u.action
           when 'category' then a.category
           when 'api_key' then u.api_key_id::text
           else u.user_id::text
         end as key,
         sum(u.quantity)::bigint, sum(u.credits)::bigint, sum(u.events)::bigint
  from units u
  left join public.billable_actions a on group_by = 'category' and a.key = u.action
  group by 1, 2
  order by 1, 2 nulls first;
end
$$;
comment on function public.usage_summary(uuid, timestamptz, timestamptz, text, text) is
  'Usage of an account in [since, until) per bucket (hour, day or month, in UTC) and key (group_by: action, category, api_key or user; null when the events have none): quantity, credits charged and number of events. Exact: the hourly rollup plus the events not folded yet plus, for a range that does not start or end on a whole hour, the events of those partial hours. Needs credits.read (staff admins read every account). Errors: 22023 invalid_bucket, invalid_group_by, invalid_range; 42501; PT404 for a server naming an unknown account.';

revoke all on function public.usage_summary(uuid, timestamptz, timestamptz, text, text) from public;
grant execute on function public.usage_summary(uuid, timestamptz, timestamptz, text, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- revenue_summary: the operator's figures per day (staff admins)
-- ---------------------------------------------------------------------------
create or replace function public.revenue_summary(since date, until date, currency text default 'usd')
returns table (
  day date,
  mrr_cents bigint,
  live_subscriptions bigint,
  pack_revenue_cents bigint,
  packs_sold bigint,
  credits_granted bigint,
  credits_consumed bigint,
  credits_expired bigint,
  credits_clawed_back bigint,
  credits_adjusted bigint
)
language plpgsql
stable
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  live jsonb := coalesce((select s.value from private.settings s where s.key = 'billing_live_statuses'),
                         '["trialing", "active", "past_due"]'::jsonb);
begin
  if not private.is_trusted_caller() then
    perform private.require_user();
    if not public.is_staff_admin() then
      raise exception using errcode = '42501', message = 'permission denied', detail = 'revenue figures are for staff admins';
    end if;
  end if;
  if since is null or until is null or since >= until then
    raise exception using errcode = '22023', message = 'invalid_range',
      detail = 'since must be a day before until: the range is [since, until)';
  end if;
  if until - since > 731 then
    raise exception using errcode = '22023', message = 'invalid_range', detail = 'at most 731 days at a time';
  end if;
  if currency is null or currency !~ '^[a-z]{3}$' then
    raise exception using errcode = '22023', message = 'invalid_input', detail = 'currency must be a lower-case ISO code such as usd';
  end if;

  return query
  with days as (
    select d::date as day, (d::date + 1)::timestamp at time zone 'UTC' as day_end
    from pg_catalog.generate_series(since::timestamp, (until - 1)::timestamp, interval '1 day') d
  ), mrr as (
    -- A subscription counts on a day when its last recorded change before the day's end
    -- (UTC) left it live; its plan then, normalised to a month, times its quantity.
    select dd.day,
           sum(case p.billing_interval when 'year' then p.price_cents::numeric / 12 else p.price_cents::numeric end
               * sub.quantity) as cents,
           count(*) as subscriptions
    from days dd
    join public.subscriptions sub on true
    cross join lateral (
      select h.new_status, h.new_plan_key from public.subscription_history h
      where h.subscription_id = sub.id and h.occurred_at < dd.day_end
      order by h.occurred_at desc, h.id desc limit 1
    ) last
    join public.plans p on p.key = last.new_plan_key
    where live ? last.new_status and p.currency = revenue_summary.currency
    group by dd.day
  ), packs as (
    select (pay.paid_at at time zone 'UTC')::date as day, sum(pay.amount) as cents, sum(pay.quantity) as sold
    from public.payments pay
    where pay.kind = 'credit_pack' and pay.settlement = 'paid' and pay.currency = revenue_summary.currency
      and pay.paid_at >= since::timestamp at time zone 'UTC' and pay.paid_at < until::timestamp at time zone 'UTC'
    group by 1
  ), credits as (
    select (l.created_at at time zone 'UTC')::date as day,
           sum(l.delta) filter (where l.delta > 0 and l.reason not in ('consume', 'capture', 'expire', 'clawback', 'admin_adjust')) as granted,
           -sum(l.delta) filter (where l.reason in ('consume', 'capture')) as consumed,
           -sum(l.delta) filter (where l.reason = 'expire') as expired,
           -sum(l.delta) filter (where l.reason = 'clawback') as clawed_back,
           sum(l.delta) filter (where l.reason = 'admin_adjust') as adjusted
    from public.credit_ledger l
    where l.created_at >= since::timestamp at time zone 'UTC' and l.created_at < until::timestamp at time zone 'UTC'
    group by 1
  )
  select dd.day,
         coalesce(round(m.cents), 0)::bigint, coalesce(m.subscriptions, 0)::bigint,
         coalesce(pk.cents, 0)::bigint, coalesce(pk.sold, 0)::bigint,
         coalesce(c.granted, 0)::bigint, coalesce(c.consumed, 0)::bigint, coalesce(c.expired, 0)::bigint,
         coalesce(c.clawed_back, 0)::bigint, coalesce(c.adjusted, 0)::bigint
  from days dd
  left join mrr m on m.day = dd.day
  left join packs pk on pk.day = dd.day
  left join credits c on c.day = dd.day
  order by dd.day;
end
$$;
comment on function public.revenue_summary(date, date, text) is
  'Staff admins only (42501 otherwise): per UTC day in [since, until) (at most 731 days), MRR in cents of the currency (live subscriptions at the day''s end by their recorded history, plan price normalised to a month × the subscription''s quantity) and their number, credit pack revenue (paid pack payments by paid_at) and packs sold, and credits granted (every positive grant: signup bonus, referral, purchase, subscription, admin, promo), consumed (consume and capture), expired, clawed back, and staff adjustments (net). Errors: 22023 invalid_range, invalid_input.';

revoke all on function public.revenue_summary(date, date, text) from public;
grant execute on function public.revenue_summary(date, date, text) to authenticated, service_role;
