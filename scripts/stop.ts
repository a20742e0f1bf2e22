// npm stop: stops what npm start started (the data stays in the cluster's folder, unless --purge).
import { main, parseArgs, step } from "./lib/log.ts";
import { devCluster, stopFunctions } from "./lib/stack.ts";
import { displayPath } from "./lib/paths.ts";
import { stopDispatcher } from "./lib/dispatcher.ts";

const usage = `usage: npm stop [-- --purge]

Stops the functions server and the local PostgreSQL. The data is kept for the next
\`npm start\`; --purge deletes it (the next start creates a fresh database).`;

await main(async () => {
  const { flags } = parseArgs(Deno.args, { purge: "boolean" }, usage);
  await step("Stopping the dispatcher", async () => void (await stopDispatcher()));
  await step("Stopping the functions server", async () => void (await stopFunctions()));
  const cluster = devCluster();
  await step("Stopping PostgreSQL", () => cluster.stop());
  if (flags.purge) {
    await step(`Deleting the data in ${displayPath(cluster.dir)}`, () => cluster.destroy());
    console.log("Stopped and deleted. `npm start` creates a fresh database.");
  } else {
    console.log(`Stopped. \`npm start\` brings it back with your data (${displayPath(cluster.dir)}).`);
  }
});
