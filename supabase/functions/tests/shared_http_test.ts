/**
 * Story: what a browser or a customer's server sees when a function answers.
 * Errors keep one envelope with stable codes, CORS opens only to configured
 * origins, and Postgres errors become the HTTP statuses of docs/errors.md#sqlstate-to-http — using
 * errors raised by the real database, not hand-made objects.
 */
import postgres from "postgres";
import {
  appErrorResponse,
  corsHeaders,
  errorResponse,
  fromPostgresError,
  isAllowedOrigin,
  json,
  preflight,
  retryAfterSeconds,
} from "../_shared/http.ts";
import { allowedOrigins } from "../_shared/env.ts";
import { createDb } from "../_shared/db.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { TEST_DB_URL } from "./_support/tokens.ts";

const APP = "https://app.example.com";
const origins = allowedOrigins(new Map([["ALLOWED_ORIGINS", `${APP}, http://localhost:3000/`]]));

function from(origin: string | null, method = "POST"): Request {
  const headers = new Headers();
  if (origin !== null) headers.set("origin", origin);
  return new Request("http://127.0.0.1:54321/functions/v1/checkout", { method, headers });
}

// --- responses --------------------------------------------------------------

Deno.test("json() sends the body as JSON with the status and extra headers", async () => {
  const response = json({ id: "cs_1", url: "https://checkout.stripe.com/x" }, 201, { "x-request-id": "r1" });
  assertEquals(response.status, 201);
  assertEquals(response.headers.get("content-type"), "application/json; charset=utf-8");
  assertEquals(response.headers.get("x-request-id"), "r1");
  assertEquals(await response.json(), { id: "cs_1", url: "https://checkout.stripe.com/x" });
});

Deno.test("errorResponse() uses the {error: {code, message}} envelope, detail and hint only when present", async () => {
  const plain = errorResponse("invalid_input", "quantity must be positive", 400);
  assertEquals(plain.status, 400);
  assertEquals(await plain.json(), { error: { code: "invalid_input", message: "quantity must be positive" } });

  const detailed = errorResponse("insufficient_credits", "Not enough credits.", 402, { vary: "Origin" }, {
    detail: "required 20, available 5",
    hint: "buy a credit pack",
  });
  assertEquals(detailed.headers.get("vary"), "Origin");
  assertEquals(await detailed.json(), {
    error: {
      code: "insufficient_credits",
      message: "Not enough credits.",
      detail: "required 20, available 5",
      hint: "buy a credit pack",
    },
  });
});

// --- CORS ---------------------------------------------------------------------

Deno.test("CORS echoes an allowed origin and nothing for others", () => {
  const allowed = corsHeaders(from(APP), origins);
  assertEquals(allowed["access-control-allow-origin"], APP);
  assertEquals(allowed.vary, "Origin");
  assert(allowed["access-control-allow-headers"].includes("authorization"));
  // The list entry had a trailing slash; the browser's Origin has none: still the same origin.
  assertEquals(
    corsHeaders(from("http://localhost:3000"), origins)["access-control-allow-origin"],
    "http://localhost:3000",
  );

  // Proves look-alikes, other ports/schemes, "null" and a missing Origin all get no grant.
  for (
    const origin of [
      "https://evil.example.com",
      "https://app.example.com.evil.com",
      "http://app.example.com",
      "https://app.example.com:8443",
      "null",
      null,
    ]
  ) {
    const headers = corsHeaders(from(origin), origins);
    assertEquals(headers, { vary: "Origin" }, `origin ${origin}`);
  }
});

Deno.test("ALLOWED_ORIGINS=* echoes any real origin; unset allows none", () => {
  const any = allowedOrigins(new Map([["ALLOWED_ORIGINS", "*"]]));
  assertEquals(corsHeaders(from("https://anything.dev"), any)["access-control-allow-origin"], "https://anything.dev");
  assertEquals(isAllowedOrigin("null", any), false);

  const none = allowedOrigins(new Map());
  assertEquals(isAllowedOrigin(APP, none), false);
});

