/**
 * A local fake of the part of the Stripe API our functions call, for tests: the stripe library
 * is pointed at it with STRIPE_API_BASE. It answers with Stripe's fixture objects (fixtures/),
 * honours Idempotency-Key the way Stripe does (same key, same response), records every request,
 * and can be told to fail the next calls.
 *
 *   POST /v1/customers                   customer.json with a new id, email and metadata
 *   POST /v1/checkout/sessions           checkout.session.json with the session parameters
 *   POST /v1/billing_portal/sessions     billing_portal.session.json for the customer
 */
import customerFixture from "./fixtures/customer.json" with { type: "json" };
import checkoutSessionFixture from "./fixtures/checkout.session.json" with { type: "json" };
import portalSessionFixture from "./fixtures/billing_portal.session.json" with { type: "json" };

export interface RecordedRequest {
  method: string;
  path: string;
  idempotencyKey: string | null;
  stripeVersion: string | null;
  authorization: string | null;
  /** Form parameters as sent, e.g. `metadata[account_id]`, `line_items[0][price]`. */
  params: Record<string, string>;
}

export interface FakeStripe {
  /** http://127.0.0.1:<port>, for STRIPE_API_BASE. */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Ids of the customers created (each once, whatever the retries). */
  readonly customers: string[];
  /** The next `count` requests fail with this Stripe error. */
  failNext(count: number, status: number, error: { type: string; code?: string; message: string }): void;
  /** Requests to a path (e.g. "/v1/customers"). */
  requestsTo(path: string): RecordedRequest[];
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

/** `metadata[a]=1&metadata[b]=2` → {a: "1", b: "2"} for the given prefix. */
export function nested(params: Record<string, string>, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (key.startsWith(`${prefix}[`)) out[key.slice(prefix.length + 1, key.indexOf("]", prefix.length))] = value;
  }
  return out;
}

export function startFakeStripe(): Promise<FakeStripe> {
  const requests: RecordedRequest[] = [];
  const customers: string[] = [];
  const replays = new Map<string, { status: number; body: Json }>();
  const failures: { status: number; error: Json }[] = [];
  let counter = 0;
  const nextId = (prefix: string) => `${prefix}_fake${(++counter).toString().padStart(6, "0")}${crypto.randomUUID().slice(0, 8)}`;

  function answer(request: RecordedRequest): { status: number; body: Json } {
    const p = request.params;
    if (request.method === "POST" && request.path === "/v1/customers") {
      const c = structuredClone(customerFixture) as Json;
      c.id = nextId("cus");
      c.email = p.email ?? null;
      c.metadata = nested(p, "metadata");
      c.created = Math.floor(Date.now() / 1000);
      customers.push(c.id as string);
      return { status: 200, body: c };
    }
    if (request.method === "POST" && request.path === "/v1/checkout/sessions") {
      const s = structuredClone(checkoutSessionFixture) as Json;
      s.id = nextId("cs_test");
      s.url = `https://checkout.stripe.com/c/pay/${s.id}`;
      s.mode = p.mode;
      s.customer = p.customer ?? null;
      s.client_reference_id = p.client_reference_id ?? null;
      s.metadata = nested(p, "metadata");
      s.success_url = p.success_url;
      s.cancel_url = p.cancel_url;
      s.status = "open";
      s.payment_status = "unpaid";
      s.created = Math.floor(Date.now() / 1000);
      return { status: 200, body: s };
    }
    if (request.method === "POST" && request.path === "/v1/billing_portal/sessions") {
      const s = structuredClone(portalSessionFixture) as Json;
      s.id = nextId("bps");
      s.customer = p.customer;
      s.return_url = p.return_url;
      s.flow = null;
      s.url = `https://billing.stripe.com/p/session/${s.id}`;
      return { status: 200, body: s };
    }
    return {
      status: 404,
      body: { error: { type: "invalid_request_error", message: `Unrecognized request URL (${request.method}: ${request.path}).` } },
    };
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const form = new URLSearchParams(await req.text());
    const params: Record<string, string> = {};
    form.forEach((value, key) => {
      params[key] = value;
    });
    const recorded: RecordedRequest = {
      method: req.method,
      path: url.pathname,
      idempotencyKey: req.headers.get("idempotency-key"),
      stripeVersion: req.headers.get("stripe-version"),
      authorization: req.headers.get("authorization"),
      params,
    };
    requests.push(recorded);
    // Stripe replays the first response for a key (for 24 hours); the fake, for its lifetime.
    const replayKey = recorded.idempotencyKey === null ? null : `${recorded.method} ${recorded.path} ${recorded.idempotencyKey}`;
    // Injected failures behave like Stripe's validation failures: no idempotent result is saved.
    const failure = failures.shift();
    let result = failure ? { status: failure.status, body: { error: failure.error } as Json } : replayKey === null ? undefined : replays.get(replayKey);
    if (result === undefined) {
      result = answer(recorded);
      if (replayKey !== null && result.status < 500) replays.set(replayKey, result);
    }
    return Response.json(result.body, {
      status: result.status,
      headers: { "request-id": `req_${crypto.randomUUID().slice(0, 12)}`, "stripe-version": recorded.stripeVersion ?? "" },
    });
  });
  const { port } = server.addr as Deno.NetAddr;

  return Promise.resolve({
    url: `http://127.0.0.1:${port}`,
    requests,
    customers,
    failNext(count, status, error) {
      for (let i = 0; i < count; i++) failures.push({ status, error });
    },
    requestsTo(path) {
      return requests.filter((r) => r.path === path);
    },
    async close() {
      await server.shutdown();
    },
  });
}
