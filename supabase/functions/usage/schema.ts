/**
 * What POST /functions/v1/usage accepts. The database validates again (and knows
 * which actions exist); this only keeps malformed requests away from it.
 */
import { z } from "zod";

/** Postgres `integer`: the largest quantity consume_credits takes. */
export const MAX_QUANTITY = 2_147_483_647;

export const usageRequest = z.strictObject({
  /** A billable action key, e.g. `api_call` or `ai_tokens`. */
  action: z.string().regex(/^[a-z][a-z0-9_]{1,59}$/, "action must be a billable action key (a-z, 0-9, _)"),
  /** Units used; the cost is ceil(quantity × credits / unit_size). Default 1. */
  quantity: z.number().int().min(1).max(MAX_QUANTITY).optional(),
  /** Retrying with the same key returns the first result instead of charging again. */
  idempotency_key: z.string().min(1).max(255).optional(),
  /** Free-form JSON object stored on the usage event (model, tokens, output URL, ...), at most 16 kB. */
  metadata: z.record(z.string(), z.unknown()).optional(),
});

export type UsageRequest = z.infer<typeof usageRequest>;

/** `?limit=` of GET /functions/v1/usage/events. */
export const eventsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
});