Deno.test("CORS reads ALLOWED_ORIGINS from the environment by default", () => {
  const previous = Deno.env.get("ALLOWED_ORIGINS");
  Deno.env.set("ALLOWED_ORIGINS", "https://from-env.example");
  try {
    assertEquals(
      corsHeaders(from("https://from-env.example"))["access-control-allow-origin"],
      "https://from-env.example",
    );
    assertEquals(corsHeaders(from(APP))["access-control-allow-origin"], undefined);
  } finally {
    if (previous === undefined) Deno.env.delete("ALLOWED_ORIGINS");
    else Deno.env.set("ALLOWED_ORIGINS", previous);
  }
});

Deno.test("preflight answers OPTIONS only: 204 for allowed origins, 403 otherwise", async () => {
  assertEquals(preflight(from(APP, "POST"), origins), null);

  const ok = preflight(from(APP, "OPTIONS"), origins);
  assertEquals(ok?.status, 204);
  assertEquals(ok?.headers.get("access-control-allow-origin"), APP);
  assert(ok?.headers.get("access-control-allow-methods")?.includes("POST"));

  const refused = preflight(from("https://evil.example.com", "OPTIONS"), origins);
  assertEquals(refused?.status, 403);
  assertEquals(refused?.headers.get("access-control-allow-origin"), null);
  assertEquals((await refused?.json()).error.code, "origin_not_allowed");
});

// --- Retry-After ----------------------------------------------------------------

Deno.test("retryAfterSeconds reads whole seconds from the hint shapes SQL functions write", () => {
  const now = new Date("2026-11-22T10:00:00Z");
  assertEquals(retryAfterSeconds("retry after 12 seconds"), 12);
  assertEquals(retryAfterSeconds("Retry-After: 7"), 7);
  assertEquals(retryAfterSeconds('{"retry_after": 0.2}'), 1); // rounded up, never 0
  assertEquals(retryAfterSeconds("wait 30s"), 30);
  assertEquals(retryAfterSeconds("quota resets at 2026-11-22T10:05:00Z", now), 300);
  assertEquals(retryAfterSeconds("quota resets at 2026-11-22 10:00:30+00", now), 30); // Postgres' own format
  assertEquals(retryAfterSeconds("resets at 2026-11-22 15:31:00+05:30", now), 60);
  assertEquals(retryAfterSeconds("resets at 2026-11-22T10:01:00", now), 60); // no offset: UTC
  assertEquals(retryAfterSeconds("resets at 2026-11-22T09:00:00Z", now), 1); // already past: retry now-ish
  assertEquals(retryAfterSeconds("no number here"), undefined);
  assertEquals(retryAfterSeconds(undefined), undefined);
});

// --- Postgres errors, raised by the database --------------------------------------

/** Runs `statement` and returns what postgres.js throws. */
async function raised(sql: postgres.Sql, statement: string): Promise<unknown> {
  try {
    await sql.unsafe(statement);
  } catch (e) {
    return e;
  }
  throw new Error(`expected ${statement} to fail`);
}

function raise(sqlstate: string, message: string, extra = ""): string {
  return `do $$ begin raise exception using errcode = '${sqlstate}', message = '${message}'${extra}; end $$`;
}

