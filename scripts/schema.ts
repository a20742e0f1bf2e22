// npm run schema: writes supabase/schema/ (the present schema, one file per object) from a
// throw-away database built from the migrations, so the result depends on the migrations alone.
import { join } from "node:path";
import { main, parseArgs, step } from "./lib/log.ts";
import { Cluster, ensurePackages, freePort } from "./lib/postgres.ts";
import { pushMigrations } from "./lib/supabase.ts";
import { clusterHome } from "./lib/paths.ts";
import { databaseSnapshot, readSnapshot, schemaDir, schemaDrift, writeSnapshot } from "./lib/schema.ts";

await main(async () => {
  parseArgs(
    Deno.args,
    {},
    "usage: npm run schema\n\nRewrites supabase/schema/ (one file per table, view, function and type) from supabase/migrations.",
  );
  await step("Checking Debian packages", () => ensurePackages(console.log));
  const cluster = new Cluster({ dir: join(clusterHome, "schema-db"), port: freePort(54370), ephemeral: true });
  try {
    await step("Building a throw-away database from the migrations", async () => {
      await cluster.destroy();
      await cluster.init();
      await cluster.start();
      await cluster.freshDatabase();
      await pushMigrations(cluster.url());
    });
    const generated = await step("Reading the schema from the catalog", () => databaseSnapshot(cluster.url()));
    const drift = schemaDrift(await readSnapshot(), generated);
    await writeSnapshot(generated, schemaDir);
    const touched = drift.changed.length + drift.missing.length + drift.extra.length;
    console.log(
      `Wrote supabase/schema/ (${generated.size} files): ${
        touched
          ? `${drift.changed.length} changed, ${drift.missing.length} new, ${drift.extra.length} removed`
          : "no change"
      }.`,
    );
    for (const path of drift.changed) console.log(`  changed: supabase/schema/${path}`);
    for (const path of drift.missing) console.log(`  new:     supabase/schema/${path}`);
    for (const path of drift.extra) console.log(`  removed: supabase/schema/${path}`);
  } finally {
    await cluster.destroy();
  }
});
