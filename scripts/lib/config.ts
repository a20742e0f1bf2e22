// Settings of the local stack, shared by every command.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { clusterHome, local } from "./paths.ts";

/** The port `supabase start` uses for Postgres, so one URL works in both modes. */
export const DEV_DB_PORT = Number(Deno.env.get("LEDGERBASE_DB_PORT") ?? 54322);
/** The port `supabase start` uses for the API gateway; we serve functions there. */
export const FUNCTIONS_PORT = Number(Deno.env.get("LEDGERBASE_FUNCTIONS_PORT") ?? 54321);
/** The Supabase CLI's default local JWT secret. */
export const DEFAULT_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

/** The cluster of `npm start`. A stack created in .local/db by an earlier version stays there with its data. */
export const devClusterDir = existsSync(join(local, "db", "PG_VERSION")) ? join(local, "db") : join(clusterHome, "db");
/** Each run of npm test gets a cluster of its own, so two runs never share one. */
export const testClusterDir = (pid = Deno.pid) => join(clusterHome, `test-db-${pid}`);
export const functionsPidFile = join(local, "functions.pid");
export const functionsLogFile = join(local, "functions.log");
export const functionsUrl = (port = FUNCTIONS_PORT) => `http://127.0.0.1:${port}/functions/v1`;
/** The local stack's URLs, as the edge functions are given them (scripts/lib/env.ts withStackUrls). */
export const stackUrls = {
  dbUrl: `postgresql://postgres:postgres@127.0.0.1:${DEV_DB_PORT}/postgres`,
  apiUrl: `http://127.0.0.1:${FUNCTIONS_PORT}`,
};
