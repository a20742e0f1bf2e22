/**
 * Story: an edge function verified a user's JWT and now runs SQL for them. The
 * database must see that user exactly as it would behind PostgREST — role,
 * claims, request context — so RLS and auth.uid() hold, and none of it may
 * outlive the transaction on a pooled connection.
 *
 * One connection (max: 1) is used throughout, so "the next query" really is on
 * the connection the previous user had, and a temp table lives across tests.
 */
import { createDb, type Sql } from "../_shared/db.ts";
import { asAnon, asServiceRole, asUser, type DbSession, runAs } from "../_shared/as_user.ts";
import { authenticate, createJwtVerifier, type VerifiedJwt } from "../_shared/jwt.ts";
import { assert, assertEquals, errorOf, okValue } from "./_support/assert.ts";
import { signHs256, TEST_DB_URL, TEST_JWT_SECRET, userClaims } from "./_support/tokens.ts";

const ALICE = "0d5e8a3c-2b1f-4e6a-9c7d-1a2b3c4d5e6f";
const BOB = "7f6e5d4c-3b2a-4190-8e7d-6c5b4a392817";
const verifier = createJwtVerifier({ kind: "hs256", secret: TEST_JWT_SECRET });

/** What an edge function does first: bearer token → verified JWT. */
async function signIn(
  userId: string,
  extra: Record<string, unknown> = {},
): Promise<{ jwt: VerifiedJwt; request: Request }> {
  const token = await signHs256(userClaims(userId, extra));
  const request = new Request("http://127.0.0.1:54321/functions/v1/checkout?x=1", {
    method: "POST",
    headers: {
      Authorization: `Bearer ${token}`,
      "User-Agent": "ledgerbase-test/1.0",
      "X-Forwarded-For": "203.0.113.7",
      Cookie: "theme=dark; sb-session=a%20b",
    },
  });
  return { jwt: okValue(await authenticate(request, { verifier })), request };
}

/** A table under RLS where each user sees only their own rows, like every public table. */
async function createNotes(sql: Sql): Promise<void> {
  await sql.unsafe(`
    create temp table if not exists notes (
      id bigint generated always as identity primary key,
      author uuid not null default auth.uid(),
      body text not null
    );
    alter table notes enable row level security;
    drop policy if exists notes_own on notes;
    create policy notes_own on notes to authenticated
      using (author = (select auth.uid())) with check (author = (select auth.uid()));
    grant select, insert on notes to authenticated;
    truncate notes;
  `);
}

async function withDb(fn: (sql: Sql) => Promise<void>): Promise<void> {
  const sql = createDb(TEST_DB_URL, { max: 1 });
  try {
    await createNotes(sql);
    await fn(sql);
  } finally {
    await sql.end();
  }
}

Deno.test("a verified user's SQL runs as authenticated, with auth.uid() = sub and every claim", async () => {
  await withDb(async (sql) => {
    const { jwt, request } = await signIn(ALICE, { app_metadata: { provider: "email", tier: "pro" } });
    const seen = okValue(
      await asUser(jwt, async (tx) => {
        const [row] = await tx`
          select current_user as "currentUser", auth.uid() as uid, auth.role() as role, auth.jwt() as jwt,
                 current_setting('request.jwt.claims')::jsonb as claims,
                 current_setting('request.method') as method, current_setting('request.path') as path,
                 current_setting('request.headers')::jsonb as headers,
                 current_setting('request.cookies')::jsonb as cookies,
                 current_setting('search_path') as "searchPath"`;
        return row;
      }, { sql, request }),
    );
    assertEquals(seen.currentUser, "authenticated");
    assertEquals(seen.uid, ALICE);
    assertEquals(seen.role, "authenticated");
    // All claims, including the ones community helpers forget (aal, exp, is_anonymous, role).
    const expected = JSON.parse(JSON.stringify(jwt.claims));
    assertEquals(seen.claims, expected);
    assertEquals(seen.jwt, expected);
    assertEquals([seen.claims.aal, seen.claims.is_anonymous, typeof seen.claims.exp], ["aal1", false, "number"]);
    assertEquals([seen.method, seen.path], ["POST", "/functions/v1/checkout"]);
    // Header names arrive lower-cased, as PostgREST sends them; audit triggers read ip and user agent here.
    assertEquals(seen.headers["user-agent"], "ledgerbase-test/1.0");
    assertEquals(seen.headers["x-forwarded-for"], "203.0.113.7");
    assert(!Object.keys(seen.headers).some((k) => k !== k.toLowerCase()));
    assertEquals(seen.cookies, { theme: "dark", "sb-session": "a b" });
    assertEquals(seen.searchPath, "public, extensions");
  });
});

