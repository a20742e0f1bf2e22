-- Rate limits: GCRA (generic cell rate algorithm) buckets, one statement per check.
--
-- Each key keeps one timestamp, the theoretical arrival time (tat). A call costing one
-- cell is allowed when max(tat, now) + T - now <= capacity * T, where T = 1 / refill per
-- second; allowing it moves tat forward by T. The check and the update are one
-- conditional upsert, so concurrent calls cannot both take the last cell, and a denied
-- call changes nothing. Buckets are UNLOGGED: losing them in a crash only forgets
-- recent traffic. The increment rolls back with a failed request.

-- ---------------------------------------------------------------------------
-- Policies
-- ---------------------------------------------------------------------------
create table private.rate_limit_policies (
  name text primary key check (name ~ '^[a-z][a-z0-9_]{1,59}$'),
  capacity integer not null check (capacity > 0),
  refill_per_second numeric not null check (refill_per_second > 0),
  scope text not null check (scope in ('user', 'account', 'ip', 'api_key')),
  description text
);
comment on table private.rate_limit_policies is
  'Rate-limit policies: a burst of `capacity` calls, refilled at `refill_per_second`, counted per user, account, IP or API key. Plans override capacity and refill in plans.limits.rate_limits.<name>.';
alter table private.rate_limit_policies enable row level security;
create policy "Clients never access rate-limit policies" on private.rate_limit_policies
  as restrictive for all to anon, authenticated using (false) with check (false);

insert into private.rate_limit_policies (name, capacity, refill_per_second, scope, description) values
  ('consume_credits', 120, 10, 'account', 'Metered usage per account (consume_credits, the usage function).'),
  ('reserve_credits', 60, 2, 'account', 'Holds for long jobs per account.'),
  ('redeem_referral_code', 5, 0.01, 'user', 'Guessing referral codes.'),
  ('invite_member', 20, 0.05, 'user', 'Invitation e-mails sent by one user.'),
  ('create_api_key', 10, 0.01, 'user', 'API keys created by one user.'),
  ('join_waitlist', 5, 0.05, 'ip', 'Waitlist sign-ups from one IP address.'),
  ('checkout', 10, 0.1, 'user', 'Stripe checkout sessions created by one user.')
on conflict (name) do nothing;

-- ---------------------------------------------------------------------------
-- Buckets
-- ---------------------------------------------------------------------------
create unlogged table private.rate_limit_buckets (
  key text primary key,
  tat timestamptz not null
) with (fillfactor = 70);
comment on table private.rate_limit_buckets is
  'GCRA state per policy and subject: the theoretical arrival time. Unlogged: not crash-safe by design.';
alter table private.rate_limit_buckets enable row level security;
create policy "Clients never access rate-limit buckets" on private.rate_limit_buckets
  as restrictive for all to anon, authenticated using (false) with check (false);

-- ---------------------------------------------------------------------------
-- The check
-- ---------------------------------------------------------------------------
create or replace function private.check_rate_limit(
  policy text,
  subject text,
  capacity integer,
  refill_per_second numeric,
  cost integer default 1
) returns void
language plpgsql
set search_path = ''
as $$
declare
  emission interval := pg_catalog.make_interval(secs => 1.0 / refill_per_second::float8);
  bucket_key text := policy || ':' || subject;
  at timestamptz := private.now();
  allowed boolean;
  current_tat timestamptz;
  retry_after integer;
