// The local stand-in for pg_cron + pg_net: POSTs the dispatch function every second and
// logs what it ran. Started and stopped by `npm start` / `npm stop` (see scripts/lib/dispatcher.ts).
const url = Deno.env.get("DISPATCH_URL") ?? "http://127.0.0.1:54321/functions/v1/dispatch";
const secret = Deno.env.get("DISPATCH_SECRET") ?? "";
let lastProblem = "";

const stamp = () => new Date().toISOString().slice(0, 19).replace("T", " ");

async function tick(): Promise<void> {
  let problem = "";
  try {
    const response = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${secret}` } });
    const text = await response.text();
    if (!response.ok) {
      problem = `HTTP ${response.status}: ${text.slice(0, 300)}`;
    } else {
      const summary = JSON.parse(text) as Record<string, number>;
      if (summary.claimed > 0) console.log(`${stamp()} dispatch ${text}`);
    }
  } catch (e) {
    problem = e instanceof Error ? e.message : String(e);
  }
  // Say it once when something goes wrong and once when it is fixed, not every second.
  if (problem !== lastProblem) {
    console.log(`${stamp()} ${problem ? `dispatch failed: ${problem}` : "dispatch works again"}`);
  }
  lastProblem = problem;
}

console.log(`${stamp()} calling ${url} every second`);
while (true) {
  const started = Date.now();
  await tick();
  await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
}