Deno.test("fromPostgresError maps real database errors per docs/errors.md#sqlstate-to-http", async (t) => {
  const sql = createDb(TEST_DB_URL, { max: 1 });
  try {
    await t.step("PT402 insufficient_credits → 402 with the detail", async () => {
      const e = await raised(sql, raise("PT402", "insufficient_credits", ", detail = 'required 20, available 5'"));
      const mapped = fromPostgresError(e);
      assertEquals([mapped.status, mapped.code, mapped.detail], [
        402,
        "insufficient_credits",
        "required 20, available 5",
      ]);
      assert(mapped.message.length > 0);
    });

    await t.step("PT429 rate_limited → 429 with Retry-After from the hint", async () => {
      const e = await raised(sql, raise("PT429", "rate_limited", ", hint = 'retry after 3 seconds'"));
      const mapped = fromPostgresError(e);
      assertEquals([mapped.status, mapped.code, mapped.retryAfter], [429, "rate_limited", 3]);
      const response = appErrorResponse(mapped);
      assertEquals(response.headers.get("retry-after"), "3");
      assertEquals((await response.json()).error.hint, "retry after 3 seconds");
    });

    await t.step("PT404, PT409, PT410 → their status with the message as code", async () => {
      for (
        const [state, code, status] of [["PT404", "not_found", 404], ["PT409", "idempotency_conflict", 409], [
          "PT410",
          "gone",
          410,
        ]] as const
      ) {
        const mapped = fromPostgresError(await raised(sql, raise(state, code)));
        assertEquals([mapped.status, mapped.code], [status, code]);
      }
    });

    await t.step("42501 → 401 for anon, 403 for a signed-in user", async () => {
      const e = await raised(sql, raise("42501", "permission denied"));
      assertEquals(fromPostgresError(e, { role: "anon" }).status, 401);
      const user = fromPostgresError(e, { role: "authenticated" });
      assertEquals([user.status, user.code], [403, "permission_denied"]);
    });

    await t.step("22023 → 400, keeping a precise code or falling back to invalid_input", async () => {
      const precise = fromPostgresError(await raised(sql, raise("22023", "invalid_slug")));
      assertEquals([precise.status, precise.code], [400, "invalid_slug"]);
      const sentence = fromPostgresError(await raised(sql, raise("22023", "quantity must be positive")));
      assertEquals([sentence.status, sentence.code, sentence.message], [
        400,
        "invalid_input",
        "quantity must be positive",
      ]);
    });

    await t.step("a bad uuid cast (22P02) → 400 invalid_input", async () => {
      const mapped = fromPostgresError(await raised(sql, "select 'nope'::uuid"));
      assertEquals([mapped.status, mapped.code], [400, "invalid_input"]);
    });

    await t.step("23505 unique violation → 409 conflict, without echoing the conflicting values", async () => {
      const e = await raised(
        sql,
        "begin; create temp table t (email text primary key) on commit drop; " +
          "insert into t values ('secret@example.com'), ('secret@example.com'); commit",
      );
      await sql.unsafe("rollback");
      const mapped = fromPostgresError(e);
      assertEquals([mapped.status, mapped.code, mapped.detail], [409, "conflict", undefined]);
      assert(!JSON.stringify(mapped).includes("secret@example.com"));
    });

    await t.step("P0001 (plain raise) → 400", async () => {
      const mapped = fromPostgresError(await raised(sql, "do $$ begin raise exception 'slug_taken'; end $$"));
      assertEquals([mapped.status, mapped.code], [400, "slug_taken"]);
    });

    await t.step("anything else → 500 internal_error; the details are logged, not sent", async () => {
      const e = await raised(sql, "select * from private_table_that_does_not_exist");
      const logged: unknown[] = [];
      const mapped = fromPostgresError(e, { log: (x) => logged.push(x) });
      assertEquals([mapped.status, mapped.code], [500, "internal_error"]);
      assert(!mapped.message.includes("private_table_that_does_not_exist"));
      assertEquals(logged, [e]);

      // A PT code outside 4xx/5xx cannot be an error status: it is a bug in SQL, so 500.
      const oddStatus = fromPostgresError(await raised(sql, raise("PT200", "fine")), { log: () => {} });
      assertEquals(oddStatus.status, 500);

      const notPg = fromPostgresError(new Error("socket hang up"), { log: () => {} });
      assertEquals([notPg.status, notPg.code], [500, "internal_error"]);
    });
  } finally {
    await sql.end();
  }
});