begin
  insert into private.rate_limit_buckets as b (key, tat)
  values (bucket_key, at + emission * cost)
  on conflict (key) do update
    -- The clock is read again here, after the bucket row is locked: a call that queued
    -- behind others must not be judged by the time it arrived. (private.now() spelled
    -- out: built-in calls only, while the row is locked.)
    set tat = greatest(b.tat, coalesce(nullif(pg_catalog.current_setting('ledgerbase.now', true), '')::timestamptz,
                                       pg_catalog.clock_timestamp())) + emission * cost
    where greatest(b.tat, coalesce(nullif(pg_catalog.current_setting('ledgerbase.now', true), '')::timestamptz,
                                   pg_catalog.clock_timestamp())) + emission * cost
          <= coalesce(nullif(pg_catalog.current_setting('ledgerbase.now', true), '')::timestamptz,
                      pg_catalog.clock_timestamp()) + emission * capacity
  returning true into allowed;

  if allowed is null then
    select b.tat into current_tat from private.rate_limit_buckets b where b.key = bucket_key;
    retry_after := greatest(1, ceil(extract(epoch from
      greatest(current_tat, at) + emission * cost - emission * capacity - at))::integer);
    raise exception using
      errcode = 'PT429',
      message = 'rate_limited',
      detail = pg_catalog.jsonb_build_object('policy', policy, 'capacity', capacity,
                 'refill_per_second', refill_per_second, 'retry_after_seconds', retry_after)::text,
      hint = pg_catalog.format('retry after %s second%s', retry_after, case when retry_after = 1 then '' else 's' end);
  end if;
end
$$;
comment on function private.check_rate_limit(text, text, integer, numeric, integer) is
  'Takes `cost` cells from the bucket of (policy, subject) or raises PT429 rate_limited with the seconds to wait in the hint (and as retry_after_seconds in the JSON detail). One statement; a denied call changes nothing.';

create or replace function private.rate_limit(policy text, account_id uuid default null, plan_limits jsonb default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  p private.rate_limit_policies;
  override jsonb;
  subject text;
begin
  select * into p from private.rate_limit_policies r where r.name = policy;
  if not found then
    raise exception using errcode = '22023', message = 'invalid_input', detail = pg_catalog.format('unknown rate-limit policy %s', policy);
  end if;

  if plan_limits is null and account_id is not null then
    select ap.limits into plan_limits from private.account_plan(account_id) ap;
  end if;
  override := plan_limits -> 'rate_limits' -> policy;
  if jsonb_typeof(override) = 'object' then
    p.capacity := coalesce((override ->> 'capacity')::integer, p.capacity);
    p.refill_per_second := coalesce((override ->> 'refill_per_second')::numeric, p.refill_per_second);
  end if;

  subject := case p.scope
    when 'user' then coalesce(auth.uid()::text, 'account:' || account_id::text)
    when 'account' then coalesce(account_id::text, auth.uid()::text)
    when 'api_key' then coalesce(nullif(pg_catalog.current_setting('ledgerbase.api_key_id', true), ''), account_id::text)
    when 'ip' then private.request_ip()
  end;
  perform private.check_rate_limit(policy, coalesce(subject, 'unknown'), p.capacity, p.refill_per_second);
end
$$;
comment on function private.rate_limit(text, uuid, jsonb) is
  'Applies a named policy to the caller: the subject follows the policy scope (user, account, IP from request.headers, API key), with the overrides of the account''s plan (plan_limits when the caller has them already).';

create or replace function private.request_ip()
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select nullif(pg_catalog.btrim(pg_catalog.split_part(
      nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb ->> 'x-forwarded-for', ',', 1)), '')
  );
end
$$;
comment on function private.request_ip() is 'The client IP of the current API request (first x-forwarded-for hop), or null outside a request.';

create or replace function private.purge_rate_limit_buckets(older_than interval default interval '1 hour')
returns integer
language sql
set search_path = ''
as $$
  with gone as (
    delete from private.rate_limit_buckets b where b.tat < private.now() - older_than returning 1
  )
  select count(*)::integer from gone
$$;
comment on function private.purge_rate_limit_buckets(interval) is
  'Deletes buckets that have been full for a while (their tat is in the past): they hold no information. Run it from pg_cron.';

-- ---------------------------------------------------------------------------
-- Invitations are rate-limited per inviting user (they send e-mail)
-- ---------------------------------------------------------------------------
create or replace function private.rate_limit_invitations()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform private.rate_limit('invite_member', new.account_id);
  return new;
end
$$;
comment on function private.rate_limit_invitations() is 'Trigger: applies the invite_member rate-limit policy to every new invitation.';

create trigger account_invitations_rate_limit before insert on public.account_invitations
  for each row execute function private.rate_limit_invitations();
