/**
 * Story: another app shares the project's JWT secret (or its signing keys) and mints tokens for
 * its own audience. Checkout and the billing portal must not take them for our users': a user
 * token needs `aud` = `authenticated` (a string, or an array holding it) and, when the project's
 * auth URL is known, `iss` = `<SUPABASE_URL>/auth/v1` (or JWT_ISSUER). Anything else is a 401 with
 * a stable code, on the shared-secret path and on the JWKS path alike.
 */
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { createBillingPortalHandler } from "../billing-portal/handler.ts";
import { createCheckoutHandler } from "../checkout/handler.ts";
import { verifierFromEnv } from "../_shared/jwt.ts";
import { assertEquals, errorOf, okValue } from "./_support/assert.ts";
import { connect, testEnv } from "./_support/stripe/billing_db.ts";
import { signHs256, userClaims } from "./_support/tokens.ts";

const USER = "3c5a8f0e-1d2b-4e6f-8a9b-0c1d2e3f4a5b";
const PROJECT = "http://127.0.0.1:54321";
const ISSUER = `${PROJECT}/auth/v1`;

/** A token GoTrue of this project would issue, with `extra` claims changed. */
const tokenWith = (extra: JWTPayload) => signHs256(userClaims(USER, { iss: ISSUER, ...extra }));

async function post(handler: (r: Request) => Promise<Response>, token: string, body: unknown) {
  const response = await handler(
    new Request("http://127.0.0.1:54321/functions/v1/endpoint", {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        origin: "http://localhost:3000",
      },
      body: JSON.stringify(body),
    }),
  );
  return { status: response.status, body: await response.json() as { error?: { code: string; message: string } } };
}

const checkoutBody = {
  plan: "no_such_plan",
  success_url: "http://localhost:3000/billing/success",
  cancel_url: "http://localhost:3000/billing",
};
const portalBody = { return_url: "http://localhost:3000/billing" };

Deno.test("checkout and billing-portal refuse an HS256 token minted for another audience (401 invalid_jwt_audience)", async () => {
  const sql = connect(2);
  const env = testEnv({ SUPABASE_URL: PROJECT });
  const checkout = createCheckoutHandler({ env, sql, log: () => {} });
  const portal = createBillingPortalHandler({ env, sql, log: () => {} });
  try {
    for (const aud of ["some-other-app", ["some-other-app", "another-one"]]) {
      const token = await tokenWith({ aud });
      for (
        const [name, handler, body] of [["checkout", checkout, checkoutBody], [
          "billing-portal",
          portal,
          portalBody,
        ]] as const
      ) {
        const answer = await post(handler, token, body);
        assertEquals(answer.status, 401, `${name}, aud ${JSON.stringify(aud)}: ${JSON.stringify(answer.body)}`);
        assertEquals(answer.body.error?.code, "invalid_jwt_audience", name);
      }
    }
    // No aud at all is no user token either.
    const noAud = await signHs256(userClaims(USER, { iss: ISSUER, aud: undefined }));
    assertEquals((await post(checkout, noAud, checkoutBody)).body.error?.code, "invalid_jwt_audience");
  } finally {
    await sql.end();
  }
});

Deno.test("checkout and billing-portal refuse a token from another issuer when the project's auth URL is known (401 invalid_jwt_issuer)", async () => {
  const sql = connect(2);
  const env = testEnv({ SUPABASE_URL: PROJECT });
  const checkout = createCheckoutHandler({ env, sql, log: () => {} });
  const portal = createBillingPortalHandler({ env, sql, log: () => {} });
  try {
    for (const iss of ["https://some-other-app.example.com/auth/v1", "supabase", `${PROJECT}/auth/v1/`, undefined]) {
      const token = await tokenWith({ iss });
      for (
        const [name, handler, body] of [["checkout", checkout, checkoutBody], [
          "billing-portal",
          portal,
          portalBody,
        ]] as const
      ) {
        const answer = await post(handler, token, body);
        assertEquals(answer.status, 401, `${name}, iss ${iss}: ${JSON.stringify(answer.body)}`);
        assertEquals(answer.body.error?.code, "invalid_jwt_issuer", name);
      }
    }
  } finally {
    await sql.end();
  }
});

Deno.test("the project's own user tokens still pass: aud as a string or an array holding authenticated", async () => {
  const env = testEnv({ SUPABASE_URL: PROJECT });
  const verifier = okValue(verifierFromEnv(env));
  assertEquals(okValue(await verifier.verify(await tokenWith({ aud: "authenticated" }))).userId, USER);
  assertEquals(okValue(await verifier.verify(await tokenWith({ aud: ["other", "authenticated"] }))).userId, USER);
  // The project URL may be written with a trailing slash.
  const slashed = okValue(verifierFromEnv(testEnv({ SUPABASE_URL: `${PROJECT}/` })));
  assertEquals(okValue(await slashed.verify(await tokenWith({}))).userId, USER);
});

Deno.test("JWT_ISSUER names the issuer where SUPABASE_URL is not the public URL (self-hosting, supabase start)", async () => {
  // `supabase functions serve` gives functions SUPABASE_URL=http://kong:8000, while GoTrue signs
  // with the public URL: JWT_ISSUER says which one tokens carry.
  const env = testEnv({ SUPABASE_URL: "http://kong:8000", JWT_ISSUER: ISSUER });
  const verifier = okValue(verifierFromEnv(env));
  assertEquals(okValue(await verifier.verify(await tokenWith({}))).userId, USER);
  assertEquals(
    errorOf(await verifier.verify(await tokenWith({ iss: "http://kong:8000/auth/v1" }))).code,
    "invalid_jwt_issuer",
  );
});

Deno.test("without SUPABASE_URL or JWT_ISSUER the issuer is unknown and not checked, the audience still is", async () => {
  const verifier = okValue(verifierFromEnv(testEnv()));
  assertEquals(
    okValue(await verifier.verify(await tokenWith({ iss: "https://anything.example/auth/v1" }))).userId,
    USER,
  );
  const wrongAud = errorOf(await verifier.verify(await tokenWith({ aud: "some-other-app" })));
  assertEquals([wrongAud.code, wrongAud.status], ["invalid_jwt_audience", 401]);
});

Deno.test("the JWKS path checks audience and issuer the same way", async () => {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "key-1", alg: "ES256", use: "sig" };
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: resolve },
    () => Response.json({ keys: [jwk] }),
  );
  const url = `http://127.0.0.1:${(await listening).port}`;
  try {
    const verifier = okValue(verifierFromEnv(new Map([["SUPABASE_URL", url]])));
    const sign = (extra: JWTPayload) =>
      new SignJWT(userClaims(USER, { iss: `${url}/auth/v1`, ...extra }))
        .setProtectedHeader({ alg: "ES256", kid: "key-1", typ: "JWT" }).sign(privateKey);
    assertEquals(okValue(await verifier.verify(await sign({}))).userId, USER);
    assertEquals(errorOf(await verifier.verify(await sign({ aud: "some-other-app" }))).code, "invalid_jwt_audience");
    assertEquals(errorOf(await verifier.verify(await sign({ iss: ISSUER }))).code, "invalid_jwt_issuer");
  } finally {
    await server.shutdown();
  }
});
