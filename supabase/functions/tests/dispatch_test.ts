/**
 * Story: work that must happen after a commit goes through the outbox (private.jobs) and
 * the dispatch function. Test-only job kinds are registered in private.job_kinds, their
 * runners injected into the dispatcher, and each test dispatches only its own kind.
 * Proved: retries run the side effect once (the idempotency key), parallel dispatchers
 * never share a job, a job out of attempts is dead with its error, a rolled-back cause
 * leaves no job, and only the secret opens the endpoint.
 */
import { createDb, type Sql } from "../_shared/db.ts";
import { createDispatchHandler, dispatch } from "../dispatch/handler.ts";
import type { ClaimedJob, Runner } from "../dispatch/jobs.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { TEST_DB_URL } from "./_support/tokens.ts";

const SECRET = "dispatch-secret-for-tests-0123456789abcdef";

/** Registers a job kind for one test, runs it, then removes the kind and its jobs. */
async function withKind(
  kind: string,
  policy: { maxAttempts?: number; baseDelay?: string; sqlFunction?: string },
  fn: (sql: Sql) => Promise<void>,
): Promise<void> {
  const sql = createDb(TEST_DB_URL, { max: 4 });
  try {
    await sql`
      insert into private.job_kinds (kind, description, sql_function, max_attempts, base_delay, max_delay)
      values (${kind}, 'test kind', ${policy.sqlFunction ?? null}, ${policy.maxAttempts ?? 10},
              ${policy.baseDelay ?? "0 seconds"}::interval, '1 hour')`;
    await fn(sql);
  } finally {
    await sql`delete from private.jobs where kind = ${kind}`;
    await sql`delete from private.job_kinds where kind = ${kind}`;
    await sql.end();
  }
}

async function enqueue(sql: Sql, kind: string, key: string, payload: Record<string, unknown> = {}): Promise<number> {
  const [row] = await sql`select private.enqueue_job(${kind}, ${JSON.stringify(payload)}::text::jsonb, ${key}) as id`;
  return Number(row.id);
}

async function jobRow(sql: Sql, key: string) {
  const [row] =
    await sql`select status, attempts, last_error, run_at > clock_timestamp() as later from private.jobs where idempotency_key = ${key}`;
  return row;
}

Deno.test("a job that fails twice then succeeds runs its side effect once", async () => {
  await withKind("test.flaky", {}, async (sql) => {
    // The outside service dedupes by idempotency key, as Stripe and webhook receivers do.
    const performed = new Map<string, number>();
    const keysSeen: string[] = [];
    const runner: Runner = (job: ClaimedJob) => {
      keysSeen.push(job.idempotency_key);
      if (job.attempt === 1) {
        performed.set(job.idempotency_key, (performed.get(job.idempotency_key) ?? 0) + 1);
        throw new Error("the answer was lost after the call went through");
      }
      if (job.attempt === 2) throw new Error("the service is down");
      if (!performed.has(job.idempotency_key)) performed.set(job.idempotency_key, 1);
      return Promise.resolve({ ok: true });
    };
    await enqueue(sql, "test.flaky", "flaky-1");
    const summary = await dispatch(sql, { runners: { "test.flaky": runner }, kinds: ["test.flaky"] });
    assertEquals(summary, { claimed: 3, succeeded: 1, retrying: 2, dead: 0, stale: 0 });
    assertEquals(keysSeen, ["flaky-1", "flaky-1", "flaky-1"], "every attempt carries the same idempotency key");
    assertEquals(performed.get("flaky-1"), 1, "the side effect happened once");
    const row = await jobRow(sql, "flaky-1");
    assertEquals([row.status, row.attempts, row.last_error], ["succeeded", 3, "the service is down"]);
  });
});

Deno.test("a failed attempt waits for its backoff before the next", async () => {
  await withKind("test.backoff", { baseDelay: "1 minute" }, async (sql) => {
    let calls = 0;
    const runner: Runner = () => {
      calls++;
      return Promise.resolve({ ok: false, error: "HTTP 503" });
    };
    await enqueue(sql, "test.backoff", "backoff-1");
    await dispatch(sql, { runners: { "test.backoff": runner }, kinds: ["test.backoff"] });
    await dispatch(sql, { runners: { "test.backoff": runner }, kinds: ["test.backoff"] });
    assertEquals(calls, 1, "the second dispatch found nothing due");
    const [row] = await sql`
      select status, extract(epoch from run_at - updated_at) as wait from private.jobs where idempotency_key = 'backoff-1'`;
    assertEquals(row.status, "pending");
    assert(
      Number(row.wait) >= 30 && Number(row.wait) <= 60,
      `the first retry waits 30–60 s (half fixed, half jitter), not ${row.wait}`,
    );
  });
});

