// npm stop: stops what npm start started (the data stays in .local/db).
import { main, parseArgs, step } from "./lib/log.ts";
import { devCluster, stopFunctions } from "./lib/stack.ts";
import { stopDispatcher } from "./lib/dispatcher.ts";

await main(async () => {
  parseArgs(Deno.args, {}, "usage: npm stop\n\nStops the functions server and the local PostgreSQL. Data is kept in .local/db.");
  await step("Stopping the dispatcher", async () => void (await stopDispatcher()));
  await step("Stopping the functions server", async () => void (await stopFunctions()));
  const cluster = devCluster();
  await step("Stopping PostgreSQL", () => cluster.stop());
  console.log("Stopped. `npm start` brings it back with your data.");
});
