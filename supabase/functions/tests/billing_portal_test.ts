/**
 * Story: a customer manages their subscription in Stripe's billing portal. POST
 * /functions/v1/billing-portal returns the portal URL for an account that has a Stripe
 * customer, to billing managers only, and only with a return URL of ours.
 */
import { createBillingPortalHandler } from "../billing-portal/handler.ts";
import type { Sql } from "../_shared/db.ts";
import { assertEquals } from "./_support/assert.ts";
import { signHs256, userClaims } from "./_support/tokens.ts";
import { connect, createTeam, createUser, testEnv } from "./_support/stripe/billing_db.ts";
import { type FakeStripe, startFakeStripe } from "./_support/stripe/fake_stripe.ts";
import { uid } from "./_support/stripe/events.ts";

async function withPortal(
  fn: (
    sql: Sql,
    fake: FakeStripe,
    portal: (
      token: string | null,
      body: unknown,
    ) => Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string } } }>,
  ) => Promise<void>,
): Promise<void> {
  const sql = connect();
  const fake = await startFakeStripe();
  const handler = createBillingPortalHandler({ env: testEnv({ STRIPE_API_BASE: fake.url }), sql, log: () => {} });
  try {
    await fn(sql, fake, async (token, body) => {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const response = await handler(
        new Request("http://127.0.0.1:54321/billing-portal", { method: "POST", headers, body: JSON.stringify(body) }),
      );
      return { status: response.status, body: await response.json() };
    });
  } finally {
    await fake.close();
    await sql.end();
  }
}

const returnUrl = "http://localhost:3000/billing";

Deno.test("a billing manager gets the portal URL for the account's customer", async () => {
  await withPortal(async (sql, fake, portal) => {
    const user = await createUser(sql);
    const cus = `cus_${uid()}`;
    await sql`insert into public.billing_customers (account_id, stripe_customer_id, status) values (${user}, ${cus}, 'active')`;
    const response = await portal(await signHs256(userClaims(user)), { return_url: returnUrl });
    assertEquals(response.status, 200, JSON.stringify(response.body));
    const [request] = fake.requestsTo("/v1/billing_portal/sessions");
    assertEquals([request.params.customer, request.params.return_url], [cus, returnUrl]);
    assertEquals(
      response.body.url,
      `https://billing.stripe.com/p/session/${(response.body.url as string).split("/").pop()}`,
    );
  });
});

Deno.test("the portal refuses accounts without a customer, members without billing.manage, open redirects and missing JWTs", async () => {
  await withPortal(async (sql, fake, portal) => {
    const owner = await createUser(sql);
    const member = await createUser(sql);
    const team = await createTeam(sql, owner, [[member, "member"]]);
    await sql`insert into public.billing_customers (account_id, stripe_customer_id, status) values (${team}, ${`cus_${uid()}`}, 'active')`;
    const cases: [string, string | null, unknown, number, string][] = [
      ["no customer yet", await signHs256(userClaims(member)), { return_url: returnUrl }, 404, "not_found"],
      [
        "a member cannot manage billing",
        await signHs256(userClaims(member)),
        { account_id: team, return_url: returnUrl },
        403,
        "permission_denied",
      ],
      [
        "open redirect",
        await signHs256(userClaims(owner)),
        { account_id: team, return_url: "https://evil.example.com/" },
        400,
        "invalid_redirect",
      ],
      ["no return_url", await signHs256(userClaims(owner)), { account_id: team }, 400, "invalid_input"],
      ["no JWT", null, { account_id: team, return_url: returnUrl }, 401, "missing_jwt"],
    ];
    for (const [name, token, body, status, code] of cases) {
      const response = await portal(token, body);
      assertEquals([response.status, response.body.error?.code], [status, code], name);
    }
    assertEquals(fake.requests.length, 0);
    assertEquals(
      (await portal(await signHs256(userClaims(owner)), { account_id: team, return_url: returnUrl })).status,
      200,
      "the owner may",
    );
  });
});
