// Helpers for clients of ledgerbase: row and RPC types derived from the generated
// database types, the typed results of the JSON-returning RPCs, and the stable error
// codes of the API with a function that recognises them on a supabase-js error.
//
//   import { createClient } from "@supabase/supabase-js";
//   import { type Database, apiErrorCode } from "./types/index.ts";
//   const supabase = createClient<Database>(url, anonKey);
//   const { data, error } = await supabase.rpc("consume_credits", { account_id, action: "api_call" });
//   if (apiErrorCode(error) === "insufficient_credits") showPaywall();
import type { Database, Json } from "./database.ts";

export type { Database, Json, Tables, TablesInsert, TablesUpdate } from "./database.ts";

type PublicSchema = Database["public"];

/** A row of a public table or view: `Row<"credit_balances">`. */
export type Row<T extends keyof PublicSchema["Tables"] | keyof PublicSchema["Views"]> = T extends
  keyof PublicSchema["Tables"] ? PublicSchema["Tables"][T]["Row"]
  : T extends keyof PublicSchema["Views"] ? PublicSchema["Views"][T]["Row"]
  : never;

/** The named arguments of an RPC: `RpcArgs<"consume_credits">`. */
export type RpcArgs<F extends keyof PublicSchema["Functions"]> = PublicSchema["Functions"][F]["Args"];

/** What an RPC returns as the database declares it. */
export type RpcReturns<F extends keyof PublicSchema["Functions"]> = PublicSchema["Functions"][F]["Returns"];

// ---------------------------------------------------------------------------
// Results of the RPCs that return JSON (the database declares them as Json)
// ---------------------------------------------------------------------------
export interface ConsumeCreditsResult {
  usage_event_id: string;
  credits_charged: number;
  balance: number;
  available: number;
  replayed: boolean;
  /** Credits of credits_charged the wallet did not cover, billed through the plan's Stripe meter (plans.limits.overage). */
  overage_units?: number;
}
export interface ReserveCreditsResult {
  hold_id: string;
  amount: number;
  expires_at: string;
  available: number;
  replayed: boolean;
}
export interface CaptureCreditsResult {
  usage_event_id: string;
  credits_charged: number;
  released: number;
  balance: number;
  available: number;
  replayed: boolean;
}
export interface ReleaseCreditsResult {
  released: number;
  available: number;
}
export interface AdminAdjustCreditsResult {
  balance: number;
  available: number;
}
export interface RedeemReferralCodeResult {
  status: "rewarded" | "pending" | "capped";
  referrer_reward: number;
  referee_reward: number;
}
export interface InviteMemberResult {
  invitation_id: string;
  token: string;
  expires_at: string;
}

/** create_webhook_endpoint: the endpoint and its signing secret, shown only here. */
export interface CreateWebhookEndpointResult {
  id: string;
  account_id: string;
  url: string;
  description: string | null;
  event_types: string[];
  active: boolean;
  secret: string;
}
/** rotate_webhook_secret: the new secret, shown only here; the old one signs until previous_secret_expires_at. */
export interface RotateWebhookSecretResult {
  id: string;
  secret: string;
  previous_secret_expires_at: string;
}

/** The event types a webhook endpoint can subscribe to (or "*" for all). */
export const WEBHOOK_EVENT_TYPES = [
  "credits.low",
  "credits.granted",
  "credits.auto_topup.succeeded",
  "credits.auto_topup.failed",
  "subscription.created",
  "subscription.updated",
  "subscription.canceled",
  "payment.succeeded",
  "payment.failed",
  "payment.refunded",
  "member.added",
  "member.removed",
  "api_key.created",
  "api_key.revoked",
] as const;
export type WebhookEventType = typeof WEBHOOK_EVENT_TYPES[number];

/** The JSON body of every webhook delivery. */
export interface WebhookEvent<D = Record<string, Json>> {
  type: WebhookEventType;
  timestamp: string;
  data: D;
}

/** usage_summary's buckets (UTC) and groupings. */
export const USAGE_BUCKETS = ["hour", "day", "month"] as const;
export type UsageBucket = typeof USAGE_BUCKETS[number];
export const USAGE_GROUPINGS = ["action", "category", "api_key", "user"] as const;
export type UsageGrouping = typeof USAGE_GROUPINGS[number];

/** Reads a JSON RPC result as its documented shape: `asResult<ConsumeCreditsResult>(data)`. */
export function asResult<T>(data: Json | null): T | null {
  return data === null ? null : (data as unknown as T);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** Stable error codes and the HTTP status PostgREST answers with. */
export const API_ERRORS = {
  insufficient_credits: 402,
  quota_exceeded: 429,
  rate_limited: 429,
  idempotency_conflict: 409,
  already_referred: 409,
  already_member: 409,
  member_limit_reached: 409,
  role_exists: 409,
  role_in_use: 409,
  role_limit_reached: 409,
  billing_active: 409,
  team_limit_reached: 409,
  slug_taken: 409,
  username_taken: 409,
  not_found: 404,
  gone: 410,
  invalid_input: 400,
  invalid_scope: 400,
  invalid_url: 400,
  invalid_event_type: 400,
  invalid_bucket: 400,
  invalid_group_by: 400,
  invalid_range: 400,
  endpoint_disabled: 409,
  invalid_api_key: 401,
  insufficient_scope: 403,
  invalid_jwt_audience: 401,
  invalid_jwt_issuer: 401,
  payload_too_large: 413,
  invalid_slug: 400,
  invalid_name: 400,
  invalid_email: 400,
  invalid_role: 400,
  invalid_permission: 400,
  system_role: 400,
  invalid_username: 400,
  invalid_avatar_path: 400,
  unsafe_characters: 400,
  preferences_too_large: 400,
  personal_account: 400,
  last_owner: 400,
  self_referral: 400,
  referral_cycle: 400,
  referral_window_closed: 400,
  anonymous_user: 400,
  permission_denied: 403,
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** The shape shared by supabase-js's PostgrestError and the edge functions' `{error}` body. */
export interface ErrorLike {
  code?: string | null;
  message?: string | null;
  details?: string | null;
  hint?: string | null;
}

const isApiErrorCode = (value: unknown): value is ApiErrorCode => typeof value === "string" && value in API_ERRORS;

/**
 * The stable code of an error from `supabase.rpc()`/`.from()` (PostgREST puts the code in
 * `message`, the SQLSTATE in `code`) or from an edge function (`{ error: { code } }`).
 * Null for no error or an error that is not part of the API.
 */
export function apiErrorCode(error: ErrorLike | null | undefined): ApiErrorCode | null {
  if (!error) return null;
  if (isApiErrorCode(error.message)) return error.message;
  if (isApiErrorCode(error.code)) return error.code;
  if (error.code === "42501" || error.message === "permission denied") return "permission_denied";
  if (error.code === "22023") return "invalid_input";
  return null;
}

/** Seconds to wait after a rate_limited error ("retry after N seconds" in the hint). */
export function retryAfterSeconds(error: ErrorLike | null | undefined): number | null {
  const match = error?.hint?.match(/retry after (\d+) seconds?/);
  return match ? Number(match[1]) : null;
}
