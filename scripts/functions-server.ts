// Serves every edge function at http://127.0.0.1:<port>/functions/v1/<name>, the way
// `supabase functions serve` does, without Docker: each function's exported `handler`
// (from its handler.ts) receives the request with the /functions/v1 prefix removed, so
// the function sees /<name>/... as it does on Supabase.
import { join } from "node:path";
import { functionsDir } from "./lib/paths.ts";

type Handler = (request: Request) => Response | Promise<Response>;

const port = Number(Deno.env.get("FUNCTIONS_PORT") ?? 54321);
const handlers = new Map<string, Handler>();

for await (const entry of Deno.readDir(functionsDir)) {
  if (!entry.isDirectory || entry.name.startsWith("_") || entry.name === "tests") continue;
  const file = join(functionsDir, entry.name, "handler.ts");
  try {
    await Deno.stat(file);
  } catch {
    continue;
  }
  const module = await import(`file://${file}`);
  if (typeof module.handler !== "function") {
    console.error(`functions: ${entry.name}/handler.ts does not export a handler; skipped`);
    continue;
  }
  handlers.set(entry.name, module.handler as Handler);
}

const notFound = (message: string) => Response.json({ error: { code: "not_found", message } }, { status: 404 });

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: () => console.log(`functions: serving ${[...handlers.keys()].sort().join(", ") || "nothing"} on :${port}`),
}, async (request) => {
  const url = new URL(request.url);
  if (url.pathname === "/health") return Response.json({ ok: true, functions: [...handlers.keys()].sort() });
  const match = url.pathname.match(/^\/functions\/v1\/([^/]+)(\/.*)?$/);
  if (!match) return notFound("no such route; functions live under /functions/v1/<name>");
  const handler = handlers.get(match[1]);
  if (!handler) return notFound(`no function named "${match[1]}"`);
  url.pathname = `/${match[1]}${match[2] ?? ""}`;
  const started = performance.now();
  const response = await handler(new Request(url, request));
  console.log(
    `${request.method} /functions/v1/${match[1]}${match[2] ?? ""} ${response.status} ${
      Math.round(performance.now() - started)
    }ms`,
  );
  return response;
});
