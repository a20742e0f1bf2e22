// Where things live in the repository.
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
export const local = join(root, ".local");
/**
 * Where the PostgreSQL clusters keep their data. As root the server runs as the `postgres`
 * OS user, who may not be allowed into the clone at all (a clone in root's mode-700 home, or
 * in any private folder), so the clusters of a clone live in a folder of their own under
 * /var/lib/ledgerbase, named after the clone's path. Otherwise the server runs as you, and
 * the git-ignored .local folder serves. LEDGERBASE_DATA_DIR overrides both.
 */
export const clusterHome = Deno.env.get("LEDGERBASE_DATA_DIR") ||
  (Deno.uid() === 0 ? join("/var/lib/ledgerbase", cloneKey(root)) : local);

/** A folder name for a clone: its name and a short hash of its full path (two clones never share one). */
export function cloneKey(path: string): string {
  const name = basename(path).replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 40) || "clone";
  return `${name}-${createHash("sha256").update(path).digest("hex").slice(0, 12)}`;
}
export const supabaseDir = join(root, "supabase");
export const migrationsDir = join(supabaseDir, "migrations");
export const functionsDir = join(supabaseDir, "functions");
export const functionsEnv = join(functionsDir, ".env");
export const functionsEnvExample = join(functionsDir, ".env.example");
export const databaseTestsDir = join(supabaseDir, "tests", "database");
/** Deno tests of the SQL engine itself (concurrency, properties, PostgREST sessions): no edge function in them. */
export const engineTestsDir = join(supabaseDir, "tests", "engine");
export const platformDir = join(root, "scripts", "platform");
export const typesFile = join(root, "types", "database.ts");
export const bin = (name: string) => join(root, "node_modules", ".bin", name);
/** A path as the user reads it: relative inside the clone, absolute elsewhere. */
export const displayPath = (path: string) => (path.startsWith(root + "/") ? path.slice(root.length + 1) : path);
