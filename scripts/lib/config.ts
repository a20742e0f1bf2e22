// Settings of the local stack, shared by every command.
import { join } from "node:path";
import { local } from "./paths.ts";

/** The port `supabase start` uses for Postgres, so one URL works in both modes. */
export const DEV_DB_PORT = Number(Deno.env.get("LEDGERBASE_DB_PORT") ?? 54322);
/** The port `supabase start` uses for the API gateway; we serve functions there. */
export const FUNCTIONS_PORT = Number(Deno.env.get("LEDGERBASE_FUNCTIONS_PORT") ?? 54321);
/** The Supabase CLI's default local JWT secret. */
export const DEFAULT_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

export const devClusterDir = join(local, "db");
/** Each run of npm test gets a cluster of its own, so two runs never share one. */
export const testClusterDir = (pid = Deno.pid) => join(local, `test-db-${pid}`);
export const functionsPidFile = join(local, "functions.pid");
export const functionsLogFile = join(local, "functions.log");
export const functionsUrl = (port = FUNCTIONS_PORT) => `http://127.0.0.1:${port}/functions/v1`;
