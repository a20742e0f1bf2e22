/**
 * POST /functions/v1/dispatch — runs due background jobs (verify_jwt = false).
 *
 *   401 {error: unauthorized}             no or wrong `Authorization: Bearer <DISPATCH_SECRET>`
 *   500 {error: dispatch_not_configured}  DISPATCH_SECRET unset or shorter than 32 characters
 *   200 {claimed, succeeded, retrying, dead, stale}
 *
 * Called by pg_cron through pg_net on a hosted project and every second by `npm start`
 * locally; never by users (a user JWT is not the secret). Each call claims due jobs with
 * private.claim_jobs (FOR UPDATE SKIP LOCKED, so parallel calls never share a job), runs
 * them — SQL kinds in the database, the others by the runner registered for their kind —
 * and reports each outcome to private.finish_job, which decides retry or give-up. It keeps
 * claiming until nothing is due or its time budget is spent.
 */
import { getDb, type Sql } from "../_shared/db.ts";
import { type EnvSource, optionalEnv, processEnv } from "../_shared/env.ts";
import { errorResponse, json } from "../_shared/http.ts";
import {
  type ClaimedJob,
  claimJobs,
  errorText,
  finishJob,
  type FinishStatus,
  type Runner,
  type RunnerContext,
  runSqlJob,
} from "./jobs.ts";
import { deliverWebhook } from "./webhook.ts";
import { pinnedRequest } from "./pinned_request.ts";
import { chargeAutoTopup } from "./auto_topup.ts";
import { syncSeats } from "./seats.ts";
import { reportOverage } from "./overage.ts";
import { type StripeClient, stripeFromEnv } from "../_shared/stripe.ts";

/** The runners of jobs that run here (kinds without a sql_function), by kind. */
export const defaultRunners: Record<string, Runner> = {
  "webhook.deliver": deliverWebhook,
  "credits.auto_topup": chargeAutoTopup,
  "seats.sync": syncSeats,
  "overage.meter_event": reportOverage,
};

export const MIN_SECRET_LENGTH = 32;

export interface DispatchDeps {
  env?: EnvSource;
  sql?: Sql;
  runners?: Record<string, Runner>;
  /** Only these kinds (tests); default all. */
  kinds?: string[];
  /** Jobs claimed at once; default 10. */
  batchSize?: number;
  /** Stop claiming after this many milliseconds; default 20,000. */
  budgetMs?: number;
  /** How webhooks are sent to their checked address; default node:http / node:https pinned to it. */
  pinnedRequest?: RunnerContext["pinnedRequest"];
  /** The Stripe client of the Stripe runners; default from the environment. */
  stripe?: StripeClient;
  resolveDns?: RunnerContext["resolveDns"];
  log?: (message: string, error?: unknown) => void;
}

export interface DispatchSummary {
  claimed: number;
  succeeded: number;
  retrying: number;
  dead: number;
  stale: number;
}

/** Compares two secrets in time independent of where they differ. */
export async function sameSecret(given: string, expected: string): Promise<boolean> {
  const digest = async (s: string) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  const [a, b] = await Promise.all([digest(given), digest(expected)]);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** One attempt of one job; a runner that throws counts as a failed attempt. */
async function runOne(
  job: ClaimedJob,
  sql: Sql,
  runners: Record<string, Runner>,
  context: RunnerContext,
): Promise<FinishStatus> {
  if (job.sql_function !== null) return await runSqlJob(sql, job);
  const runner = runners[job.kind];
  if (!runner) {
    return await finishJob(sql, job, {
      ok: false,
      error: `no runner for job kind "${job.kind}" in the dispatch function`,
    });
  }
  let outcome;
  try {
    outcome = await runner(job, context);
  } catch (e) {
    outcome = { ok: false as const, error: errorText(e) };
  }
  return await finishJob(sql, job, outcome);
}

/** Claims and runs due jobs until none is due or the budget is spent. */
export async function dispatch(sql: Sql, deps: DispatchDeps = {}): Promise<DispatchSummary> {
  const runners = deps.runners ?? defaultRunners;
  const context: RunnerContext = {
    sql,
    pinnedRequest: deps.pinnedRequest ?? pinnedRequest,
    resolveDns: deps.resolveDns ?? ((host, type) => Deno.resolveDns(host, type)),
    stripe: () => {
      if (deps.stripe) return deps.stripe;
      const client = stripeFromEnv(deps.env ?? processEnv);
      if (!client.ok) throw new Error(client.error.message);
      return client.value;
    },
  };
  const summary: DispatchSummary = { claimed: 0, succeeded: 0, retrying: 0, dead: 0, stale: 0 };
  const deadline = performance.now() + (deps.budgetMs ?? 20_000);
  while (performance.now() < deadline) {
    const jobs = await claimJobs(sql, deps.batchSize ?? 10, deps.kinds ?? null);
    if (jobs.length === 0) break;
    summary.claimed += jobs.length;
    const statuses = await Promise.all(jobs.map(async (job) => {
      try {
        return await runOne(job, sql, runners, context);
      } catch (e) {
        // The database failed while recording: the lease runs out and the job is claimed again.
        deps.log?.(`job ${job.id} (${job.kind}) could not be recorded`, e);
        return "stale" as const;
      }
    }));
    for (const s of statuses) summary[s === "pending" ? "retrying" : s]++;
  }
  return summary;
}

export function createDispatchHandler(deps: DispatchDeps = {}): (request: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const log = deps.log ?? ((message: string, error?: unknown) => console.error(message, error));
  return async (request) => {
    if (request.method !== "POST") return errorResponse("method_not_allowed", "Use POST.", 405);
    const secret = optionalEnv("DISPATCH_SECRET", env);
    if (!secret || secret.length < MIN_SECRET_LENGTH) {
      return errorResponse(
        "dispatch_not_configured",
        `Set DISPATCH_SECRET (at least ${MIN_SECRET_LENGTH} characters) for the dispatch function.`,
        500,
      );
    }
    const given = request.headers.get("authorization")?.match(/^Bearer\s+(\S+)\s*$/i)?.[1] ?? "";
    if (!(await sameSecret(given, secret))) {
      return errorResponse("unauthorized", "The dispatcher takes `Authorization: Bearer <DISPATCH_SECRET>`.", 401);
    }
    await request.body?.cancel();
    try {
      return json(await dispatch(deps.sql ?? getDb(env), { ...deps, log }));
    } catch (e) {
      log("dispatch failed", e);
      return errorResponse(
        "internal_error",
        "The dispatcher could not reach the database; the next call retries.",
        500,
      );
    }
  };
}

/** The deployed handler: settings from the environment. */
export const handler = createDispatchHandler();
