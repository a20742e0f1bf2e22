/**
 * Story: Sam, who runs a ledgerbase app, keeps the catalog in SQL and runs
 * `npm run stripe:sync` to put it in Stripe (here the fake Stripe, limited to this test's
 * catalog keys). Proved: the first run creates a product and a price per plan and pack with
 * lookup_key = the catalog key and writes the ids back; a second run changes nothing (no
 * write to Stripe at all); a dry run reports and changes nothing; a price change makes a new
 * price that takes the lookup key, points the catalog at it, and archives the old one.
 */
import { formatTable, syncCatalog } from "../../../scripts/lib/stripe_catalog.ts";
import { createStripe } from "../_shared/stripe.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { connect, createCatalog, type TestCatalog } from "./_support/stripe/billing_db.ts";
import { startFakeStripe } from "./_support/stripe/fake_stripe.ts";

async function catalogIds(sql: ReturnType<typeof connect>, c: TestCatalog) {
  return await sql<{ key: string; stripe_price_id: string | null; stripe_product_id: string | null }[]>`
    select key, stripe_price_id, stripe_product_id from public.plans where key in (${c.basic.key}, ${c.pro.key})
    union all
    select key, stripe_price_id, stripe_product_id from public.credit_packs where key = ${c.pack.key}
    order by key`;
}

Deno.test("stripe:sync creates, then changes nothing, then replaces a changed price and archives the old one", async () => {
  const sql = connect(2);
  const fake = await startFakeStripe();
  const stripe = createStripe("sk_test_ledgerbase_fake", new URL(fake.url));
  try {
    const c = await createCatalog(sql);
    // Sam's catalog has never been in Stripe: no ids yet.
    await sql`update public.plans set stripe_price_id = null, stripe_product_id = null where key in (${c.basic.key}, ${c.pro.key})`;
    await sql`update public.credit_packs set stripe_price_id = null, stripe_product_id = null where key = ${c.pack.key}`;
    const keys = [c.basic.key, c.pro.key, c.pack.key, c.retiredPack.key];

    // A dry run says what it would do and does nothing.
    const preview = await syncCatalog(sql, stripe, { keys, dryRun: true });
    assertEquals(preview.map((r) => [r.key, r.action]).sort(), [[c.basic.key, "created"], [c.pack.key, "created"], [
      c.pro.key,
      "created",
    ]], "the retired pack is not sold, so not synced");
    assertEquals(fake.requests.filter((r) => r.method === "POST").length, 0, "a dry run writes nothing to Stripe");
    assert((await catalogIds(sql, c)).every((r) => r.stripe_price_id === null));

    // First run: one product and one price each, by lookup key, ids written back.
    const first = await syncCatalog(sql, stripe, { keys });
    assertEquals(first.map((r) => r.action), ["created", "created", "created"]);
    assertEquals(fake.products.size, 3);
    const prices = [...fake.prices.values()];
    assertEquals(prices.map((p) => p.lookup_key).sort(), [c.basic.key, c.pack.key, c.pro.key].sort());
    const basicPrice = prices.find((p) => p.lookup_key === c.basic.key)!;
    assertEquals(
      [basicPrice.unit_amount, basicPrice.currency, (basicPrice.recurring as { interval: string }).interval],
      [c.basic.price, "usd", "month"],
    );
    assertEquals(prices.find((p) => p.lookup_key === c.pack.key)!.recurring, null, "a pack is a one-time price");
    const ids = await catalogIds(sql, c);
    for (const row of ids) {
      const price = fake.prices.get(row.stripe_price_id!);
      assertEquals(
        [price?.lookup_key, price?.product],
        [row.key, row.stripe_product_id],
        `${row.key} points at its price and product`,
      );
    }
    assert(
      fake.requestsTo("/v1/prices").filter((r) => r.method === "POST").every((r) =>
        r.idempotencyKey?.startsWith("stripe-sync:price:")
      ),
    );
    const table = formatTable(first);
    assert(table.split("\n")[0].startsWith("kind") && table.includes(c.pro.key), table);

    // Second run: nothing to do, nothing written.
    const writesBefore = fake.requests.filter((r) => r.method === "POST").length;
    const second = await syncCatalog(sql, stripe, { keys });
    assertEquals(second.map((r) => r.action), ["unchanged", "unchanged", "unchanged"]);
    assertEquals(
      fake.requests.filter((r) => r.method === "POST").length,
      writesBefore,
      "idempotent: no write to Stripe",
    );
    assertEquals(await catalogIds(sql, c), ids);

    // Sam raises Pro from 29 to 39: a new price takes the key, the old one is archived.
    await sql`update public.plans set price_cents = 3900 where key = ${c.pro.key}`;
    const oldPro = ids.find((r) => r.key === c.pro.key)!;
    const third = await syncCatalog(sql, stripe, { keys });
    const proRow = third.find((r) => r.key === c.pro.key)!;
    assertEquals(proRow.action, "replaced");
    assert(proRow.detail.includes("29.00 usd/month → 39.00 usd/month"), proRow.detail);
    assertEquals(third.filter((r) => r.action !== "unchanged").length, 1, "only Pro changed");
    assertEquals(fake.prices.get(oldPro.stripe_price_id!)?.active, false, "the old price is archived");
    assertEquals(fake.prices.get(oldPro.stripe_price_id!)?.lookup_key, null, "and gave up its lookup key");
    const [pro] = (await catalogIds(sql, c)).filter((r) => r.key === c.pro.key);
    assert(pro.stripe_price_id !== oldPro.stripe_price_id);
    assertEquals(pro.stripe_product_id, oldPro.stripe_product_id, "the same product");
    assertEquals([
      fake.prices.get(pro.stripe_price_id!)?.unit_amount,
      fake.prices.get(pro.stripe_price_id!)?.lookup_key,
    ], [3900, c.pro.key]);
    const transfer = fake.requestsTo("/v1/prices").filter((r) => r.method === "POST").at(-1)!;
    assertEquals(transfer.params.transfer_lookup_key, "true");

    // And after that, quiet again.
    assertEquals((await syncCatalog(sql, stripe, { keys })).map((r) => r.action), [
      "unchanged",
      "unchanged",
      "unchanged",
    ]);
  } finally {
    await fake.close();
    await sql.end();
  }
});
