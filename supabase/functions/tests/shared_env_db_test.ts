/**
 * Story: a developer deploys the functions, locally or on Supabase. Settings
 * are read once, typed, and a missing or malformed one is reported by name;
 * the database client is created lazily, once per isolate, and can be closed.
 */
import { allowedOrigins, dbUrl, jwtVerification, listEnv, requireEnv } from "../_shared/env.ts";
import { closeDb, ConfigError, getDb, sslFor } from "../_shared/db.ts";
import { asServiceRole } from "../_shared/as_user.ts";
import { assert, assertEquals, assertMatch, errorOf, okValue } from "./_support/assert.ts";
import { TEST_DB_URL } from "./_support/tokens.ts";

Deno.test("a missing required setting is a config_missing error naming it", () => {
  const error = errorOf(requireEnv("STRIPE_SECRET_KEY", new Map([["STRIPE_SECRET_KEY", "   "]])));
  assertEquals([error.code, error.status], ["config_missing", 500]);
  assertMatch(error.message, /STRIPE_SECRET_KEY/);
  assertEquals(
    okValue(requireEnv("SITE_URL", new Map([["SITE_URL", " http://localhost:3000 "]]))),
    "http://localhost:3000",
  );
});

Deno.test("comma lists are trimmed and blanks dropped", () => {
  const env = new Map([["ALLOWED_REDIRECT_URLS", " https://a.example/x, ,https://b.example/ "]]);
  assertEquals(listEnv("ALLOWED_REDIRECT_URLS", env), ["https://a.example/x", "https://b.example/"]);
  assertEquals(listEnv("ALLOWED_REDIRECT_URLS", new Map()), []);
});

Deno.test("ALLOWED_ORIGINS keeps real origins only, normalized", () => {
  const origins = allowedOrigins(
    new Map([["ALLOWED_ORIGINS", "https://App.Example.com/, ftp://files.example, nonsense"]]),
  );
  assertEquals(origins, { any: false, origins: new Set(["https://app.example.com"]) });
  assertEquals(allowedOrigins(new Map([["ALLOWED_ORIGINS", "https://a.example,*"]])), { any: true });
});

Deno.test("SUPABASE_DB_URL must be a postgres URL", () => {
  assertEquals(okValue(dbUrl(new Map([["SUPABASE_DB_URL", TEST_DB_URL]]))), TEST_DB_URL);
  assertEquals(errorOf(dbUrl(new Map([["SUPABASE_DB_URL", "http://127.0.0.1:54321"]]))).code, "config_invalid");
  assertEquals(errorOf(dbUrl(new Map())).code, "config_missing");
});

Deno.test("JWT verification: JWT_SECRET wins; otherwise the JWKS under SUPABASE_URL", () => {
  const secret = "super-secret-jwt-token-with-at-least-32-characters-long";
  const both = new Map([["JWT_SECRET", secret], ["SUPABASE_URL", "https://abc.supabase.co"]]);
  assertEquals(okValue(jwtVerification(both)), { kind: "hs256", secret });

  const jwks = okValue(jwtVerification(new Map([["SUPABASE_URL", "https://abc.supabase.co/"]])));
  assert(jwks.kind === "jwks");
  assertEquals(jwks.jwksUrl.href, "https://abc.supabase.co/auth/v1/.well-known/jwks.json");

  assertEquals(errorOf(jwtVerification(new Map([["SUPABASE_URL", "not a url"]]))).code, "config_invalid");
});

Deno.test("TLS: off for the local cluster, the URL's sslmode when given, else prefer", () => {
  assertEquals(sslFor("postgresql://postgres:postgres@127.0.0.1:54322/postgres"), false);
  assertEquals(sslFor("postgresql://postgres:postgres@localhost:54322/postgres"), false);
  assertEquals(sslFor("postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"), "prefer");
  assertEquals(sslFor("postgresql://u:p@db.example.com:5432/postgres?sslmode=verify-full"), undefined);
});

Deno.test("getDb() is created on first use, shared, and replaced after closeDb()", async () => {
  await closeDb(); // start from a clean isolate state
  const env = new Map([["SUPABASE_DB_URL", TEST_DB_URL]]);
  try {
    const first = getDb(env);
    assert(getDb(env) === first, "the same client is reused within the isolate");
    // prepare: false, so statements survive a transaction pooler.
    assertEquals(first.options.prepare, false);
    assert(first.options.max <= 5, "the pool stays small");
    // asServiceRole without an explicit client goes through getDb().
    const [row] = okValue(await asServiceRole((tx) => tx`select current_user as "user"`));
    assertEquals(row.user, "service_role");

    await closeDb();
    const second = getDb(env);
    assert(second !== first, "a closed client is not handed out again");
  } finally {
    await closeDb();
  }
});

Deno.test("getDb() without SUPABASE_DB_URL throws a ConfigError naming the setting", async () => {
  await closeDb();
  let thrown: unknown;
  try {
    getDb(new Map());
  } catch (e) {
    thrown = e;
  }
  assert(thrown instanceof ConfigError);
  assertEquals(thrown.code, "config_missing");
  assertMatch(thrown.message, /SUPABASE_DB_URL/);
});
