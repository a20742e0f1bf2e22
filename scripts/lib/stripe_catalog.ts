// The catalog in Stripe (docs/billing.md#catalog-in-stripe): a Product and a Price for every active paid plan and
// every active credit pack, found by the Price's lookup_key (= the catalog key).
//
// - A missing product or price is created; a product whose name changed is renamed.
// - A price whose amount, currency or interval changed is replaced: the new price takes the
//   lookup key (transfer_lookup_key), its id is written into the catalog, and only then is the
//   old price archived (so the webhook's price.updated for the old one no longer matches a
//   catalog row and cannot deactivate the plan).
// - Ids are written back into public.plans / public.credit_packs.
// - Idempotent: a second run finds everything in place and changes nothing. Creations carry
//   idempotency keys derived from what they create, so a run retried after a crash does not
//   create twice.
// - `dryRun` reads Stripe and the catalog and reports what it would do, changing nothing.
import type { StripeClient } from "../../supabase/functions/_shared/stripe.ts";
import type { Sql } from "../../supabase/functions/_shared/db.ts";

type Stripe = StripeClient;
type Price = Awaited<ReturnType<StripeClient["prices"]["list"]>>["data"][number];
type Product = Awaited<ReturnType<StripeClient["products"]["list"]>>["data"][number];

export interface CatalogItem {
  kind: "plan" | "credit_pack";
  key: string;
  name: string;
  price_cents: number;
  currency: string;
  interval: "month" | "year" | null;
  stripe_product_id: string | null;
  stripe_price_id: string | null;
}

export type SyncAction = "unchanged" | "created" | "replaced" | "updated" | "linked";

export interface SyncRow {
  kind: CatalogItem["kind"];
  key: string;
  action: SyncAction;
  product: string;
  price: string;
  detail: string;
}

export interface SyncOptions {
  dryRun?: boolean;
  /** Only these catalog keys (default: all active paid plans and all active packs). */
  keys?: string[];
}

/** The active catalog rows that are sold through Stripe (free plans are not). */
export async function catalogItems(sql: Sql, keys: string[] | null): Promise<CatalogItem[]> {
  const rows = await sql<CatalogItem[]>`
    select 'plan' as kind, key, name, price_cents::int as price_cents, currency, billing_interval as interval,
           stripe_product_id, stripe_price_id
    from public.plans where active and price_cents > 0 and (${keys}::text[] is null or key = any (${keys}::text[]))
    union all
    select 'credit_pack', key, name, price_cents::int, currency, null, stripe_product_id, stripe_price_id
    from public.credit_packs where active and (${keys}::text[] is null or key = any (${keys}::text[]))
    order by 1 desc, 2`;
  return rows.map((r) => ({ ...r, price_cents: Number(r.price_cents) }));
}

function samePrice(price: Price, item: CatalogItem): boolean {
  return price.active && price.unit_amount === item.price_cents && price.currency === item.currency &&
    (price.recurring?.interval ?? null) === item.interval;
}

function describe(amount: number | null, currency: string, interval: string | null): string {
  return `${((amount ?? 0) / 100).toFixed(2)} ${currency}${interval ? `/${interval}` : ""}`;
}

async function productOf(stripe: Stripe, item: CatalogItem, existing: Price | undefined): Promise<Product | null> {
  const id = item.stripe_product_id ??
    (typeof existing?.product === "string" ? existing.product : existing?.product?.id);
  if (!id) return null;
  try {
    const product = await stripe.products.retrieve(id);
    return "deleted" in product && product.deleted ? null : product as Product;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) return null;
    throw e;
  }
}

/** Brings Stripe's products and prices in line with the catalog; returns what changed, a row per item. */
export async function syncCatalog(sql: Sql, stripe: Stripe, options: SyncOptions = {}): Promise<SyncRow[]> {
  const dry = options.dryRun ?? false;
  const rows: SyncRow[] = [];
  for (const item of await catalogItems(sql, options.keys ?? null)) {
    const found = await stripe.prices.list({ lookup_keys: [item.key], limit: 10 });
    const existing = found.data.find((p) => p.active) ?? found.data[0];
    const notes: string[] = [];
    let action: SyncAction = "unchanged";

    // The product.
    let product = await productOf(stripe, item, existing);
    let productId = product?.id ?? "(new)";
    if (product === null) {
      action = "created";
      notes.push("product created");
      if (!dry) {
        product = await stripe.products.create({
          name: item.name,
          metadata: { catalog_kind: item.kind, catalog_key: item.key },
        }, { idempotencyKey: `stripe-sync:product:${item.kind}:${item.key}` });
        productId = product.id;
      }
    } else if (product.name !== item.name || !product.active) {
      action = "updated";
      notes.push(product.name !== item.name ? `product renamed to "${item.name}"` : "product reactivated");
      if (!dry) await stripe.products.update(product.id, { name: item.name, active: true });
    }

    // The price.
    let priceId = existing?.id ?? "(new)";
    const wanted = describe(item.price_cents, item.currency, item.interval);
    const oldPrice = existing && !samePrice(existing, item) ? existing : undefined;
    if (!existing || oldPrice) {
      action = existing ? "replaced" : "created";
      notes.push(
        existing
          ? `price ${
            describe(existing.unit_amount, existing.currency, existing.recurring?.interval ?? null)
          } → ${wanted}`
          : `price ${wanted}`,
      );
      if (!dry) {
        const created = await stripe.prices.create({
          product: product!.id,
          unit_amount: item.price_cents,
          currency: item.currency,
          lookup_key: item.key,
          transfer_lookup_key: existing !== undefined,
          ...(item.interval ? { recurring: { interval: item.interval } } : {}),
          metadata: { catalog_kind: item.kind, catalog_key: item.key },
        }, {
          idempotencyKey: `stripe-sync:price:${item.key}:${item.price_cents}:${item.currency}:${
            item.interval ?? "once"
          }:${existing?.id ?? "first"}`,
        });
        priceId = created.id;
      }
    }

    // Ids into the catalog, before the old price is archived.
    if (!dry && (item.stripe_price_id !== priceId || item.stripe_product_id !== productId)) {
      if (action === "unchanged") {
        action = "linked";
        notes.push("ids written into the catalog");
      }
      if (item.kind === "plan") {
        await sql`update public.plans set stripe_price_id = ${priceId}, stripe_product_id = ${productId}, updated_at = now() where key = ${item.key}`;
      } else {
        await sql`update public.credit_packs set stripe_price_id = ${priceId}, stripe_product_id = ${productId}, updated_at = now() where key = ${item.key}`;
      }
    } else if (
      dry && action === "unchanged" && (item.stripe_price_id !== priceId || item.stripe_product_id !== productId)
    ) {
      action = "linked";
      notes.push("ids would be written into the catalog");
    }
    if (oldPrice && oldPrice.active) {
      notes.push(`${oldPrice.id} archived`);
      if (!dry) await stripe.prices.update(oldPrice.id, { active: false });
    }
    rows.push({ kind: item.kind, key: item.key, action, product: productId, price: priceId, detail: notes.join("; ") });
  }
  return rows;
}

/** The rows as a plain-text table. */
export function formatTable(rows: SyncRow[], dryRun = false): string {
  const header = ["kind", "key", dryRun ? "would be" : "action", "product", "price", "detail"];
  const cells = rows.map((r) => [r.kind, r.key, r.action, r.product, r.price, r.detail]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}
