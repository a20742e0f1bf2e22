/**
 * Story: a client app calls our RPCs through PostgREST. PostgREST logs in once as
 * `authenticator` (with its password), and for each request opens a transaction,
 * switches to the role of the JWT (`set local role`) and puts the claims in
 * `request.jwt.claims` with set_config, then calls the function. The other tests act
 * as `postgres` + `set role`; these log in exactly as PostgREST does, so a grant or a
 * setting that only `postgres` has cannot hide here.
 */
import postgres from "postgres";
import { sslFor } from "../../functions/_shared/db.ts";
import { assert, assertEquals } from "../../functions/tests/_support/assert.ts";
import { TEST_DB_URL, userClaims } from "../../functions/tests/_support/tokens.ts";
import {
  attempt,
  checkInvariants,
  connect,
  createUser,
  ensureAction,
  snapshots,
} from "../../functions/tests/_support/wallet.ts";

type Sql = postgres.Sql;
type Tx = postgres.TransactionSql;

/** The test database as PostgREST reaches it: user authenticator, password "postgres". */
function authenticatorUrl(): string {
  const url = new URL(TEST_DB_URL);
  url.username = "authenticator";
  url.password = "postgres";
  return url.toString();
}

function connectAsAuthenticator(): Sql {
  const url = authenticatorUrl();
  const ssl = sslFor(url);
  return postgres(url, {
    max: 1,
    prepare: false,
    idle_timeout: 10,
    connect_timeout: 30,
    onnotice: () => {},
    connection: { application_name: "ledgerbase-postgrest-session-test" },
    ...(ssl === undefined ? {} : { ssl }),
  });
}

/** One request as PostgREST runs it: role and claims in the transaction, then the call. */
async function asRequest<T>(
  sql: Sql,
  role: "anon" | "authenticated",
  claims: Record<string, unknown>,
  call: (tx: Tx) => Promise<T>,
) {
  return await sql.begin(async (tx) => {
    await tx.unsafe(`set local role ${role}`);
    await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true),
                    set_config('request.method', 'POST', true)`;
    return await call(tx);
  });
}

const anonClaims = { iss: "supabase-demo", role: "anon", exp: Math.floor(Date.now() / 1000) + 3600 };

Deno.test("authenticator logs in with its password and has the platform's timeouts (8 s statement, 8 s lock)", async () => {
  const api = connectAsAuthenticator();
  try {
    const [row] = await api`select current_user as who, current_setting('statement_timeout') as statement,
                                   current_setting('lock_timeout') as lock`;
    assertEquals({ ...row }, { who: "authenticator", statement: "8s", lock: "8s" });
  } finally {
    await api.end({ timeout: 5 });
  }
});

Deno.test("authenticator by itself reads nothing: it does not inherit the API roles", async () => {
  const api = connectAsAuthenticator();
  try {
    const denied = await attempt(() => api`select count(*) from public.accounts`);
    assert(!denied.ok && denied.code === "42501", `expected 42501, got ${JSON.stringify(denied)}`);
    const noSuperRole = await attempt(() => api.begin((tx) => tx.unsafe("set local role postgres")));
    assert(!noSuperRole.ok && noSuperRole.code === "42501", "authenticator cannot become postgres");
  } finally {
    await api.end({ timeout: 5 });
  }
});

Deno.test("a signed-in user's RPC through authenticator: create_team_account makes them the owner, and RLS shows them the team", async () => {
  const admin = connect();
  const api = connectAsAuthenticator();
  try {
    const ada = await createUser(admin);
    const slug = `pgrst-${ada.slice(0, 8)}`;
    const claims = userClaims(ada);

    const seen = await asRequest(api, "authenticated", claims, async (tx) => {
      const [created] = await tx`select * from public.create_team_account('Session Team', ${slug})`;
      const [members] =
        await tx`select count(*)::int as n from public.account_members where account_id = ${created.id}`;
      const [who] = await tx`select current_user as role, auth.uid() as uid`;
      return { owner: created.primary_owner, slug: created.slug, members: members.n, role: who.role, uid: who.uid };
    });
    assertEquals(seen, { owner: ada, slug, members: 1, role: "authenticated", uid: ada });

    // The switch ends with the transaction: the pooled connection is authenticator again, with no claims.
    const [after] =
      await api`select current_user as who, coalesce(current_setting('request.jwt.claims', true), '') as claims`;
    assertEquals({ ...after }, { who: "authenticator", claims: "" });

    const [stored] = await admin`select role from public.account_members m join public.accounts a on a.id = m.account_id
                                 where a.slug = ${slug} and m.user_id = ${ada}`;
    assertEquals(stored.role, "owner", "the team and the owner membership were committed");
  } finally {
    await api.end({ timeout: 5 });
    await admin.end({ timeout: 5 });
  }
});

Deno.test("a signed-in user's consume_credits through authenticator charges their wallet once, and they see the new balance", async () => {
  const admin = connect();
  const api = connectAsAuthenticator();
  try {
    const ada = await createUser(admin); // the signup bonus: 50 credits
    await ensureAction(admin, "pgrst_session_call", 3);
    const [before] = await snapshots(admin, [ada]);

    const seen = await asRequest(api, "authenticated", userClaims(ada), async (tx) => {
      await tx`select public.consume_credits(account_id => ${ada}::uuid, action => 'pgrst_session_call', quantity => 2,
                                              idempotency_key => ${`pgrst-${ada}`})`;
      const [wallet] =
        await tx`select balance::float8 as balance from public.credit_balances where account_id = ${ada}`;
      return wallet.balance;
    });
    assertEquals(seen, before.balance - 6, "2 calls at 3 credits, read back through RLS as the user");

    const [after] = await snapshots(admin, [ada]);
    assertEquals(after.balance, before.balance - 6);
    assertEquals(after.usage_count, 1);
    checkInvariants(after, "ada");
  } finally {
    await api.end({ timeout: 5 });
    await admin.end({ timeout: 5 });
  }
});

Deno.test("the anon key through authenticator cannot call a signed-in user's RPC nor read accounts", async () => {
  const api = connectAsAuthenticator();
  try {
    const call = await attempt(() =>
      asRequest(api, "anon", anonClaims, (tx) => tx`select public.create_team_account('Anon Team', 'anon-team')`)
    );
    assert(!call.ok && call.code === "42501", `anon may not execute create_team_account: ${JSON.stringify(call)}`);
    const rows = await attempt(() => asRequest(api, "anon", anonClaims, (tx) => tx`select id from public.accounts`));
    assert(!rows.ok && rows.code === "42501", `anon has no privilege on accounts: ${JSON.stringify(rows)}`);
  } finally {
    await api.end({ timeout: 5 });
  }
});
