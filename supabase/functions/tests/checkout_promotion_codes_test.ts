/**
 * Story: the operator runs a promotion. Checkout Sessions accept Stripe promotion codes only
 * when STRIPE_ALLOW_PROMOTION_CODES=true (default off: a code field nobody asked for invites
 * customers to go looking for codes); the discount then reaches us on the session and its
 * invoices, and earns the full credits (stripe_discounts_test.ts). A value other than true or
 * false is a configuration error, not a silent default.
 */
import { createCheckoutHandler } from "../checkout/handler.ts";
import { assertEquals } from "./_support/assert.ts";
import { signHs256, userClaims } from "./_support/tokens.ts";
import { connect, createCatalog, createUser, testEnv } from "./_support/stripe/billing_db.ts";
import { startFakeStripe } from "./_support/stripe/fake_stripe.ts";

const urls = { success_url: "http://localhost:3000/billing/success", cancel_url: "http://localhost:3000/billing" };

/** Opens a checkout for a fresh user's plan with the given setting; what the session was sent, or the error. */
async function checkoutWith(
  setting: string | undefined,
): Promise<{ status: number; params?: Record<string, string>; code?: string }> {
  const sql = connect(4);
  const fake = await startFakeStripe();
  try {
    const extra: Record<string, string> = { STRIPE_API_BASE: fake.url };
    if (setting !== undefined) extra.STRIPE_ALLOW_PROMOTION_CODES = setting;
    const handler = createCheckoutHandler({ env: testEnv(extra), sql, log: () => {} });
    const catalog = await createCatalog(sql);
    const user = await createUser(sql);
    const response = await handler(
      new Request("http://127.0.0.1:54321/checkout", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${await signHs256(userClaims(user))}` },
        body: JSON.stringify({ plan: catalog.basic.key, ...urls }),
      }),
    );
    const body = await response.json();
    return {
      status: response.status,
      params: fake.requestsTo("/v1/checkout/sessions")[0]?.params,
      code: body.error?.code,
    };
  } finally {
    await fake.close();
    await sql.end();
  }
}

Deno.test("checkout sessions accept promotion codes only when STRIPE_ALLOW_PROMOTION_CODES=true", async () => {
  const unset = await checkoutWith(undefined);
  assertEquals([unset.status, unset.params?.allow_promotion_codes], [200, undefined], "off by default");

  const off = await checkoutWith("false");
  assertEquals([off.status, off.params?.allow_promotion_codes], [200, undefined]);

  const on = await checkoutWith("true");
  assertEquals(
    [on.status, on.params?.allow_promotion_codes],
    [200, "true"],
    "the session offers the promotion code field",
  );
});

Deno.test("a STRIPE_ALLOW_PROMOTION_CODES that is neither true nor false stops checkout with config_invalid, before Stripe is called", async () => {
  const typo = await checkoutWith("yes");
  assertEquals([typo.status, typo.code, typo.params], [500, "config_invalid", undefined]);
});
