/**
 * Story: one account, two API keys. The batch worker's key is limited to 5 calls (its own
 * bucket, refilled once a minute); the production key has no limit of its own. The batch
 * worker's sixth call is refused with 429 and Retry-After, and the production key keeps
 * metering: a busy key no longer starves the others. The usage function is called
 * directly against the test database; the user and keys are made with SQL as postgres.
 */
import { closeDb, createDb } from "../_shared/db.ts";
import { handler } from "../usage/handler.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { TEST_DB_URL } from "./_support/tokens.ts";

const BASE = "http://127.0.0.1:54321/functions/v1/usage";

function meter(key: string): Request {
  return new Request(BASE, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ action: "api_call" }),
  });
}

Deno.test("a key limited to 5 calls gets 429 with Retry-After on its sixth while the account's other key meters", async () => {
  const sql = createDb(TEST_DB_URL, { max: 1 });
  const accountId = crypto.randomUUID();
  try {
    await sql`
      insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                              confirmation_token, recovery_token, email_change_token_new, email_change,
                              raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      values ('00000000-0000-0000-0000-000000000000', ${accountId}, 'authenticated', 'authenticated',
              ${`keys-${accountId}@example.test`}, '', now(), '', '', '', '', '{"provider": "email"}', '{}', now(), now())`;
    const [batch] = await sql`
      select public.create_api_key(${accountId}::uuid, 'Batch worker',
        rate_limit_capacity => 5, rate_limit_refill_per_second => ${1 / 60}::numeric) as created`;
    const [production] = await sql`select public.create_api_key(${accountId}::uuid, 'Production') as created`;
    const batchKey = (batch.created as { key: string }).key;
    const productionKey = (production.created as { key: string }).key;

    for (let call = 1; call <= 5; call++) {
      const response = await handler(meter(batchKey));
      assertEquals(response.status, 200, `batch call ${call} is metered`);
      await response.body?.cancel();
    }
    const sixth = await handler(meter(batchKey));
    assertEquals(sixth.status, 429, "the sixth call of the batch key is refused");
    const body = (await sixth.json()) as { error: { code: string } };
    assertEquals(body.error.code, "rate_limited");
    const retryAfter = Number(sixth.headers.get("retry-after"));
    assert(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`);

    const other = await handler(meter(productionKey));
    assertEquals(other.status, 200, "the production key of the same account still meters");
    const metered = (await other.json()) as { balance: number };
    assertEquals(metered.balance, 44, "six calls charged in all (50 - 6): the refused one was not");
  } finally {
    await sql.end();
    await closeDb(); // the handler's shared client
  }
});
