// npm run types: regenerates types/database.ts from the migrations with `supabase gen types`,
// on a throw-away database, so the result depends on the migrations alone.
import { main, parseArgs, step } from "./lib/log.ts";
import { Cluster, ensurePackages, freePort } from "./lib/postgres.ts";
import { generateTypes, pushMigrations } from "./lib/supabase.ts";
import { clusterHome, typesFile } from "./lib/paths.ts";
import { join } from "node:path";

await main(async () => {
  parseArgs(Deno.args, {}, "usage: npm run types\n\nRegenerates types/database.ts from supabase/migrations.");
  await step("Checking Debian packages", () => ensurePackages(console.log));
  const cluster = new Cluster({ dir: join(clusterHome, "types-db"), port: freePort(54360), ephemeral: true });
  try {
    await step("Building a throw-away database from the migrations", async () => {
      await cluster.destroy();
      await cluster.init();
      await cluster.start();
      await cluster.freshDatabase();
      await pushMigrations(cluster.url());
    });
    const types = await step("Generating types with `supabase gen types`", () => generateTypes(cluster.url()));
    await Deno.mkdir(join(typesFile, ".."), { recursive: true });
    await Deno.writeTextFile(typesFile, types);
    console.log(`Wrote types/database.ts (${types.split("\n").length} lines).`);
  } finally {
    await cluster.destroy();
  }
});
