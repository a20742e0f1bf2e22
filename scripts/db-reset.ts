// npm run db:reset: a fresh database with every migration and the seed.
import { main, parseArgs, step } from "./lib/log.ts";
import { devCluster, resetDatabase, upDatabase } from "./lib/stack.ts";
import { startCron } from "./lib/cron.ts";

await main(async () => {
  parseArgs(
    Deno.args,
    {},
    "usage: npm run db:reset\n\nDrops the local database and rebuilds it: bootstrap, migrations, seed.",
  );
  const cluster = devCluster();
  if (!(await cluster.running())) await upDatabase(cluster);
  const applied = await resetDatabase(cluster);
  await step("Scheduling the SQL sweepers with pg_cron", () => startCron(cluster, console.log));
  console.log(`Database rebuilt with ${applied.length} migrations: ${cluster.url()}`);
});
