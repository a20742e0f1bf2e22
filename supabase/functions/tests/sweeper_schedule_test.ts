/**
 * Story: Olivia the operator enables background work. She enables pg_cron and runs
 * `select * from private.schedule_sweepers();` as `postgres`, as the README says, and again after each
 * migration that adds a sweeper. Proved against the real pg_cron that `npm test` loads in its cluster
 * (as `npm start` does): every row of private.sweepers becomes one cron job with its name, schedule and
 * command, `N seconds` runs every minute where the installed pg_cron cannot take seconds, re-running
 * updates in place, a sweeper whose function does not exist has no job, stale `ledgerbase-*` jobs go
 * while `ledgerbase-dispatch` and other jobs stay, every scheduled command runs as its job's owner,
 * and without pg_cron the call stops with 55000 and says how to enable it.
 *
 * The extension is created as `npm start` creates it (supabase_admin, CRON_SETUP_SQL) inside a
 * transaction that each test rolls back: no job ever reaches the scheduler, so nothing runs in the
 * background of the test database.
 */
import postgres from "postgres";
import { CRON_SETUP_SQL } from "../../../scripts/lib/cron.ts";
import { root } from "../../../scripts/lib/paths.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { TEST_DB_URL } from "./_support/tokens.ts";

type Tx = postgres.TransactionSql;

interface Sweeper {
  name: string;
  schedule: string;
  function_name: string;
}

interface CronJob {
  jobid: number;
  jobname: string;
  schedule: string;
  command: string;
  username: string;
  database: string;
  active: boolean;
}

class RolledBack extends Error {}

/** The cluster superuser, who creates pg_cron on Supabase and in `npm start`. */
function adminUrl(): string {
  const url = new URL(TEST_DB_URL);
  url.username = "supabase_admin";
  return url.toString();
}

/**
 * Runs `story` in one transaction that is always rolled back: pg_cron created (unless `withCron` is
 * false, then dropped if present), then acting as `postgres`, Olivia's role.
 */
async function asOlivia(story: (tx: Tx) => Promise<void>, withCron = true): Promise<void> {
  const sql = postgres(adminUrl(), { max: 1, prepare: false, onnotice: () => {}, connect_timeout: 30 });
  try {
    await sql.begin(async (tx) => {
      await tx.unsafe(withCron ? CRON_SETUP_SQL : "drop extension if exists pg_cron");
      await tx`set local role postgres`;
      await story(tx);
      throw new RolledBack();
    });
  } catch (error) {
    if (!(error instanceof RolledBack)) throw error;
  } finally {
    await sql.end();
  }
}

async function sweepers(tx: Tx): Promise<Sweeper[]> {
  return [...await tx<Sweeper[]>`select name, schedule, function_name from private.sweepers order by name`];
}

async function ledgerbaseJobs(tx: Tx): Promise<CronJob[]> {
  return [
    ...await tx<CronJob[]>`
    select jobid::int, jobname, schedule, command, username, database, active
      from cron.job where jobname like 'ledgerbase-%' order by jobname, username`,
  ];
}

/** Whether the installed pg_cron takes `N seconds` schedules (1.5 and later), read from the database. */
async function takesSeconds(tx: Tx): Promise<boolean> {
  const [{ extversion }] = await tx<{ extversion: string }[]>`
    select extversion from pg_catalog.pg_extension where extname = 'pg_cron'`;
  const [major, minor] = extversion.split(/[.-]/).map(Number);
  return major > 1 || (major === 1 && minor >= 5);
}

/** The job a sweeper should have on the installed pg_cron. */
function expectedJob(s: Sweeper, seconds: boolean) {
  return {
    jobname: `ledgerbase-${s.name}`,
    schedule: /seconds$/.test(s.schedule) && !seconds ? "* * * * *" : s.schedule,
    command: `select ${s.function_name}()`,
  };
}

async function schedule(tx: Tx) {
  return [
    ...await tx<{ job_name: string; schedule: string; command: string; scheduled: boolean }[]>`
    select job_name, schedule, command, scheduled from private.schedule_sweepers()`,
  ];
}

Deno.test("Olivia schedules the sweepers: each row of private.sweepers becomes one cron job of hers", async () => {
  await asOlivia(async (tx) => {
    const list = await sweepers(tx);
    assert(list.length >= 5, "the sweepers of the migrations are listed");
    assert(list.some((s) => /seconds$/.test(s.schedule)), "the list has a `N seconds` sweeper (the audit sealer)");
    const seconds = await takesSeconds(tx);
    const expected = list.map((s) => expectedJob(s, seconds));

    const reported = await schedule(tx);
    assertEquals(
      reported,
      expected.map((e) => ({ job_name: e.jobname, schedule: e.schedule, command: e.command, scheduled: true })),
      "the function reports what it scheduled",
    );
    const [{ database }] = await tx<{ database: string }[]>`select current_database() as database`;
    assertEquals(
      (await ledgerbaseJobs(tx)).map(({ jobname, schedule, command, username, database, active }) => ({
        jobname,
        schedule,
        command,
        username,
        database,
        active,
      })),
      expected.map((e) => ({ ...e, username: "postgres", database, active: true })),
      "one active job per sweeper, owned by postgres, in this database",
    );
  });
});

