-- Scheduling the sweepers: only jobs that can run, and only the caller's own.
--
-- private.schedule_sweepers() now
--   * unschedules the job of a listed sweeper whose function no longer exists, as it never
--     schedules one whose function does not exist yet: a row reported `scheduled = false` has
--     no job, instead of a job that fails on every run;
--   * unschedules only the caller's own stale `ledgerbase-*` jobs. postgres bypasses row-level
--     security, so it saw another role's `ledgerbase-*` job, and cron.unschedule, which acts on
--     the caller's jobs alone, failed on it and stopped the whole call.
--
-- Upgrade: replaces the function; no data changes. Re-run `select * from
-- private.schedule_sweepers();` to apply it to existing jobs.

create or replace function private.schedule_sweepers()
returns table (job_name text, schedule text, command text, scheduled boolean)
language plpgsql
set search_path = ''
as $$
declare
  s private.sweepers;
  stale text;
  -- The jobs this call leaves in place: those of the listed sweepers it scheduled.
  kept text[] := '{}';
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
      kept := kept || job_name;
    end if;
    return next;
  end loop;
  -- The caller's other ledgerbase-* jobs stop running: sweepers removed from the list, or whose
  -- function is gone. The dispatcher's job is scheduled by hand (README) and stays; another
  -- role's jobs are that role's to remove (cron.unschedule acts on the caller's jobs only).
  for stale in
    execute pg_catalog.format('select j.jobname from %I.job j where j.jobname like ''ledgerbase-%%''
             and j.jobname <> ''ledgerbase-dispatch'' and j.username = current_user and j.jobname <> all ($1)', cron_schema)
      using kept
  loop
    execute pg_catalog.format('select %I.unschedule($1)', cron_schema) using stale;
  end loop;
end
$$;
comment on function private.schedule_sweepers() is
  'Schedules every row of private.sweepers with pg_cron (cron.schedule, so re-running updates them), skips rows whose function does not exist (and unschedules their job), runs `N seconds` schedules every minute on pg_cron before 1.5, unschedules the caller''s other ledgerbase-* jobs (sweepers no longer listed; never ledgerbase-dispatch), and returns what it did. Raises 55000 when pg_cron is not installed.';