Deno.test("two dispatchers in parallel never run one job twice", async () => {
  await withKind("test.parallel", {}, async (sql) => {
    const ran: number[] = [];
    const runner: Runner = async (job) => {
      ran.push(job.id);
      await new Promise((r) => setTimeout(r, 5));
      return { ok: true };
    };
    for (let i = 0; i < 60; i++) await enqueue(sql, "test.parallel", `parallel-${i}`);
    const a = createDb(TEST_DB_URL, { max: 3 });
    const b = createDb(TEST_DB_URL, { max: 3 });
    try {
      const deps = { runners: { "test.parallel": runner }, kinds: ["test.parallel"], batchSize: 4 };
      const [sa, sb] = await Promise.all([dispatch(a, deps), dispatch(b, deps)]);
      assertEquals(sa.claimed + sb.claimed, 60, "together they claimed every job");
      assert(sa.claimed > 0 && sb.claimed > 0, "both dispatchers took part");
    } finally {
      await a.end();
      await b.end();
    }
    assertEquals(ran.length, 60);
    assertEquals(new Set(ran).size, 60, "no job ran twice");
    const [row] =
      await sql`select count(*)::int as done from private.jobs where kind = 'test.parallel' and status = 'succeeded' and attempts = 1`;
    assertEquals(row.done, 60);
  });
});

Deno.test("a job past its attempts is marked dead with its error", async () => {
  await withKind("test.doomed", { maxAttempts: 3 }, async (sql) => {
    const runner: Runner = (job) => Promise.resolve({ ok: false, error: `boom on attempt ${job.attempt}` });
    await enqueue(sql, "test.doomed", "doomed-1");
    const summary = await dispatch(sql, { runners: { "test.doomed": runner }, kinds: ["test.doomed"] });
    assertEquals(summary, { claimed: 3, succeeded: 0, retrying: 2, dead: 1, stale: 0 });
    const row = await jobRow(sql, "doomed-1");
    assertEquals([row.status, row.attempts, row.last_error], ["dead", 3, "boom on attempt 3"]);
    assertEquals(
      (await dispatch(sql, { runners: { "test.doomed": runner }, kinds: ["test.doomed"] })).claimed,
      0,
      "a dead job is never claimed again",
    );
  });
});

Deno.test("jobs written in a rolled-back transaction never run", async () => {
  await withKind("test.rollback", {}, async (sql) => {
    const ran: string[] = [];
    const runner: Runner = (job) => {
      ran.push(job.idempotency_key);
      return Promise.resolve({ ok: true });
    };
    await sql.begin(async (tx) => {
      await tx`select private.enqueue_job('test.rollback', '{}', 'rolled-back')`;
      throw new Error("the cause failed");
    }).catch(() => {});
    await enqueue(sql, "test.rollback", "committed");
    await dispatch(sql, { runners: { "test.rollback": runner }, kinds: ["test.rollback"] });
    assertEquals(ran, ["committed"], "only the committed job ran");
  });
});

Deno.test("a SQL job's work and its success commit together; a failing one rolls back and retries", async () => {
  const sql = createDb(TEST_DB_URL, { max: 2 });
  await sql`create table if not exists private.test_sql_job_effects (key text primary key)`;
  await sql`
    create or replace function private.test_sql_job(payload jsonb, idempotency_key text) returns void
    language plpgsql set search_path = '' as $$
    begin
      insert into private.test_sql_job_effects (key) values (idempotency_key);
      if (payload ->> 'fail')::boolean then
        raise exception 'refused by the test';
      end if;
    end $$`;
  try {
    await withKind("test.sql", { sqlFunction: "private.test_sql_job", maxAttempts: 2 }, async (sql) => {
      await enqueue(sql, "test.sql", "sql-ok", { fail: false });
      await enqueue(sql, "test.sql", "sql-bad", { fail: true });
      const summary = await dispatch(sql, { runners: {}, kinds: ["test.sql"] });
      assertEquals(summary, { claimed: 3, succeeded: 1, retrying: 1, dead: 1, stale: 0 });
      const effects = await sql`select key from private.test_sql_job_effects order by key`;
      assertEquals(effects.map((r) => r.key), ["sql-ok"], "the failed job's work was rolled back");
      const bad = await jobRow(sql, "sql-bad");
      assertEquals([bad.status, bad.last_error], ["dead", "refused by the test"]);
    });
  } finally {
    await sql`drop function private.test_sql_job(jsonb, text)`;
    await sql`drop table private.test_sql_job_effects`;
    await sql.end();
  }
});

Deno.test("the dispatch endpoint opens only with DISPATCH_SECRET", async () => {
  const sql = createDb(TEST_DB_URL, { max: 1 });
  try {
    const env = { get: (name: string) => (name === "DISPATCH_SECRET" ? SECRET : undefined) };
    const handler = createDispatchHandler({ env, sql, kinds: ["test.none"] });
    const call = (authorization?: string) =>
      handler(
        new Request("http://127.0.0.1:54321/dispatch", {
          method: "POST",
          headers: authorization ? { authorization } : {},
        }),
      );
    assertEquals((await call()).status, 401, "no secret");
    assertEquals((await call(`Bearer ${SECRET}x`)).status, 401, "a wrong secret");
    const userJwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYXV0aGVudGljYXRlZCJ9.c2ln";
    assertEquals((await call(`Bearer ${userJwt}`)).status, 401, "a user JWT is not the secret");
    const ok = await call(`Bearer ${SECRET}`);
    assertEquals(ok.status, 200);
    assertEquals(await ok.json(), { claimed: 0, succeeded: 0, retrying: 0, dead: 0, stale: 0 });
    const unconfigured = createDispatchHandler({ env: { get: () => undefined }, sql });
    const res = await unconfigured(
      new Request("http://x/dispatch", { method: "POST", headers: { authorization: "Bearer x" } }),
    );
    assertEquals([res.status, (await res.json()).error.code], [500, "dispatch_not_configured"]);
  } finally {
    await sql.end();
  }
});
