/**
 * Story: a request reaches an edge function with a bearer token. Only tokens
 * Supabase Auth could have issued for this project get through; every forgery
 * is refused with a stable code the client can act on, and none throws.
 */
import { base64url, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { authenticate, bearerToken, createJwtVerifier, verifierFromEnv, verifyJwt } from "../_shared/jwt.ts";
import { assert, assertEquals, errorOf, okValue } from "./_support/assert.ts";
import { nowSeconds, signHs256, TEST_JWT_SECRET, unsignedToken, userClaims } from "./_support/tokens.ts";

const verifier = createJwtVerifier({ kind: "hs256", secret: TEST_JWT_SECRET });
const USER = "8b0f1d52-6a4e-4c1b-9a57-3f3c1e2d4b61";

function requestWith(authorization?: string): Request {
  const headers = new Headers();
  if (authorization !== undefined) headers.set("authorization", authorization);
  return new Request("http://127.0.0.1:54321/functions/v1/checkout", { method: "POST", headers });
}

Deno.test("a token GoTrue would issue is accepted, with every claim passed through", async () => {
  const claims = userClaims(USER, { user_metadata: { plan: "pro" } });
  const verified = okValue(await verifier.verify(await signHs256(claims)));
  assertEquals(verified.role, "authenticated");
  assertEquals(verified.userId, USER);
  // Proves nothing is dropped: RLS helpers may read aal, is_anonymous, session_id, metadata.
  assertEquals(verified.claims, { ...claims, role: "authenticated" });
});

Deno.test("the anon key verifies as role anon with no user id", async () => {
  const anonKey = await signHs256({ iss: "supabase-demo", role: "anon", exp: nowSeconds() + 3600 });
  const verified = okValue(await verifier.verify(anonKey));
  assertEquals(verified.role, "anon");
  assertEquals(verified.userId, null);
});

Deno.test("a token signed with another secret (forged) is invalid_jwt, status 401", async () => {
  const forged = await signHs256(userClaims(USER), "an-attacker-secret-that-is-at-least-32-chars");
  const error = errorOf(await verifier.verify(forged));
  assertEquals(error.code, "invalid_jwt");
  assertEquals(error.status, 401);
});

Deno.test("a genuine signature over a changed payload (privilege escalation) is invalid_jwt", async () => {
  const [header, , signature] = (await signHs256(userClaims(USER))).split(".");
  const escalated = base64url.encode(JSON.stringify(userClaims(USER, { role: "service_role" })));
  const error = errorOf(await verifier.verify(`${header}.${escalated}.${signature}`));
  assertEquals(error.code, "invalid_jwt");
});

Deno.test("an expired token is expired_jwt, so clients know to refresh the session", async () => {
  const expired = await signHs256(userClaims(USER, { iat: nowSeconds() - 7200, exp: nowSeconds() - 60 }));
  const error = errorOf(await verifier.verify(expired));
  assertEquals(error.code, "expired_jwt");
  assertEquals(error.status, 401);
});

Deno.test("an unsigned token (alg none) is invalid_jwt", async () => {
  const error = errorOf(await verifier.verify(unsignedToken(userClaims(USER))));
  assertEquals(error.code, "invalid_jwt");
});

Deno.test("an RS256 token is refused by an HS256 verifier (no algorithm confusion)", async () => {
  const { privateKey } = await generateKeyPair("RS256");
  const token = await new SignJWT(userClaims(USER)).setProtectedHeader({ alg: "RS256" }).sign(privateKey);
  const error = errorOf(await verifier.verify(token));
  assertEquals(error.code, "invalid_jwt");
});

Deno.test("claims PostgREST could not honour are refused even when correctly signed", async (t) => {
  const cases: Array<[string, JWTPayload]> = [
    ["no exp (a token that never expires)", { ...userClaims(USER), exp: undefined }],
    ["a role outside the API roles", userClaims(USER, { role: "postgres" })],
    ["no role at all", { ...userClaims(USER), role: undefined }],
    ["an authenticated token without sub", { ...userClaims(USER), sub: undefined }],
    ["an authenticated token whose sub is not a UUID", userClaims("not-a-uuid")],
  ];
  for (const [name, claims] of cases) {
    await t.step(name, async () => {
      const payload = JSON.parse(JSON.stringify(claims)) as JWTPayload; // drop undefined keys
      const error = errorOf(await verifier.verify(await signHs256(payload)));
      assertEquals(error.code, "invalid_jwt");
      assertEquals(error.status, 401);
    });
  }
});

Deno.test("garbage in the bearer slot is invalid_jwt, not an exception", async () => {
  for (const token of ["abc", "a.b.c", "", "eyJhbGciOiJIUzI1NiJ9..", "....."]) {
    assertEquals(errorOf(await verifier.verify(token)).code, "invalid_jwt");
  }
});

Deno.test("bearerToken reads 'Authorization: Bearer <token>' and nothing else", () => {
  assertEquals(okValue(bearerToken(requestWith("bearer abc.def.ghi"))), "abc.def.ghi");
  // Proves each malformed header becomes missing_jwt rather than a verification attempt.
  for (const header of [undefined, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "abc.def.ghi"]) {
    const error = errorOf(bearerToken(requestWith(header)));
    assertEquals(error.code, "missing_jwt", `header ${JSON.stringify(header)}`);
    assertEquals(error.status, 401);
  }
});

Deno.test("authenticate: user endpoints need a user token; the anon key alone is missing_jwt", async () => {
  const anonKey = await signHs256({ role: "anon", exp: nowSeconds() + 60 });
  const asAnon = await authenticate(requestWith(`Bearer ${anonKey}`), { verifier });
  assertEquals(errorOf(asAnon).code, "missing_jwt");

  const allowed = await authenticate(requestWith(`Bearer ${anonKey}`), { verifier, roles: ["anon", "authenticated"] });
  assertEquals(okValue(allowed).role, "anon");

  const user = await authenticate(requestWith(`Bearer ${await signHs256(userClaims(USER))}`), { verifier });
  assertEquals(okValue(user).userId, USER);

  assertEquals(errorOf(await authenticate(requestWith(), { verifier })).code, "missing_jwt");
});

Deno.test("verifyJwt without a verifier uses JWT_SECRET from the environment", async () => {
  // The test command sets JWT_SECRET; when unset the helper's default is the same local secret.
  const previous = Deno.env.get("JWT_SECRET");
  Deno.env.set("JWT_SECRET", TEST_JWT_SECRET);
  try {
    assertEquals(okValue(await verifyJwt(await signHs256(userClaims(USER)))).userId, USER);
    const forged = await verifyJwt(await signHs256(userClaims(USER), "x".repeat(40)));
    assertEquals(errorOf(forged).code, "invalid_jwt");
  } finally {
    if (previous === undefined) Deno.env.delete("JWT_SECRET");
    else Deno.env.set("JWT_SECRET", previous);
  }
});

Deno.test("a deployment without JWT settings fails loudly (500), not as the caller's fault", () => {
  const none = errorOf(verifierFromEnv(new Map()));
  assertEquals(none.code, "config_missing");
  assertEquals(none.status, 500);
  assert(none.message.includes("JWT_SECRET"));
  const short = errorOf(verifierFromEnv(new Map([["JWT_SECRET", "too-short"]])));
  assertEquals(short.code, "config_invalid");
});

// --- JWKS: projects on asymmetric signing keys -------------------------------

async function serveJwks(jwks: unknown): Promise<{ url: string; close: () => Promise<void> }> {
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: resolve }, (req) => {
    if (new URL(req.url).pathname !== "/auth/v1/.well-known/jwks.json") return new Response("no", { status: 404 });
    return Response.json(jwks);
  });
  const addr = await listening;
  return { url: `http://127.0.0.1:${addr.port}`, close: () => server.shutdown() };
}

