/**
 * A local fake of the part of the Stripe API our functions call, for tests: the stripe library
 * is pointed at it with STRIPE_API_BASE. It answers with Stripe's fixture objects (fixtures/),
 * honours Idempotency-Key the way Stripe does (same key, same response), records every request,
 * and can be told to fail the next calls.
 *
 *   POST /v1/customers                   customer.json with a new id, email and metadata
 *   POST /v1/checkout/sessions           checkout.session.json with the session parameters
 *   POST /v1/billing_portal/sessions     billing_portal.session.json for the customer
 *   GET  /v1/customers/:id               the customer, with the default payment method set by setPaymentMethod
 *   POST /v1/payment_intents             payment_intent.json, confirmed off-session by the payment method:
 *                                        pm_card_visa succeeds; pm_card_chargeDeclined → 402 card_declined;
 *                                        pm_card_authenticationRequired → 402 authentication_required;
 *                                        pm_card_threeDSecureRequired → 200 with status requires_action
 *   GET  /v1/subscriptions/:id           a subscription added with addSubscription, with its items
 *   POST /v1/subscription_items/:id      quantity (and proration_behavior) of an item
 *   GET  /v1/products/:id, POST /v1/products, POST /v1/products/:id
 *   GET  /v1/prices (lookup_keys[], active), GET /v1/prices/search (lookup_key:'k'), POST /v1/prices
 *                                        (lookup_key, transfer_lookup_key), POST /v1/prices/:id (active)
 *   POST /v1/billing/meter_events        a meter event, kept by identifier: a second event with the same
 *                                        identifier is refused (400 "An event already exists with identifier ...")
 */
