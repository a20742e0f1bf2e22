// supabase/functions/.env: the settings of the edge functions (the Supabase CLI reads the same file).
import { exists } from "./proc.ts";
import { functionsEnv, functionsEnvExample } from "./paths.ts";
import { stackUrls } from "./config.ts";

export function parseDotenv(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 1) continue;
    let value = line.slice(eq + 1).trim();
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.slice(1, -1);
    }
    values[line.slice(0, eq).trim()] = value;
  }
  return values;
}

/** Creates supabase/functions/.env from the committed example on first start; returns its values. */
export async function ensureFunctionsEnv(): Promise<{ values: Record<string, string>; created: boolean }> {
  let created = false;
  if (!(await exists(functionsEnv))) {
    await Deno.copyFile(functionsEnvExample, functionsEnv);
    created = true;
  }
  return { values: parseDotenv(await Deno.readTextFile(functionsEnv)), created };
}

/** What .env.example used to hard-code: a copy of it in a .env is not a choice of the user's. */
const FORMER_EXAMPLE: Record<string, string> = {
  SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:54322/postgres",
  SUPABASE_URL: "http://127.0.0.1:54321",
};

/**
 * The functions' settings against the local stack: SUPABASE_DB_URL and SUPABASE_URL are the
 * stack's own (on LEDGERBASE_DB_PORT and LEDGERBASE_FUNCTIONS_PORT) unless the user set them.
 */
export function withStackUrls(
  values: Record<string, string>,
  stack: { dbUrl: string; apiUrl: string },
): Record<string, string> {
  const own = (name: string) => {
    const value = values[name]?.trim();
    return value && value !== FORMER_EXAMPLE[name] ? value : undefined;
  };
  return {
    ...values,
    SUPABASE_DB_URL: own("SUPABASE_DB_URL") ?? stack.dbUrl,
    SUPABASE_URL: own("SUPABASE_URL") ?? stack.apiUrl,
  };
}

/**
 * The edge functions' settings as a script running beside the stack sees them: supabase/functions/.env,
 * overridden by non-empty environment variables, with the DB and API URLs of this stack unless set.
 */
export async function functionsSettings(): Promise<Map<string, string>> {
  let file: Record<string, string> = {};
  try {
    file = parseDotenv(await Deno.readTextFile(functionsEnv));
  } catch {
    // no .env: the environment alone
  }
  const merged: Record<string, string> = { ...file };
  for (const [key, value] of Object.entries(Deno.env.toObject())) if (value !== "") merged[key] = value;
  return new Map(Object.entries(withStackUrls(merged, stackUrls)));
}
