/**
 * The runner of `overage.meter_event` jobs: reports a consumption's overage (the credits its
 * wallet did not cover, public.usage_overages) to the plan's Stripe Billing Meter, billed on
 * the customer's next invoice.
 *
 * The meter event's identifier is the usage event id: Stripe keeps one event per identifier
 * and refuses another ("An event already exists with identifier ..."), which this runner takes
 * as delivered. So a retry after a lost response, or a second job, never bills twice. The
 * request also carries the job's idempotency key, so the library's own retries are replayed.
 */
import Stripe from "stripe";
import { z } from "zod";
import type { ClaimedJob, RunnerContext, RunOutcome } from "./jobs.ts";

const request = z.object({
  identifier: z.string(),
  event_name: z.string(),
  value: z.number().int().positive(),
  stripe_customer_id: z.string().nullable(),
  timestamp: z.number().int(),
  reported: z.boolean(),
});

/** Stripe's answer to a meter event whose identifier it has seen already. */
export function isDuplicateMeterEvent(e: unknown): boolean {
  return e instanceof Stripe.errors.StripeInvalidRequestError && /already exists with identifier/i.test(e.message);
}

export async function reportOverage(job: ClaimedJob, context: RunnerContext): Promise<RunOutcome> {
  const usageEventId = z.uuid().safeParse(job.payload.usage_event_id);
  if (!usageEventId.success) return { ok: false, error: "the job has no usage_event_id" };
  const [row] = await context.sql`select private.overage_meter_request(${usageEventId.data}::uuid) as request`;
  if (row.request === null) return { ok: true, result: { skipped: "no overage for this usage event" } };
  const r = request.parse(row.request);
  if (r.reported) return { ok: true, result: { skipped: "reported already", identifier: r.identifier } };
  if (r.stripe_customer_id === null) {
    // Retried: the customer link may still be on its way from Checkout.
    return { ok: false, error: "the account has no Stripe customer to bill the overage to" };
  }

  let duplicate = false;
  try {
    await context.stripe().billing.meterEvents.create({
      event_name: r.event_name,
      identifier: r.identifier,
      timestamp: r.timestamp,
      payload: { stripe_customer_id: r.stripe_customer_id, value: String(r.value) },
    }, { idempotencyKey: job.idempotency_key });
  } catch (e) {
    if (!isDuplicateMeterEvent(e)) throw e; // unreachable or a server error: retried
    duplicate = true;
  }
  await context.sql`select private.overage_meter_reported(${usageEventId.data}::uuid)`;
  return {
    ok: true,
    result: {
      identifier: r.identifier,
      value: r.value,
      event_name: r.event_name,
      ...(duplicate ? { duplicate: true } : {}),
    },
  };
}
