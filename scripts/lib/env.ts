// supabase/functions/.env: the settings of the edge functions (the Supabase CLI reads the same file).
import { exists } from "./proc.ts";
import { functionsEnv, functionsEnvExample } from "./paths.ts";

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
