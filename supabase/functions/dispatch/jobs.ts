/**
 * The dispatcher's view of the outbox: a claimed job, what a runner answers, and the SQL
 * calls that claim and finish jobs. The rules (what is due, backoff, give-up) are in SQL
 * (private.claim_jobs, private.finish_job); this file only carries their results.
 */
import { z } from "zod";
import type { Sql } from "../_shared/db.ts";
import type { StripeClient } from "../_shared/stripe.ts";
import type { PinnedRequest } from "./pinned_request.ts";

export const claimedJob = z.object({
  id: z.coerce.number().int(),
  kind: z.string(),
  payload: z.record(z.string(), z.unknown()),
  attempt: z.number().int().positive(),
  idempotency_key: z.string(),
  sql_function: z.string().nullable(),
});
export type ClaimedJob = z.infer<typeof claimedJob>;

/** What a runner reports for one attempt. `result` is stored on the job (and, for webhooks, the delivery). */
export type RunOutcome =
  | { ok: true; result?: Record<string, unknown> }
  | { ok: false; error: string; result?: Record<string, unknown> };

/** The job's status after the attempt, as private.finish_job / run_sql_job answer it. */
export type FinishStatus = "succeeded" | "pending" | "dead" | "stale";

export interface RunnerContext {
  sql: Sql;
  /** Sends a request over a connection to an address that was checked (never a fresh lookup). */
  pinnedRequest: PinnedRequest;
  resolveDns: (host: string, type: "A" | "AAAA") => Promise<string[]>;
  /** The Stripe client (STRIPE_SECRET_KEY, STRIPE_API_BASE); throws when Stripe is not configured. */
  stripe: () => StripeClient;
}

/** Runs one attempt of a job of its kind. It must pass `job.idempotency_key` to any outside call. */
export type Runner = (job: ClaimedJob, context: RunnerContext) => Promise<RunOutcome>;

export async function claimJobs(sql: Sql, maxJobs: number, kinds: string[] | null): Promise<ClaimedJob[]> {
  const rows = await sql`select * from private.claim_jobs(${maxJobs}::integer, ${kinds}::text[])`;
  return rows.map((row) => claimedJob.parse(row));
}

export async function finishJob(sql: Sql, job: ClaimedJob, outcome: RunOutcome): Promise<FinishStatus> {
  const error = outcome.ok ? null : outcome.error;
  const result = outcome.result ?? null;
  const [row] = await sql`
    select private.finish_job(${job.id}::bigint, ${job.attempt}::integer, ${outcome.ok}::boolean, ${error}::text,
                              ${result === null ? null : JSON.stringify(result)}::text::jsonb) as status`;
  return row.status as FinishStatus;
}

/** SQL jobs run and record their outcome in one database transaction. */
export async function runSqlJob(sql: Sql, job: ClaimedJob): Promise<FinishStatus> {
  const [row] = await sql`select private.run_sql_job(${job.id}::bigint, ${job.attempt}::integer) as status`;
  return row.status as FinishStatus;
}

/** A thrown value as a short error text for the job record. */
export function errorText(e: unknown): string {
  const text = e instanceof Error ? `${e.name === "Error" ? "" : e.name + ": "}${e.message}` : String(e);
  return text.slice(0, 2000);
}
