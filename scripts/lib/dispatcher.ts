// The local dispatcher: a background process that POSTs /functions/v1/dispatch every second
// while `npm start` runs (pg_cron + pg_net do it on a hosted project), with the
// DISPATCH_SECRET of supabase/functions/.env, created on first start.
import { join } from "node:path";
import { UserError } from "./log.ts";
import { bin, functionsEnv, local, root } from "./paths.ts";
import { exists, must } from "./proc.ts";

export const dispatcherPidFile = join(local, "dispatcher.pid");
export const dispatcherLogFile = join(local, "dispatcher.log");

/** DISPATCH_SECRET from .env, or a new random one written there (32 bytes, hex). */
export async function ensureDispatchSecret(values: Record<string, string>): Promise<string> {
  if (values.DISPATCH_SECRET && values.DISPATCH_SECRET.length >= 32) return values.DISPATCH_SECRET;
  const secret = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  const text = await Deno.readTextFile(functionsEnv);
  const line = `DISPATCH_SECRET=${secret}`;
  const updated = /^DISPATCH_SECRET=.*$/m.test(text)
    ? text.replace(/^DISPATCH_SECRET=.*$/m, line)
    : `${text.trimEnd()}\n${line}\n`;
  await Deno.writeTextFile(functionsEnv, updated);
  return secret;
}

async function readPid(): Promise<number | null> {
  try {
    const pid = Number((await Deno.readTextFile(dispatcherPidFile)).trim());
    return Number.isInteger(pid) && pid > 0 && (await exists(`/proc/${pid}`)) ? pid : null;
  } catch {
    return null;
  }
}

export async function dispatcherRunning(): Promise<boolean> {
  return (await readPid()) !== null;
}

export async function stopDispatcher(): Promise<boolean> {
  const pid = await readPid();
  await Deno.remove(dispatcherPidFile).catch(() => {});
  if (!pid) return false;
  try {
    Deno.kill(-pid, "SIGTERM");
  } catch {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* already gone */ }
  }
  for (let i = 0; i < 30 && (await exists(`/proc/${pid}`)); i++) await new Promise((r) => setTimeout(r, 100));
  return true;
}

/** (Re)starts the loop, detached from this command. */
export async function startDispatcher(url: string, secret: string): Promise<void> {
  await stopDispatcher();
  await Deno.mkdir(local, { recursive: true });
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [bin("deno"), "run", "-A", "--quiet", join(root, "scripts", "dispatcher-loop.ts")].map(quote).join(
    " ",
  );
  const result = await must("start the dispatcher", "sh", [
    "-c",
    `setsid ${command} >> ${quote(dispatcherLogFile)} 2>&1 < /dev/null & echo $!`,
  ], { cwd: root, env: { DISPATCH_URL: url, DISPATCH_SECRET: secret } });
  await Deno.writeTextFile(dispatcherPidFile, result.stdout.trim());
  await new Promise((r) => setTimeout(r, 300));
  if (!(await readPid())) {
    const log = await Deno.readTextFile(dispatcherLogFile).catch(() => "");
    throw new UserError(
      `the dispatcher did not start:\n${log.split("\n").slice(-10).join("\n")}`,
      `see ${dispatcherLogFile}`,
    );
  }
}
