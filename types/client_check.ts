// Compile-time check, run by `npm test` with `deno check`: typed supabase-js calls against
// the generated types. A schema change that breaks a client breaks this file, and every
// expected-error directive below proves the types refuse a wrong call. Never executed.
import { createClient } from "@supabase/supabase-js";
import {
  apiErrorCode,
  asResult,
  type ConsumeCreditsResult,
  type CreateWebhookEndpointResult,
  type Database,
  type ReserveCreditsResult,
  type Row,
  type RpcArgs,
  type RpcReturns,
  type UsageBucket,
} from "./index.ts";

export async function typedCalls(url: string, key: string): Promise<void> {
  const supabase = createClient<Database>(url, key);

  const args: RpcArgs<"consume_credits"> = {
    account_id: "00000000-0000-0000-0000-000000000000",
    action: "api_call",
    quantity: 3,
  };
  const consumed = await supabase.rpc("consume_credits", args);
  const result = asResult<ConsumeCreditsResult>(consumed.data);
  const charged: number | undefined = result?.credits_charged;
  if (apiErrorCode(consumed.error) === "insufficient_credits") void charged;

  const reserved = await supabase.rpc("reserve_credits", {
    account_id: args.account_id,
    action: "ai_tokens",
    quantity: 4000,
    ttl_seconds: 600,
  });
  const hold = asResult<ReserveCreditsResult>(reserved.data);
  if (hold) await supabase.rpc("capture_credits", { hold_id: hold.hold_id, quantity: 3500 });

  const { data: wallets } = await supabase.from("credit_balances").select("account_id, balance, held, available");
  const available: number | undefined = wallets?.[0]?.available ?? undefined;
  void available;

  const ledger: Row<"credit_ledger">[] =
    (await supabase.from("credit_ledger").select("*").order("id", { ascending: false }).limit(50)).data ?? [];
  const delta: number | undefined = ledger[0]?.delta;
  void delta;

  // A hold embeds the usage event its capture recorded (an object, null until captured), and a usage event the hold
  // it captured (a list): computed relationships, typed both ways.
  const holds = (await supabase.from("credit_holds").select("id, status, usage_events(id, credits_charged)")).data ??
    [];
  const captured: number | null | undefined = holds[0]?.usage_events?.credits_charged;
  void captured;
  const events = (await supabase.from("usage_events").select("id, credit_holds(id, status)")).data ?? [];
  const holdStatus: string | undefined = events[0]?.credit_holds[0]?.status;
  void holdStatus;
  // @ts-expect-error: a hold's usage event is one object, not a list
  void holds[0]?.usage_events?.[0];

  const team: Row<"accounts"> | null = (await supabase.rpc("create_team_account", { name: "Acme", slug: "acme" })).data;
  void team;

  const billing = await supabase.rpc("create_role", {
    account_id: args.account_id,
    key: "billing",
    name: "Billing",
    permissions: ["billing.read", "billing.manage"],
  });
  if (billing.data) await supabase.rpc("delete_role", { role_id: billing.data, replacement: "member" });
  if (apiErrorCode(billing.error) === "role_exists") void billing;
  const keyed = await supabase.rpc("create_api_key", {
    account_id: args.account_id,
    name: "Batch",
    rate_limit_capacity: 5,
    rate_limit_refill_per_second: 1,
  });
  void keyed;
  const roles: Row<"roles">[] = (await supabase.from("roles").select("*").is("account_id", null)).data ?? [];
  void roles;

  // @ts-expect-error quantity is an integer, not a string
  await supabase.rpc("consume_credits", { account_id: args.account_id, action: "api_call", quantity: "3" });
  // @ts-expect-error account_id is required
  await supabase.rpc("consume_credits", { action: "api_call" });
  // @ts-expect-error there is no RPC named "spend_credits"
  await supabase.rpc("spend_credits", {});
  const endpoint = asResult<CreateWebhookEndpointResult>(
    (await supabase.rpc("create_webhook_endpoint", {
      account_id: args.account_id,
      url: "https://example.com/hooks",
      event_types: ["credits.low"],
    })).data,
  );
  const live: boolean | null =
    (await supabase.rpc("has_feature", { account_id: args.account_id, feature: "sso" })).data;
  const log: Row<"webhook_deliveries">[] = (await supabase.from("webhook_deliveries").select("*")).data ?? [];
  const topup = (await supabase.rpc("set_auto_topup", {
    account_id: args.account_id,
    enabled: true,
    threshold: 100,
    credit_pack: "credits_1000",
    monthly_limit: 4,
  })).data;
  const topups: Row<"auto_topup_attempts">[] = (await supabase.from("auto_topup_attempts").select("*")).data ?? [];
  await supabase.rpc("set_auto_topup", {
    account_id: args.account_id,
    enabled: true,
    // @ts-expect-error threshold is a number of credits, not a string
    threshold: "100",
    credit_pack: "x",
  });
  void endpoint?.secret, live, log, topup?.consecutive_failures, topups;
  const bucket: UsageBucket = "day";
  const usage = await supabase.rpc("usage_summary", {
    account_id: args.account_id,
    since: "2026-11-01T00:00:00Z",
    until: "2026-12-01T00:00:00Z",
    bucket,
    group_by: "category",
  });
  const perDay: RpcReturns<"usage_summary"> = usage.data ?? [];
  const credits: number | undefined = perDay[0]?.credits;
  if (apiErrorCode(usage.error) === "invalid_range") void credits;
  const revenue = (await supabase.rpc("revenue_summary", { since: "2026-11-01", until: "2026-12-01" })).data ?? [];
  const mrr: number | undefined = revenue[0]?.mrr_cents;
  void mrr;
  // @ts-expect-error usage_summary needs a range
  await supabase.rpc("usage_summary", { account_id: args.account_id });
  // @ts-expect-error credit_balances has no column "credits"
  const wrong: number = (await supabase.from("credit_balances").select("account_id").single()).data!.credits;
  void wrong;
}