import customerFixture from "./fixtures/customer.json" with { type: "json" };
import checkoutSessionFixture from "./fixtures/checkout.session.json" with { type: "json" };
import portalSessionFixture from "./fixtures/billing_portal.session.json" with { type: "json" };
import paymentIntentFixture from "./fixtures/payment_intent.json" with { type: "json" };
import subscriptionItemFixture from "./fixtures/subscription_item.json" with { type: "json" };
import productFixture from "./fixtures/product.json" with { type: "json" };
import priceFixture from "./fixtures/price.json" with { type: "json" };

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
  /** The next `count` requests are carried out, but their answer is lost: a 500 comes back instead. */
  loseNextAnswers(count: number): void;
  /** Meter events recorded, by identifier (a retried or repeated identifier is recorded once). */
  readonly meterEvents: Map<string, Json>;
  /** Requests to a path (e.g. "/v1/customers"). */
  requestsTo(path: string): RecordedRequest[];
  /** Requests whose path starts with the prefix (e.g. "/v1/subscription_items/"). */
  requestsUnder(prefix: string, method?: string): RecordedRequest[];
  /** The customer's default payment method (invoice_settings.default_payment_method). */
  setPaymentMethod(customerId: string, paymentMethod: string | null): void;
  /** PaymentIntents created (each once, whatever the retries), by id. */
  readonly paymentIntents: Map<string, Json>;
  /** A subscription the fake knows, with one item per [item id, price id, quantity]. */
  addSubscription(id: string, items: { id: string; price: string; quantity: number }[]): void;
  /** The current quantity of a subscription item. */
  itemQuantity(itemId: string): number | undefined;
  /** Called (and awaited) after a request is answered and before the answer is sent: a webhook that overtakes the response. */
  onAnswer: ((request: RecordedRequest, status: number, body: Json) => Promise<void>) | null;
  /** Products and prices, by id. */
  readonly products: Map<string, Json>;
  readonly prices: Map<string, Json>;
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
  const paymentMethods = new Map<string, string | null>();
  const paymentIntents = new Map<string, Json>();
  const subscriptions = new Map<string, string[]>();
  const items = new Map<string, Json>();
  const products = new Map<string, Json>();
  const prices = new Map<string, Json>();
  const replays = new Map<string, { status: number; body: Json }>();
  const failures: { status: number; error: Json }[] = [];
  const meterEvents = new Map<string, Json>();
  let lostAnswers = 0;
  let counter = 0;
  const nextId = (prefix: string) =>
    `${prefix}_fake${(++counter).toString().padStart(6, "0")}${crypto.randomUUID().slice(0, 8)}`;

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
    const notFound = (what: string) => ({
      status: 404,
      body: { error: { type: "invalid_request_error", code: "resource_missing", message: `No such ${what}` } },
    });
    const now = Math.floor(Date.now() / 1000);
    let m: RegExpMatchArray | null;
    if (request.method === "GET" && (m = request.path.match(/^\/v1\/customers\/([^/]+)$/))) {
      const c = structuredClone(customerFixture) as Json;
      c.id = m[1];
      c.invoice_settings = {
        custom_fields: null,
        default_payment_method: paymentMethods.get(m[1]) ?? null,
        footer: null,
        rendering_options: null,
      };
      return { status: 200, body: c };
    }
    if (request.method === "POST" && request.path === "/v1/payment_intents") {
      const pi = structuredClone(paymentIntentFixture) as Json;
      pi.id = nextId("pi");
      pi.amount = Number(p.amount);
      pi.currency = p.currency;
      pi.customer = p.customer ?? null;
      pi.payment_method = p.payment_method ?? null;
      pi.metadata = nested(p, "metadata");
      pi.created = now;
      pi.latest_charge = null;
      pi.last_payment_error = null;
      pi.next_action = null;
      const decline = (code: string, declineCode: string | null, message: string) => {
        pi.status = "requires_payment_method";
        pi.last_payment_error = { type: "card_error", code, decline_code: declineCode, message };
        paymentIntents.set(pi.id as string, pi);
        return {
          status: 402,
          body: { error: { type: "card_error", code, decline_code: declineCode, message, payment_intent: pi } },
        };
      };
      if (p.payment_method === "pm_card_chargeDeclined") {
        return decline("card_declined", "generic_decline", "Your card was declined.");
      }
      if (p.payment_method === "pm_card_authenticationRequired") {
        return decline(
          "authentication_required",
          "authentication_required",
          "Your card was declined. This transaction requires authentication.",
        );
      }
      if (p.payment_method === "pm_card_threeDSecureRequired") {
        pi.status = "requires_action";
        pi.next_action = { type: "use_stripe_sdk" };
      } else {
        pi.status = "succeeded";
        pi.amount_received = pi.amount;
        pi.latest_charge = nextId("ch");
      }
      paymentIntents.set(pi.id as string, pi);
      return { status: 200, body: pi };
    }
    if (request.method === "GET" && (m = request.path.match(/^\/v1\/subscriptions\/([^/]+)$/))) {
      const ids = subscriptions.get(m[1]);
      if (!ids) return notFound(`subscription: '${m[1]}'`);
      return {
        status: 200,
        body: {
          id: m[1],
          object: "subscription",
          status: "active",
          items: { object: "list", data: ids.map((id) => items.get(id)), has_more: false },
        },
      };
    }
    if (request.method === "POST" && (m = request.path.match(/^\/v1\/subscription_items\/([^/]+)$/))) {
      const item = items.get(m[1]);
      if (!item) return notFound(`subscription_item: '${m[1]}'`);
      if (p.quantity !== undefined) item.quantity = Number(p.quantity);
      return { status: 200, body: item };
    }
    if (request.method === "POST" && request.path === "/v1/products") {
      const prod = structuredClone(productFixture) as Json;
      prod.id = p.id ?? nextId("prod");
      prod.name = p.name;
      prod.description = p.description ?? null;
      prod.active = true;
      prod.metadata = nested(p, "metadata");
      prod.created = now;
      prod.default_price = null;
      products.set(prod.id as string, prod);
      return { status: 200, body: prod };
    }
    if ((m = request.path.match(/^\/v1\/products\/([^/]+)$/))) {
      const prod = products.get(m[1]);
      if (!prod) return notFound(`product: '${m[1]}'`);
      if (request.method === "POST") {
        if (p.name !== undefined) prod.name = p.name;
        if (p.active !== undefined) prod.active = p.active === "true";
        Object.assign(prod.metadata as Json, nested(p, "metadata"));
      }
      return { status: 200, body: prod };
    }
    if (request.method === "GET" && (request.path === "/v1/prices" || request.path === "/v1/prices/search")) {
      let keys = Object.entries(p).filter(([k]) => k.startsWith("lookup_keys[")).map(([, v]) => v);
      if (request.path === "/v1/prices/search") {
        keys = [...(p.query ?? "").matchAll(/lookup_key:['"]([^'"]+)['"]/g)].map((x) => x[1]);
      }
      const data = [...prices.values()].filter((price) =>
        (keys.length === 0 || keys.includes(price.lookup_key as string)) &&
        (p.active === undefined || String(price.active) === p.active)
      );
      return {
        status: 200,
        body: {
          object: request.path.endsWith("search") ? "search_result" : "list",
          data,
          has_more: false,
          url: request.path,
        },
      };
    }
    if (request.method === "POST" && request.path === "/v1/prices") {
      const price = structuredClone(priceFixture) as Json;
      price.id = nextId("price");
      price.product = p.product;
      price.unit_amount = Number(p.unit_amount);
      price.currency = p.currency;
      price.active = true;
      price.created = now;
      price.metadata = nested(p, "metadata");
      price.nickname = p.nickname ?? null;
      price.recurring = p["recurring[interval]"]
        ? {
          interval: p["recurring[interval]"],
          interval_count: 1,
          usage_type: "licensed",
          meter: null,
          trial_period_days: null,
        }
        : null;
      price.type = price.recurring ? "recurring" : "one_time";
      price.lookup_key = p.lookup_key ?? null;
      if (p.lookup_key) {
        for (const other of prices.values()) {
          if (other.lookup_key !== p.lookup_key) continue;
          if (p.transfer_lookup_key !== "true") {
            return {
              status: 400,
              body: {
                error: {
                  type: "invalid_request_error",
                  message: `A price (\`${other.id}\`) already uses that lookup key.`,
                },
              },
            };
          }
          other.lookup_key = null;
        }
      }
      prices.set(price.id as string, price);
      return { status: 200, body: price };
    }
    if ((m = request.path.match(/^\/v1\/prices\/([^/]+)$/))) {
      const price = prices.get(m[1]);
      if (!price) return notFound(`price: '${m[1]}'`);
      if (request.method === "POST" && p.active !== undefined) price.active = p.active === "true";
      return { status: 200, body: price };
    }
    if (request.method === "POST" && request.path === "/v1/billing/meter_events") {
      const identifier = p.identifier ?? nextId("mev");
      if (meterEvents.has(identifier)) {
        return {
          status: 400,
          body: {
            error: { type: "invalid_request_error", message: `An event already exists with identifier ${identifier}.` },
          },
        };
      }
      const event: Json = {
        object: "billing.meter_event",
        created: now,
        event_name: p.event_name,
        identifier,
        livemode: false,
        payload: nested(p, "payload"),
        timestamp: p.timestamp === undefined ? now : Number(p.timestamp),
      };
      meterEvents.set(identifier, event);
      return { status: 200, body: event };
    }
    return {
      status: 404,
      body: {
        error: {
          type: "invalid_request_error",
          message: `Unrecognized request URL (${request.method}: ${request.path}).`,
        },
      },
    };
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const form = new URLSearchParams(await req.text());
    const params: Record<string, string> = {};
    // GET parameters come in the query string, POST parameters in the form body.
    for (const source of [url.searchParams, form]) {
      source.forEach((value, key) => {
        params[key] = value;
      });
    }
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
    const replayKey = recorded.idempotencyKey === null
      ? null
      : `${recorded.method} ${recorded.path} ${recorded.idempotencyKey}`;
    // Injected failures behave like Stripe's validation failures: no idempotent result is saved.
    const failure = failures.shift();
    let result = failure
      ? { status: failure.status, body: { error: failure.error } as Json }
      : replayKey === null
      ? undefined
      : replays.get(replayKey);
    if (result === undefined) {
      result = answer(recorded);
      if (lostAnswers > 0) {
        // Carried out, but the answer never arrives: like a timeout, nothing is saved for replay.
        lostAnswers--;
        result = { status: 500, body: { error: { type: "api_error", message: "An unknown error occurred." } } };
      } else if (replayKey !== null && result.status < 500) replays.set(replayKey, result);
    }
    if (fake.onAnswer) await fake.onAnswer(recorded, result.status, result.body);
    return Response.json(result.body, {
      status: result.status,
      headers: {
        "request-id": `req_${crypto.randomUUID().slice(0, 12)}`,
        "stripe-version": recorded.stripeVersion ?? "",
      },
    });
  });
  const { port } = server.addr as Deno.NetAddr;

  const fake: FakeStripe = {
    url: `http://127.0.0.1:${port}`,
    onAnswer: null,
    requests,
    customers,
    failNext(count, status, error) {
      for (let i = 0; i < count; i++) failures.push({ status, error });
    },
    loseNextAnswers(count) {
      lostAnswers += count;
    },
    meterEvents,
    requestsTo(path) {
      return requests.filter((r) => r.path === path);
    },
    requestsUnder(prefix, method) {
      return requests.filter((r) => r.path.startsWith(prefix) && (method === undefined || r.method === method));
    },
    setPaymentMethod(customerId, paymentMethod) {
      paymentMethods.set(customerId, paymentMethod);
    },
    paymentIntents,
    addSubscription(id, list) {
      subscriptions.set(id, list.map((i) => i.id));
      for (const i of list) {
        const item = structuredClone(subscriptionItemFixture) as Json;
        item.id = i.id;
        item.subscription = id;
        item.quantity = i.quantity;
        item.price = { ...(item.price as Json), id: i.price };
        items.set(i.id, item);
      }
    },
    itemQuantity(itemId) {
      const q = items.get(itemId)?.quantity;
      return q === undefined ? undefined : Number(q);
    },
    products,
    prices,
    async close() {
      await server.shutdown();
    },
  };
  return Promise.resolve(fake);
}
