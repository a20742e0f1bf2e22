/**
 * The Stripe client of the edge functions, configured from the environment.
 *
 * - The API version is pinned here, to the version stripe@23.1.0 is typed for: every request
 *   and every webhook endpoint we document uses it, and the SQL that reads event payloads
 *   (private.handle_stripe_event) is written against its object shapes (period fields on
 *   subscription items, invoice.parent.subscription_details, ...), while still reading the
 *   older shapes.
 * - `Stripe.createFetchHttpClient()`: Deno's fetch; `Stripe.createSubtleCryptoProvider()` for
 *   webhook signatures (WebCrypto, async).
 * - STRIPE_API_BASE (tests only) points the library at a local fake of the Stripe API; in
 *   production it is absent and the library talks to api.stripe.com.
 * - Redirect URLs for Stripe-hosted pages (Checkout, the billing portal) must lie under
 *   SITE_URL or one of ALLOWED_REDIRECT_URLS: no open redirects.
 */
import Stripe from "stripe";
import { type AppError, appError, err, ok, type Result } from "./errors.ts";
import { type EnvSource, listEnv, optionalEnv, processEnv, requireEnv } from "./env.ts";

/** The Stripe API version of every request and of the webhook endpoint (stripe@23.1.0's). */
export const STRIPE_API_VERSION = "2026-10-28.endive" as const;

export type StripeClient = Stripe;

/** Where the library sends requests: STRIPE_API_BASE when set (a local fake), else Stripe. */
export function stripeApiBase(env: EnvSource = processEnv): Result<URL | undefined> {
  const raw = optionalEnv("STRIPE_API_BASE", env);
  if (raw === undefined) return ok(undefined);
  try {
    const url = new URL(raw);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(url.protocol);
    return ok(url);
  } catch {
    return err(appError("config_invalid", "Invalid setting STRIPE_API_BASE: expected an http(s) URL.", 500));
  }
}

/** A client for `secretKey`, talking to `apiBase` when given. */
export function createStripe(secretKey: string, apiBase?: URL): StripeClient {
  const target = apiBase === undefined ? {} : {
    host: apiBase.hostname,
    port: apiBase.port || (apiBase.protocol === "https:" ? "443" : "80"),
    protocol: apiBase.protocol === "https:" ? "https" as const : "http" as const,
  };
  return new Stripe(secretKey, {
    apiVersion: STRIPE_API_VERSION,
    httpClient: Stripe.createFetchHttpClient(),
    maxNetworkRetries: 2,
    timeout: 15_000,
    appInfo: { name: "ledgerbase" },
    ...target,
  });
}

const clients = new Map<string, StripeClient>();

/** The client configured by STRIPE_SECRET_KEY (and STRIPE_API_BASE), cached per isolate. */
export function stripeFromEnv(env: EnvSource = processEnv): Result<StripeClient> {
  const key = requireEnv("STRIPE_SECRET_KEY", env);
  if (!key.ok) return key;
  const base = stripeApiBase(env);
  if (!base.ok) return base;
  const cacheKey = `${key.value}@${base.value?.href ?? "stripe"}`;
  let client = clients.get(cacheKey);
  if (client === undefined) {
    client = createStripe(key.value, base.value);
    clients.set(cacheKey, client);
  }
  return ok(client);
}

/** STRIPE_WEBHOOK_SECRET (whsec_...). */
export function webhookSecret(env: EnvSource = processEnv): Result<string> {
  return requireEnv("STRIPE_WEBHOOK_SECRET", env);
}

/** WebCrypto signatures for webhooks (Deno has no node:crypto HMAC in the library's sync path). */
export const cryptoProvider = Stripe.createSubtleCryptoProvider();

/** Verifies a webhook's signature and parses it (Stripe's `constructEventAsync`); throws Stripe's errors. */
export async function constructEvent(rawBody: string, signature: string, secret: string): Promise<Stripe.Event> {
  return await Stripe.webhooks.constructEventAsync(rawBody, signature, secret, undefined, cryptoProvider);
}

/**
 * A Stripe-Signature header for `payload`, computed as Stripe computes it (the library's
 * header helper). For replays of recovered events (scripts/stripe-replay.ts), the webhook
 * benchmark and tests; never needed to receive webhooks.
 */
export async function signPayload(payload: string, secret: string, timestamp?: number): Promise<string> {
  return await Stripe.webhooks.generateTestHeaderStringAsync({
    payload,
    secret,
    cryptoProvider,
    ...(timestamp === undefined ? {} : { timestamp }),
  });
}

/** True for Stripe's signature errors (bad signature, stale timestamp, malformed header). */
export function isSignatureError(e: unknown): boolean {
  return e instanceof Stripe.errors.StripeSignatureVerificationError;
}

/** A Stripe API failure as our error: 502 `stripe_error`, with Stripe's code in the detail. */
export function stripeError(e: unknown, log: (error: unknown) => void = console.error): AppError {
  if (e instanceof Stripe.errors.StripeError) {
    log(`stripe: ${e.type} ${e.code ?? ""} ${e.message}`);
    return appError("stripe_error", "The payment provider refused or failed the request; try again later.", 502, {
      detail: [e.type, e.code].filter((part) => part).join(": "),
    });
  }
  log(e);
  return appError("stripe_error", "The payment provider could not be reached; try again later.", 502);
}

// ---------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------

/** SITE_URL and ALLOWED_REDIRECT_URLS as URLs (entries that are not http(s) URLs are dropped). */
export function redirectBases(env: EnvSource = processEnv): URL[] {
  const entries = [optionalEnv("SITE_URL", env), ...listEnv("ALLOWED_REDIRECT_URLS", env)];
  const bases: URL[] = [];
  for (const entry of entries) {
    if (entry === undefined) continue;
    try {
      const url = new URL(entry);
      if (url.protocol === "http:" || url.protocol === "https:") bases.push(url);
    } catch {
      // not a URL: ignored
    }
  }
  return bases;
}

/**
 * Whether `candidate` may be a return URL: same origin as an allowed base and inside its path
 * (`https://app.example.com/billing` allows `/billing` and `/billing/...`, not `/billing-evil`).
 * No credentials in the URL.
 */
export function isAllowedRedirect(candidate: string, bases: readonly URL[]): boolean {
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    return false;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  if (url.username !== "" || url.password !== "") return false;
  return bases.some((base) => {
    if (base.origin !== url.origin) return false;
    const prefix = base.pathname.replace(/\/+$/, "");
    return prefix === "" || url.pathname === prefix || url.pathname.startsWith(prefix + "/");
  });
}

export type { Stripe };
