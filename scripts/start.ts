// npm start: the local stack without Docker, then a status table like `supabase status`.
import { bold, dim, green, main, parseArgs, yellow } from "./lib/log.ts";
import { ensureFunctionsEnv, withStackUrls } from "./lib/env.ts";
import { apiKeys } from "./lib/jwt.ts";
import { DEFAULT_JWT_SECRET, FUNCTIONS_PORT, functionsLogFile, stackUrls } from "./lib/config.ts";
import { devCluster, functionsUrl, startFunctions, upDatabase } from "./lib/stack.ts";
import { join } from "node:path";
import { step } from "./lib/log.ts";
import { displayPath } from "./lib/paths.ts";
import { startCron } from "./lib/cron.ts";
import { dispatcherLogFile, ensureDispatchSecret, startDispatcher } from "./lib/dispatcher.ts";

const usage = `usage: npm start [-- --no-functions]

Starts PostgreSQL 15 on 127.0.0.1:54322 (or LEDGERBASE_DB_PORT; created on first run),
applies the platform bootstrap, migrations and seed (catalog and demo users), serves the
edge functions on :${FUNCTIONS_PORT} and prints the connection details. Safe to re-run: it
applies new migrations, restarts PostgreSQL if Debian upgraded it underneath, and restarts
the functions server.`;

await main(async () => {
  const { flags } = parseArgs(Deno.args, { "no-functions": "boolean" }, usage);
  const cluster = devCluster();
  const env = await step("Reading supabase/functions/.env", async () => {
    const { values, created } = await ensureFunctionsEnv();
    if (created) console.log(dim("    created it from .env.example (git-ignored; edit it for your Stripe keys)"));
    return withStackUrls(values, stackUrls);
  });
  env.DISPATCH_SECRET = await ensureDispatchSecret(env);
  await upDatabase(cluster);
  const cron = await step("Scheduling the SQL sweepers with pg_cron", () => startCron(cluster, console.log));
  const secret = env.JWT_SECRET || DEFAULT_JWT_SECRET;
  if (!flags["no-functions"]) {
    await step(
      `Serving edge functions on port ${FUNCTIONS_PORT}`,
      () => startFunctions({ ...Deno.env.toObject(), ...env, JWT_SECRET: secret }),
    );
    await step(
      "Calling dispatch every second",
      () => startDispatcher(`${functionsUrl()}/dispatch`, env.DISPATCH_SECRET),
    );
  }
  const keys = await apiKeys(secret);
  const rows: Array<[string, string]> = [
    ["DB URL", cluster.url()],
    ["Data", displayPath(cluster.dir)],
    ["Functions URL", flags["no-functions"] ? yellow("not started (--no-functions)") : functionsUrl()],
    ["JWT secret", secret],
    ["anon key", keys.anon],
    ["service_role key", keys.serviceRole],
    ["pg_cron", cron],
    [
      "Dispatcher",
      flags["no-functions"]
        ? yellow("not started (--no-functions)")
        : `POST ${functionsUrl()}/dispatch every second (log ${
          dispatcherLogFile.replace(/^.*\/\.local\//, ".local/")
        })`,
    ],
  ];
  console.log(`\n${green("ledgerbase local stack is running.")}\n`);
  for (const [k, v] of rows) console.log(`${bold(k.padStart(17))}: ${v}`);
  console.log(
    dim(
      `\nA user token for curl: npm run token -- you@example.com    Stop: npm stop    Logs: ${
        displayPath(functionsLogFile)
      }, ${displayPath(join(cluster.dir, "server.log"))}`,
    ),
  );
});
