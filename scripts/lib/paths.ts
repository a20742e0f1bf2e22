// Where things live in the repository.
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
export const local = join(root, ".local");
export const supabaseDir = join(root, "supabase");
export const migrationsDir = join(supabaseDir, "migrations");
export const functionsDir = join(supabaseDir, "functions");
export const functionsEnv = join(functionsDir, ".env");
export const functionsEnvExample = join(functionsDir, ".env.example");
export const databaseTestsDir = join(supabaseDir, "tests", "database");
export const platformDir = join(root, "scripts", "platform");
export const typesFile = join(root, "types", "database.ts");
export const bin = (name: string) => join(root, "node_modules", ".bin", name);
