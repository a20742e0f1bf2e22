// npm run stripe:replay -- <file> [--url=<webhook URL>]
//
// Recovery: feeds Stripe events from a file through the webhook path, oldest first. Each event
// is signed with STRIPE_WEBHOOK_SECRET exactly as Stripe signs a delivery and handed to the
// stripe-webhook function: in this process (database from SUPABASE_DB_URL) or, with --url, to
// a deployed endpoint. Events already processed answer "duplicate", so replaying overlapping
// files is safe.
//
// The file is what Stripe lets you list for the last 30 days: the JSON of
//   stripe events list --limit 100 --created.gte <unix>        (a list object: {"data": [...]})
// or GET /v1/events pages, a JSON array of events, or one event per line (JSON Lines).
//
// Settings come from the environment, else supabase/functions/.env; the database is the
// local stack's (LEDGERBASE_DB_PORT) unless SUPABASE_DB_URL is set.
import { bold, dim, green, main, parseArgs, red, UserError } from "./lib/log.ts";
import { functionsSettings } from "./lib/env.ts";
import { createWebhookHandler } from "../supabase/functions/stripe-webhook/handler.ts";
import { closeDb } from "../supabase/functions/_shared/db.ts";
import { signPayload } from "../supabase/functions/_shared/stripe.ts";

const usage = `usage: npm run stripe:replay -- <file> [--url=<webhook URL>]

  <file>      Stripe events: a list object ({"data": [...]}), a JSON array, or JSON Lines
  --url=URL   post the signed events to this endpoint (e.g. https://<ref>.supabase.co/functions/v1/stripe-webhook)
              instead of running the webhook handler here against SUPABASE_DB_URL`;

interface StripeEventLike {
  id: string;
  type: string;
  created: number;
}

function isEvent(value: unknown): value is StripeEventLike {
  const v = value as Record<string, unknown>;
  return typeof v === "object" && v !== null && typeof v.id === "string" && typeof v.type === "string" &&
    typeof v.created === "number";
}

/** The events of a file in any of the accepted shapes. */
export function parseEvents(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  try {
    const parsed = JSON.parse(trimmed);
    if (Array.isArray(parsed)) return parsed;
    if (parsed && typeof parsed === "object" && Array.isArray((parsed as { data?: unknown }).data)) {
      return (parsed as { data: unknown[] }).data;
    }
    return [parsed];
  } catch {
    return trimmed.split("\n").filter((line) => line.trim() !== "").map((line, i) => {
      try {
        return JSON.parse(line);
      } catch {
        throw new UserError(`line ${i + 1} is not JSON`);
      }
    });
  }
}

/** host:port of a database URL (never its password). */
function databaseHost(url: string | undefined): string {
  try {
    const u = new URL(url ?? "");
    return `${u.hostname}:${u.port || 5432}`;
  } catch {
    return "(SUPABASE_DB_URL is not a URL)";
  }
}

await main(async () => {
  const { flags, positional } = parseArgs(Deno.args, { url: "string" }, usage);
  if (positional.length !== 1) throw new UserError("give one file of events", usage);
  const raw = parseEvents(await Deno.readTextFile(positional[0]));
  const events = raw.filter(isEvent);
  if (events.length !== raw.length) {
    throw new UserError(`${raw.length - events.length} entries are not Stripe events (id, type, created)`);
  }
  // Oldest first, ties by id: the order the ordering guard would pick anyway.
  events.sort((a, b) => a.created - b.created || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  const env = await functionsSettings();
  const secret = env.get("STRIPE_WEBHOOK_SECRET");
  if (!secret) throw new UserError("STRIPE_WEBHOOK_SECRET is not set (environment or supabase/functions/.env)");
  const url = typeof flags.url === "string" ? flags.url : undefined;
  const local = url === undefined ? createWebhookHandler({ env }) : undefined;
  console.log(
    `${bold("stripe:replay")} ${events.length} events ${
      dim(url ? `→ ${url}` : `→ local handler, database ${databaseHost(env.get("SUPABASE_DB_URL"))}`)
    }`,
  );

  const counts: Record<string, number> = {};
  try {
    for (const event of events) {
      const payload = JSON.stringify(event);
      const signature = await signPayload(payload, secret);
      const request = new Request(url ?? "http://127.0.0.1/stripe-webhook", {
        method: "POST",
        headers: { "content-type": "application/json", "stripe-signature": signature },
        body: payload,
      });
      const response = local ? await local(request) : await fetch(request);
      const body = await response.json().catch(() => ({}));
      const status = response.ok ? String(body.status ?? "ok") : `http_${response.status}`;
      counts[status] = (counts[status] ?? 0) + 1;
      if (!response.ok) {
        console.log(
          `  ${red("✗")} ${event.id} ${event.type}: ${response.status} ${JSON.stringify(body.error ?? body)}`,
        );
      }
    }
  } finally {
    await closeDb();
  }
  const failed = Object.entries(counts).filter(([s]) => s.startsWith("http_")).reduce((n, [, c]) => n + c, 0);
  console.log(`${failed ? red("✗") : green("✓")} ${Object.entries(counts).map(([s, c]) => `${c} ${s}`).join(", ")}`);
  return failed ? 1 : 0;
});