Deno.test("without JWT_SECRET, tokens are verified with the project's JWKS", async () => {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "key-1", alg: "ES256", use: "sig" };
  const server = await serveJwks({ keys: [jwk] });
  try {
    const env = new Map([["SUPABASE_URL", server.url]]);
    const jwks = okValue(verifierFromEnv(env));

    // GoTrue of that project signs with iss = <SUPABASE_URL>/auth/v1.
    const sign = async (key: CryptoKey, kid: string) =>
      await new SignJWT(userClaims(USER, { iss: `${server.url}/auth/v1` })).setProtectedHeader({
        alg: "ES256",
        kid,
        typ: "JWT",
      }).sign(key);

    assertEquals(okValue(await jwks.verify(await sign(privateKey, "key-1"))).userId, USER);

    // A key the project never published, even under the published kid, is refused.
    const other = await generateKeyPair("ES256");
    assertEquals(errorOf(await jwks.verify(await sign(other.privateKey, "key-1"))).code, "invalid_jwt");
    assertEquals(errorOf(await jwks.verify(await sign(other.privateKey, "key-2"))).code, "invalid_jwt");
    // An HS256 token signed with the well-known local secret is refused in JWKS mode.
    assertEquals(errorOf(await jwks.verify(await signHs256(userClaims(USER)))).code, "invalid_jwt");
  } finally {
    await server.close();
  }
});

Deno.test("an unreachable JWKS is jwks_unavailable (503), so clients do not sign users out", async () => {
  const server = await serveJwks({ keys: [] });
  await server.close(); // the port is now closed
  const jwks = createJwtVerifier({ kind: "jwks", jwksUrl: new URL(`${server.url}/auth/v1/.well-known/jwks.json`) });
  const { privateKey } = await generateKeyPair("ES256");
  const token = await new SignJWT(userClaims(USER)).setProtectedHeader({ alg: "ES256", kid: "k" }).sign(privateKey);
  const error = errorOf(await jwks.verify(token));
  assertEquals(error.code, "jwks_unavailable");
  assertEquals(error.status, 503);
});
