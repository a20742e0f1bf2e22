-- Background work: an outbox of jobs written in the same transaction as their cause and
-- run after the commit by the dispatcher (POST /functions/v1/dispatch), and the periodic
-- SQL sweepers that pg_cron runs.
--
--   private.job_kinds            what a kind of job is: run by an edge runner or by a SQL function,
--                                its retry policy (attempts, backoff, give-up window, lease)
--   private.jobs                 the outbox
--   private.enqueue_job(...)     adds a job (idempotent by key), in the caller's transaction
--   private.claim_jobs(...)      takes due jobs with FOR UPDATE SKIP LOCKED and leases them
--   private.finish_job(...)      records an attempt: succeeded, retry later (backoff + jitter) or dead
--   private.run_sql_job(...)     runs a SQL job and records its outcome in one transaction
--   private.sweepers             the periodic SQL sweepers, one row each
--   private.schedule_sweepers()  (re)schedules them all with pg_cron
--
-- The rules (what is due, how long to wait, when to give up) live here; the dispatcher only
-- claims, runs the outside call with the job's idempotency key, and reports back.

-- ---------------------------------------------------------------------------
-- Job kinds
-- ---------------------------------------------------------------------------
create table private.job_kinds (
  kind text primary key check (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
  description text not null,
  sql_function text check (sql_function ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$'),
  max_attempts integer not null default 10 check (max_attempts between 1 and 1000),
  base_delay interval not null default interval '10 seconds' check (base_delay >= interval '0'),
  max_delay interval not null default interval '1 hour' check (max_delay >= base_delay),
  give_up_after interval check (give_up_after > interval '0'),
  lease interval not null default interval '5 minutes' check (lease > interval '0'),
  on_finish text check (on_finish ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$')
);
comment on table private.job_kinds is
  'The kinds of background job. A kind with sql_function runs in the database (private.run_sql_job); one without runs in the dispatch edge function by a runner registered under the same name.';
comment on column private.job_kinds.sql_function is
  'Schema-qualified function called as f(payload jsonb, idempotency_key text) for SQL jobs; null for jobs run by the dispatcher''s TypeScript runners.';
comment on column private.job_kinds.max_attempts is 'Attempts before the job is given up (status dead).';
comment on column private.job_kinds.base_delay is
  'Retry n waits min(max_delay, base_delay × 2^(n−1)), of which a random half is jitter.';
comment on column private.job_kinds.give_up_after is
  'Optional window from the job''s creation after which a failure is final (e.g. 3 days for webhooks); the last retry is placed at its end.';
comment on column private.job_kinds.lease is
  'How long a claimed job belongs to its dispatcher; after that, a dispatcher that stopped mid-way loses it and the job is claimed again.';
comment on column private.job_kinds.on_finish is
  'Optional function f(job jsonb) called in the transaction that records every attempt''s outcome (the job row as JSON, with its new status).';
alter table private.job_kinds enable row level security;
create policy "Clients never access job kinds" on private.job_kinds
  as restrictive for all to anon, authenticated using (false) with check (false);

-- ---------------------------------------------------------------------------
-- The outbox
-- ---------------------------------------------------------------------------
create table private.jobs (
  id bigint generated always as identity primary key,
  kind text not null references private.job_kinds (kind) on update cascade,
  payload jsonb not null default '{}'::jsonb check (jsonb_typeof(payload) = 'object'),
  idempotency_key text not null unique check (char_length(idempotency_key) between 1 and 255),
  status text not null default 'pending' check (status in ('pending', 'running', 'succeeded', 'dead')),
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null check (max_attempts >= 1),
  run_at timestamptz not null,
  give_up_at timestamptz,
  last_error text,
  result jsonb,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  finished_at timestamptz
);
comment on table private.jobs is
  'The outbox: work to do after a commit, written in the transaction of its cause (so a rolled-back cause leaves no job). The dispatcher claims due rows with FOR UPDATE SKIP LOCKED.';
comment on column private.jobs.idempotency_key is
  'Unique per job: enqueueing the same key twice makes one job; runners pass it to the outside call (the webhook-id, a Stripe Idempotency-Key) so a retried attempt never acts twice.';
comment on column private.jobs.run_at is
  'When the job is next due: for pending jobs the next attempt, for running jobs the end of the lease.';
comment on column private.jobs.last_error is 'Why the last failed attempt failed (kept after a later success, for the record).';
create index jobs_due_idx on private.jobs (run_at) where status in ('pending', 'running');
create index jobs_kind_idx on private.jobs (kind);
alter table private.jobs enable row level security;
create policy "Clients never access jobs" on private.jobs
  as restrictive for all to anon, authenticated using (false) with check (false);

-- ---------------------------------------------------------------------------
-- Enqueue
-- ---------------------------------------------------------------------------
create or replace function private.enqueue_job(
  kind text,
  payload jsonb default '{}'::jsonb,
  idempotency_key text default null,
  run_at timestamptz default null
) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  k private.job_kinds;
  at timestamptz := private.now();
  key text := coalesce(enqueue_job.idempotency_key, enqueue_job.kind || ':' || extensions.gen_random_uuid());
  job_id bigint;
begin
  select * into k from private.job_kinds jk where jk.kind = enqueue_job.kind;
  if k.kind is null then
    raise exception using errcode = '22023', message = 'invalid_input',
      detail = pg_catalog.format('unknown job kind %L (see private.job_kinds)', enqueue_job.kind);
  end if;
  insert into private.jobs (kind, payload, idempotency_key, max_attempts, run_at, give_up_at, created_at, updated_at)
  values (k.kind, coalesce(enqueue_job.payload, '{}'::jsonb), key, k.max_attempts,
          coalesce(enqueue_job.run_at, at), at + k.give_up_after, at, at)
  on conflict on constraint jobs_idempotency_key_key do nothing
  returning id into job_id;
  if job_id is null then
    select j.id into job_id from private.jobs j where j.idempotency_key = key;
  end if;
  return job_id;
end
$$;
comment on function private.enqueue_job(text, jsonb, text, timestamptz) is
  'Adds a job to the outbox in the caller''s transaction and returns its id; the same idempotency key returns the existing job instead of a second one. Raises 22023 for an unknown kind.';

-- ---------------------------------------------------------------------------
-- Backoff
-- ---------------------------------------------------------------------------
create or replace function private.job_backoff(base_delay interval, max_delay interval, attempt integer)
returns interval
language plpgsql
volatile
set search_path = ''
as $$
declare
  full_delay interval := least(job_backoff.max_delay,
    job_backoff.base_delay * power(2, least(greatest(job_backoff.attempt, 1) - 1, 30)));
begin
  -- "Equal jitter": half of the delay is fixed, the other half random, so retries of jobs
  -- that failed together spread out and never come back sooner than half the backoff.
  return full_delay / 2 + full_delay / 2 * pg_catalog.random();
end
$$;
comment on function private.job_backoff(interval, interval, integer) is
  'The wait before retry n: d = min(max_delay, base_delay × 2^(n−1)), returned as d/2 + random × d/2 (exponential backoff with jitter).';

-- ---------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------
create or replace function private.claim_jobs(max_jobs integer default 10, kinds text[] default null)
returns table (id bigint, kind text, payload jsonb, attempt integer, idempotency_key text, sql_function text)
language plpgsql
set search_path = ''
as $$
declare
  at timestamptz := private.now();
begin
  -- A job whose dispatcher stopped during its last allowed attempt (lease over) is dead.
  with lost as (
    select j.id from private.jobs j
    where j.status = 'running' and j.run_at <= at and j.attempts >= j.max_attempts
      and (claim_jobs.kinds is null or j.kind = any (claim_jobs.kinds))
    for update skip locked
  )
  update private.jobs j
  set status = 'dead', finished_at = at, updated_at = at,
      last_error = coalesce(j.last_error || ' / ', '') || 'the dispatcher stopped before the last attempt finished (lease expired)'
  from lost where j.id = lost.id;

  return query
  with due as (
    select j.id from private.jobs j
    where j.status in ('pending', 'running') and j.run_at <= at
      and (claim_jobs.kinds is null or j.kind = any (claim_jobs.kinds))
    order by j.run_at, j.id
    for update skip locked
    limit greatest(least(claim_jobs.max_jobs, 1000), 0)
  )
  update private.jobs j
  set status = 'running', attempts = j.attempts + 1, run_at = at + k.lease, updated_at = at
  from due, private.job_kinds k
  where j.id = due.id and k.kind = j.kind
  returning j.id, j.kind, j.payload, j.attempts, j.idempotency_key, k.sql_function;
end
$$;
comment on function private.claim_jobs(integer, text[]) is
  'Claims up to max_jobs due jobs (optionally of the given kinds) with FOR UPDATE SKIP LOCKED, so concurrent dispatchers never take the same job; each is leased for its kind''s lease and its attempt number returned. The attempt number is the claim''s token for finish_job.';

-- ---------------------------------------------------------------------------
-- Finish an attempt
-- ---------------------------------------------------------------------------
create or replace function private.finish_job(
  job_id bigint,
  attempt integer,
  succeeded boolean,
  error text default null,
  result jsonb default null
) returns text
language plpgsql
set search_path = ''
as $$
declare
  job private.jobs;
  k private.job_kinds;
  at timestamptz := private.now();
  next_run timestamptz;
begin
  select * into job from private.jobs j where j.id = finish_job.job_id for update;
  -- Only the claim that holds the lease may finish: a late report from a dispatcher whose
  -- lease expired (and whose job was claimed again) changes nothing.
  if job.id is null or job.status <> 'running' or job.attempts <> finish_job.attempt then
    return 'stale';
  end if;
  select * into k from private.job_kinds jk where jk.kind = job.kind;

  if finish_job.succeeded then
    update private.jobs j
    set status = 'succeeded', result = finish_job.result, finished_at = at, updated_at = at
    where j.id = job.id
    returning * into job;
  elsif job.attempts >= job.max_attempts or (job.give_up_at is not null and at >= job.give_up_at) then
    update private.jobs j
    set status = 'dead', result = finish_job.result, finished_at = at, updated_at = at,
        last_error = left(coalesce(finish_job.error, 'failed'), 2000)
    where j.id = job.id
    returning * into job;
  else
    next_run := at + private.job_backoff(k.base_delay, k.max_delay, job.attempts);
    if job.give_up_at is not null then
      next_run := least(next_run, job.give_up_at);
    end if;
    update private.jobs j
    set status = 'pending', result = finish_job.result, run_at = next_run, updated_at = at,
        last_error = left(coalesce(finish_job.error, 'failed'), 2000)
    where j.id = job.id
    returning * into job;
  end if;

  if k.on_finish is not null then
    execute pg_catalog.format('select %s($1)', k.on_finish) using pg_catalog.to_jsonb(job);
  end if;
  return job.status;
end
$$;
comment on function private.finish_job(bigint, integer, boolean, text, jsonb) is
  'Records the outcome of the claimed attempt and returns the job''s new status: succeeded; pending (retried after private.job_backoff, never past give_up_at); dead (attempts used up or the window over, with the error kept); stale when the claim no longer holds the job. Calls the kind''s on_finish in the same transaction.';

-- ---------------------------------------------------------------------------
-- SQL jobs
-- ---------------------------------------------------------------------------
create or replace function private.run_sql_job(job_id bigint, attempt integer)
returns text
language plpgsql
set search_path = ''
as $$
declare
  job private.jobs;
  fn text;
  failure text;
begin
  select j.* into job from private.jobs j where j.id = run_sql_job.job_id for update;
  if job.id is null or job.status <> 'running' or job.attempts <> run_sql_job.attempt then
    return 'stale';
  end if;
  select k.sql_function into fn from private.job_kinds k where k.kind = job.kind;
  if fn is null then
    return private.finish_job(job.id, job.attempts, false, pg_catalog.format('job kind %L has no sql_function', job.kind));
  end if;
  begin
    -- The work and the record of its success commit together: a SQL job runs once.
    execute pg_catalog.format('select %s($1, $2)', fn) using job.payload, job.idempotency_key;
    return private.finish_job(job.id, job.attempts, true);
  exception when others then
    get stacked diagnostics failure = message_text;
  end;
  return private.finish_job(job.id, job.attempts, false, failure);
end
$$;
comment on function private.run_sql_job(bigint, integer) is
  'Runs a claimed SQL job (its kind''s sql_function with payload and idempotency key) and records the outcome in the same transaction; an error rolls the work back and counts as a failed attempt.';

-- ---------------------------------------------------------------------------
-- Periodic SQL sweepers (pg_cron)
-- ---------------------------------------------------------------------------
create table private.sweepers (
  name text primary key check (name ~ '^[a-z][a-z0-9-]*$'),
  schedule text not null,
  function_name text not null check (function_name ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$'),
  description text
);
comment on table private.sweepers is
  'The periodic SQL sweepers, one row each: pg_cron runs `select <function_name>()` on <schedule> (cron syntax, or `N seconds`) as job ledgerbase-<name>. private.schedule_sweepers() applies this list; a row whose function does not exist yet is skipped.';
alter table private.sweepers enable row level security;
create policy "Clients never access sweepers" on private.sweepers
  as restrictive for all to anon, authenticated using (false) with check (false);

insert into private.sweepers (name, schedule, function_name, description) values
  ('expire-credit-grants', '* * * * *', 'private.expire_credit_grants', 'Writes expire ledger entries for lots past their expiry.'),
  ('release-expired-holds', '* * * * *', 'private.release_expired_holds', 'Releases credit holds past their TTL.'),
  ('purge-rate-limit-buckets', '17 * * * *', 'private.purge_rate_limit_buckets', 'Deletes rate-limit buckets idle for an hour.'),
  ('seal-audit-log', '10 seconds', 'private.seal_audit_log', 'Seals new audit entries into the hash chain (the bound on how long an entry stays unsealed).'),
  ('publish-audit-head', '0 6 * * *', 'private.publish_audit_head', 'Writes the audit chain head to the server log once a day, for anchoring elsewhere.')
on conflict (name) do nothing;

create or replace function private.schedule_sweepers()
returns table (job_name text, schedule text, command text, scheduled boolean)
language plpgsql
set search_path = ''
as $$
declare
  s private.sweepers;
  stale text;
  -- Looked up, not written out: the function must compile where pg_cron is not installed.
  cron_schema text := (select n.nspname from pg_catalog.pg_namespace n where n.nspname = 'cron');
  -- pg_cron takes `N seconds` from 1.5 on (hosted Supabase); older builds (Debian's 1.4) get
  -- every minute instead.
  takes_seconds boolean := coalesce((select pg_catalog.string_to_array(pg_catalog.substring(e.extversion, '^[0-9]+\.[0-9]+'), '.')::int[] >= array[1, 5]
                                       from pg_catalog.pg_extension e where e.extname = 'pg_cron'), false);
begin
  if cron_schema is null then
    raise exception using errcode = '55000', message = 'pg_cron is not installed',
      hint = 'enable it first: create extension pg_cron (Dashboard > Database > Extensions on a hosted project; npm start does it locally)';
  end if;
  for s in select * from private.sweepers order by name loop
    job_name := 'ledgerbase-' || s.name;
    schedule := case when s.schedule ~ 'seconds$' and not takes_seconds then '* * * * *' else s.schedule end;
    command := pg_catalog.format('select %s()', s.function_name);
    scheduled := exists (
      select from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
      where n.nspname || '.' || p.proname = s.function_name);
    if scheduled then
      execute pg_catalog.format('select %I.schedule($1, $2, $3)', cron_schema) using job_name, schedule, command;
    end if;
    return next;
  end loop;
  -- Sweepers removed from the list stop running.
  for stale in
    execute pg_catalog.format('select jobname from %I.job where jobname like ''ledgerbase-%%'' and jobname <> ''ledgerbase-dispatch''
             and substr(jobname, 12) not in (select name from private.sweepers)', cron_schema)
  loop
    execute pg_catalog.format('select %I.unschedule($1)', cron_schema) using stale;
  end loop;
end
$$;
comment on function private.schedule_sweepers() is
  'Schedules every row of private.sweepers with pg_cron (cron.schedule, so re-running updates them), skips rows whose function does not exist yet, runs `N seconds` schedules every minute on pg_cron before 1.5, unschedules ledgerbase-* jobs no longer listed, and returns what it did. Raises 55000 when pg_cron is not installed.';