Deno.test("RLS holds: each user sees and writes only their own rows", async () => {
  await withDb(async (sql) => {
    const alice = await signIn(ALICE);
    const bob = await signIn(BOB);
    okValue(await asUser(alice.jwt, (tx) => tx`insert into notes (body) values ('alice 1'), ('alice 2')`, { sql }));
    okValue(await asUser(bob.jwt, (tx) => tx`insert into notes (body) values ('bob 1')`, { sql }));

    const aliceSees = okValue(await asUser(alice.jwt, (tx) => tx`select body from notes order by id`, { sql }));
    assertEquals(aliceSees.map((r) => r.body), ["alice 1", "alice 2"]);
    const bobSees = okValue(await asUser(bob.jwt, (tx) => tx`select body, author from notes`, { sql }));
    assertEquals(bobSees.map((r) => [r.body, r.author]), [["bob 1", BOB]]);

    // Bob cannot write a row in Alice's name: the policy's check fails (42501 → 403 for a user).
    const forged = await asUser(bob.jwt, (tx) => tx`insert into notes (author, body) values (${ALICE}, 'x')`, { sql });
    const error = errorOf(forged);
    assertEquals([error.status, error.code], [403, "permission_denied"]);
  });
});

Deno.test("without a user, SQL runs as anon: no uid, claims {role: anon}, and denials are 401", async () => {
  await withDb(async (sql) => {
    const seen = okValue(
      await asAnon(async (tx) => {
        const [row] = await tx`
          select current_user as "currentUser", auth.uid() as uid, auth.role() as role,
                 current_setting('request.jwt.claims')::jsonb as claims`;
        return row;
      }, { sql }),
    );
    assertEquals(seen, { currentUser: "anon", uid: null, role: "anon", claims: { role: "anon" } });

    // anon has no grant on notes: permission denied, which PostgREST answers 401 for anon.
    const denied = errorOf(await asAnon((tx) => tx`select * from notes`, { sql }));
    assertEquals([denied.status, denied.code], [401, "permission_denied"]);
  });
});

Deno.test("service_role runs as service_role and bypasses RLS", async () => {
  await withDb(async (sql) => {
    const alice = await signIn(ALICE);
    okValue(await asUser(alice.jwt, (tx) => tx`insert into notes (body) values ('alice')`, { sql }));
    await sql`grant select on notes to service_role`;
    const seen = okValue(
      await asServiceRole(async (tx) => {
        const [row] = await tx`select current_user as "currentUser", (select count(*)::int from notes) as notes`;
        return row;
      }, { sql }),
    );
    assertEquals(seen, { currentUser: "service_role", notes: 1 });
  });
});

Deno.test("role and claims are transaction-local: the next query on the connection is back to postgres", async () => {
  await withDb(async (sql) => {
    const { jwt, request } = await signIn(ALICE);
    okValue(await asUser(jwt, (tx) => tx`select 1`, { sql, request }));
    // Same single connection: nothing of Alice's request survived the commit.
    const [after] = await sql`
      select current_user as "currentUser", auth.uid() as uid,
             coalesce(current_setting('request.jwt.claims', true), '') as claims,
             coalesce(current_setting('request.headers', true), '') as headers`;
    assertEquals(after, { currentUser: "postgres", uid: null, claims: "", headers: "" });
  });
});

Deno.test("a failing call rolls back its writes and returns the mapped error (PT402 → 402)", async () => {
  await withDb(async (sql) => {
    const { jwt } = await signIn(ALICE);
    const result = await asUser(jwt, async (tx) => {
      await tx`insert into notes (body) values ('charged?')`;
      await tx`do $$ begin
        raise exception using errcode = 'PT402', message = 'insufficient_credits', detail = 'required 10, available 3';
      end $$`;
    }, { sql });
    const error = errorOf(result);
    assertEquals([error.status, error.code, error.detail], [402, "insufficient_credits", "required 10, available 3"]);
    const [{ count }] = await sql`select count(*)::int as count from notes`;
    assertEquals(count, 0);

    // A bug in the callback is a 500 internal_error, logged and not leaked.
    const logged: unknown[] = [];
    const bug = errorOf(
      await asUser(jwt, () => Promise.reject(new Error("secret stack")), { sql, log: (e) => logged.push(e) }),
    );
    assertEquals([bug.status, bug.code], [500, "internal_error"]);
    assert(!bug.message.includes("secret"));
    assertEquals(logged.length, 1);
  });
});

Deno.test("only anon, authenticated and service_role can be assumed; no query runs otherwise", async () => {
  let queried = false;
  const tripwire = { begin: () => (queried = true) } as unknown as Sql;
  for (const role of ["postgres", "supabase_admin", "authenticated; reset role", "authenticator"]) {
    const session = { role, claims: {} } as unknown as DbSession;
    let refused = false;
    try {
      await runAs(session, () => Promise.resolve(1), { sql: tripwire });
    } catch (e) {
      refused = e instanceof TypeError;
    }
    assert(refused, `role ${role} should be refused`);

    const jwt = { role, userId: null, claims: { role } } as unknown as VerifiedJwt;
    const error = errorOf(await asUser(jwt, () => Promise.resolve(1), { sql: tripwire }));
    assertEquals([error.status, error.code], [403, "invalid_role"]);
  }
  assertEquals(queried, false);
});
