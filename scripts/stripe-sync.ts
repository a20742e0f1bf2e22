// npm run stripe:sync [-- --dry-run] [--only=key,key]
//
// Creates or updates a Stripe Product and Price for every active paid plan and every active
// credit pack (Price lookup_key = the catalog key), replaces a price whose amount changed
// (the new one takes the lookup key, the old one is archived), writes the ids back into
// public.plans / public.credit_packs, and prints what it did as a table. Running it again
// changes nothing. See scripts/lib/stripe_catalog.ts for the rules.
//
// Settings come from the environment, else supabase/functions/.env: STRIPE_SECRET_KEY (and
// STRIPE_API_BASE in tests); the database is the local stack's unless SUPABASE_DB_URL is set.
import { bold, dim, main, parseArgs, UserError } from "./lib/log.ts";
import { functionsSettings } from "./lib/env.ts";
import { formatTable, syncCatalog } from "./lib/stripe_catalog.ts";
import { createDb } from "../supabase/functions/_shared/db.ts";
import { stripeFromEnv } from "../supabase/functions/_shared/stripe.ts";

const usage = `usage: npm run stripe:sync [-- --dry-run] [--only=key,key]

  --dry-run        read Stripe and the catalog, print what would change, change nothing
  --only=KEYS      only these plan or credit-pack keys (comma-separated)`;

await main(async () => {
  const { flags, positional } = parseArgs(Deno.args, { "dry-run": "boolean", only: "string" }, usage);
  if (positional.length > 0) throw new UserError(`unexpected argument ${positional[0]}`, usage);
  const env = await functionsSettings();
  const stripe = stripeFromEnv(env);
  if (!stripe.ok) {
    throw new UserError(stripe.error.message, "set STRIPE_SECRET_KEY (environment or supabase/functions/.env)");
  }
  const dbUrl = env.get("SUPABASE_DB_URL");
  if (!dbUrl) {
    throw new UserError(
      "SUPABASE_DB_URL is not set and the local stack's URL is unknown",
      "run npm start, or set SUPABASE_DB_URL",
    );
  }
  const dryRun = flags["dry-run"] === true;
  const keys = typeof flags.only === "string" ? flags.only.split(",").map((k) => k.trim()).filter((k) => k) : undefined;
  const sql = createDb(dbUrl, { max: 1 });
  try {
    console.log(`${bold("stripe:sync")}${dryRun ? dim(" (dry run: nothing is changed)") : ""}`);
    const rows = await syncCatalog(sql, stripe.value, { dryRun, keys });
    console.log(formatTable(rows, dryRun));
    const changed = rows.filter((r) => r.action !== "unchanged").length;
    console.log(dim(`${rows.length} item(s), ${changed} ${dryRun ? "to change" : "changed"}`));
  } finally {
    await sql.end();
  }
});