Deno.test("Olivia runs it again after a migration: one job per sweeper, updated in place", async () => {
  await asOlivia(async (tx) => {
    await schedule(tx);
    const first = await ledgerbaseJobs(tx);
    await schedule(tx);
    assertEquals(await ledgerbaseJobs(tx), first, "a second run changes nothing and duplicates nothing");

    // A later migration moves the purge to another minute: the same job takes the new schedule.
    await tx`update private.sweepers set schedule = '47 * * * *' where name = 'purge-rate-limit-buckets'`;
    await schedule(tx);
    const after = await ledgerbaseJobs(tx);
    const purge = (jobs: CronJob[]) => jobs.find((j) => j.jobname === "ledgerbase-purge-rate-limit-buckets");
    assertEquals(purge(after), { ...purge(first)!, schedule: "47 * * * *" }, "same job id, new schedule");
    assertEquals(after.length, first.length);
  });
});

Deno.test("a sweeper whose function does not exist is reported unscheduled and has no job", async () => {
  await asOlivia(async (tx) => {
    // A row listed before the migration that brings its function.
    await tx`insert into private.sweepers (name, schedule, function_name)
             values ('compact-ledger', '*/5 * * * *', 'private.compact_ledger')`;
    // And one whose function existed when Olivia scheduled it, then was dropped.
    await tx`create function private.sweep_trial_ends() returns void language sql set search_path = '' as 'select'`;
    await tx`insert into private.sweepers (name, schedule, function_name)
             values ('sweep-trial-ends', '*/5 * * * *', 'private.sweep_trial_ends')`;
    const before = await schedule(tx);
    assertEquals(before.find((r) => r.job_name === "ledgerbase-sweep-trial-ends")?.scheduled, true);
    await tx`drop function private.sweep_trial_ends()`;

    const reported = await schedule(tx);
    for (const name of ["ledgerbase-compact-ledger", "ledgerbase-sweep-trial-ends"]) {
      assertEquals(reported.find((r) => r.job_name === name)?.scheduled, false, `${name} is reported not scheduled`);
    }
    const jobs = (await ledgerbaseJobs(tx)).map((j) => j.jobname);
    assert(!jobs.includes("ledgerbase-compact-ledger"), "no job for a function that never existed");
    assert(!jobs.includes("ledgerbase-sweep-trial-ends"), "no job left calling a function that is gone");
    assertEquals(reported.filter((r) => r.scheduled).length, jobs.length, "the other sweepers are scheduled");
  });
});

Deno.test("stale ledgerbase jobs are unscheduled; the dispatcher, other jobs and other roles' jobs stay", async () => {
  await asOlivia(async (tx) => {
    // A sweeper of an earlier release, the README's dispatcher job (every minute where pg_cron
    // takes no seconds), and Olivia's own nightly report.
    await tx`select cron.schedule('ledgerbase-old', '* * * * *', 'select 1')`;
    await tx`select cron.schedule('ledgerbase-dispatch', '* * * * *', 'select 1')`;
    await tx`select cron.schedule('nightly-report', '0 3 * * *', 'select 1')`;
    // A job another role named ledgerbase-*: postgres sees it (it bypasses RLS) but cannot unschedule it.
    await tx`reset role`;
    await tx`select cron.schedule('ledgerbase-archive', '0 4 * * *', 'select 1')`;
    await tx`set local role postgres`;

    await schedule(tx);
    const names = (await tx<{ jobname: string; username: string }[]>`
      select jobname, username from cron.job where jobname not like 'ledgerbase-%' or jobname in
        ('ledgerbase-old', 'ledgerbase-dispatch', 'ledgerbase-archive') order by jobname`)
      .map((j) => `${j.jobname} (${j.username})`);
    assertEquals(names, [
      "ledgerbase-archive (supabase_admin)",
      "ledgerbase-dispatch (postgres)",
      "nightly-report (postgres)",
    ]);
  });
});

Deno.test("every scheduled command runs without error as its job's owner", async () => {
  await asOlivia(async (tx) => {
    await schedule(tx);
    const jobs = await ledgerbaseJobs(tx);
    assert(jobs.length >= 5);
    const failures: string[] = [];
    for (const job of jobs) {
      // pg_cron opens a session as the job's user in the job's database: that role, with its settings.
      await tx.unsafe(`set local role ${job.username}`);
      await tx`
        select pg_catalog.set_config(split_part(setting, '=', 1), substr(setting, strpos(setting, '=') + 1), true)
          from pg_catalog.pg_db_role_setting s, unnest(s.setconfig) setting
         where s.setrole = ${job.username}::regrole
           and s.setdatabase in (0, (select oid from pg_catalog.pg_database where datname = ${job.database}))`;
      try {
        await tx.savepoint((sp) => sp.unsafe(job.command));
      } catch (error) {
        failures.push(`${job.jobname}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    assertEquals(failures, []);
  });
});

Deno.test("without pg_cron, scheduling stops with 55000 and says how to enable it", async () => {
  await asOlivia(async (tx) => {
    const error = await tx`select * from private.schedule_sweepers()`.then(() => null, (e) => e);
    assert(error instanceof postgres.PostgresError, "the call fails");
    assertEquals(error.code, "55000");
    assertEquals(error.message, "pg_cron is not installed");
    assert(error.hint?.includes("create extension pg_cron"), error.hint);
  }, false);
});

Deno.test("the README's cron.schedule lines for hosted projects are what private.schedule_sweepers() does there", async () => {
  const readme = await Deno.readTextFile(`${root}/README.md`);
  const lines = [...readme.matchAll(/^select cron\.schedule\('(ledgerbase-[a-z0-9-]+)', '([^']+)', '([^']+)'\);$/gm)]
    .map((m) => ({ jobname: m[1], schedule: m[2], command: m[3] }))
    .sort((a, b) => a.jobname < b.jobname ? -1 : 1);
  await asOlivia(async (tx) => {
    // Hosted projects run pg_cron 1.5 or later: `N seconds` as listed.
    assertEquals(lines, (await sweepers(tx)).map((s) => expectedJob(s, true)));
  });
});
