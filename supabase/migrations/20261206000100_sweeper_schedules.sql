-- Sweeper schedules: the audit sealer every 10 seconds, and the daily audit head.
--
-- The audit chain's README promise (an entry is sealed within seconds) needs the sealer to run
-- more often than every minute: pg_cron takes `N seconds` schedules from version 1.5 (hosted
-- Supabase); where an older pg_cron runs (Debian's 1.4), private.schedule_sweepers() schedules
-- those every minute instead. private.publish_audit_head() logs the chain head once a day, for
-- anchoring elsewhere. Existing projects re-run `select * from private.schedule_sweepers()`.

comment on table private.sweepers is
  'The periodic SQL sweepers, one row each: pg_cron runs `select <function_name>()` on <schedule> (cron syntax, or `N seconds`) as job ledgerbase-<name>. private.schedule_sweepers() applies this list; a row whose function does not exist yet is skipped.';

update private.sweepers
   set schedule = '10 seconds',
       description = 'Seals new audit entries into the hash chain (the bound on how long an entry stays unsealed).'
 where name = 'seal-audit-log' and schedule = '* * * * *';
insert into private.sweepers (name, schedule, function_name, description) values
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
