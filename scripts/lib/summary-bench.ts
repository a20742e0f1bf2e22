// The usage_summary pair of `npm run bench` (--only=summary): one account's month by day
// costs the same with 10^6 and with 10^7 usage events in the table (target: ≤ 1.2 ×).
//
// Size 1: bench/summary_events.sql brings the table to 10^6 events (one insert ... select
// generate_series), the folder folds them, bench/summary_tail.sql adds 200 unfolded events
// of the measured account; then pgbench times bench/summary_month_by_day.sql against a
// constant-cost control (bench/summary_control.sql) in A B B A rounds, and the plain
// group by (bench/summary_raw_group_by.sql) once, for information. Size 2: the same after
// 9 × 10^6 more events. The figures are the ratio of the summary's cost between the sizes,
// and the same ratio for the control (what the machine's drift alone did).
import { join } from "node:path";
import { bold, dim, green, red, step, UserError } from "./log.ts";
import { pgBin } from "./postgres.ts";
import { must, run } from "./proc.ts";
import { root } from "./paths.ts";

const benchDir = join(root, "bench");
const SIZES = [1_000_000, 10_000_000];
const CLIENTS = 4;
const TARGET = 1.2;

interface Db {
  port: number;
  url(user?: string): string;
}

interface Timing {
  tps: number;
  latencyMs: number;
}

export interface SizeResult {
  events: number;
  accountEvents: number;
  rollupRows: number;
  summary: Timing;
  control: Timing;
  rawGroupBy: Timing;
}

export interface SummaryBenchResult {
  sizes: SizeResult[];
  /** summary cost at 10^7 / at 10^6 (latency ratio). */
  ratio: number;
  /** the control's cost ratio: drift of the machine between the sizes. */
  controlRatio: number;
}

async function psql(
  db: Db,
  opts: { file?: string; command?: string; vars?: Record<string, string | number> },
): Promise<string> {
  const args = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db.url("postgres")];
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push("-v", `${k}=${v}`);
  if (opts.file) args.push("-f", opts.file);
  if (opts.command) args.push("-c", opts.command);
  return (await must(`psql ${opts.file ?? "command"}`, join(pgBin, "psql"), args)).stdout.trim();
}

async function pgbench(db: Db, file: string, seconds: number): Promise<Timing> {
  const result = await run(join(pgBin, "pgbench"), [
    "-h",
    "127.0.0.1",
    "-p",
    String(db.port),
    "-U",
    "postgres",
    "-n",
    "-M",
    "prepared",
    "-c",
    String(CLIENTS),
    "-j",
    "2",
    "-T",
    String(seconds),
    "-f",
    join(benchDir, file),
    "postgres",
  ]);
  const text = result.stdout + "\n" + result.stderr;
  const tps = Number(text.match(/tps = ([\d.]+) \(without initial connection time\)/)?.[1] ?? NaN);
  const latencyMs = Number(text.match(/latency average = ([\d.]+) ms/)?.[1] ?? NaN);
  const failed = Number(text.match(/number of failed transactions: (\d+)/)?.[1] ?? 0);
  if (result.code !== 0 || failed > 0 || !Number.isFinite(tps)) {
    throw new UserError(`pgbench ${file} did not complete cleanly (exit ${result.code}):\n${text.trim().slice(-1500)}`);
  }
  return { tps, latencyMs };
}

/** Two runs of one side (A B B A order): their mean tps and mean latency. */
function combine(a: Timing, b: Timing): Timing {
  const tps = (a.tps + b.tps) / 2;
  return { tps, latencyMs: (a.latencyMs + b.latencyMs) / 2 };
}

async function measureSize(db: Db, events: number, seconds: number): Promise<SizeResult> {
  const half = Math.max(2, Math.round(seconds / 2));
  const have = Number(await psql(db, { command: "select count(*) from public.usage_events" }));
  if (have < events) {
    await step(
      `Writing ${(events - have).toLocaleString("en")} usage events (one insert … select generate_series)`,
      () =>
        psql(db, {
          file: join(benchDir, "summary_events.sql"),
          vars: { first: have + 1, last: events, accounts: 10_000 },
        }),
    );
  }
  const folded = await step(
    "Folding them into the rollup, then 200 events of the measured account left unfolded",
    async () => {
      const n = await psql(db, { command: "select private.fold_usage_events()" });
      await psql(db, { file: join(benchDir, "summary_tail.sql") });
      await psql(db, { command: "vacuum analyze ledger.entries, private.usage_rollup" });
      return Number(n);
    },
  );
  const [total, accountEvents, rollupRows] = (await psql(db, {
    command: `select (select count(*) from public.usage_events),
                     (select count(*) from public.usage_events where account_id = '00000000-0000-4000-8000-000000000042'),
                     (select count(*) from private.usage_rollup where account_id = '00000000-0000-4000-8000-000000000042')`,
  })).split("|").map(Number);
  console.log(
    dim(
      `    ${folded.toLocaleString("en")} folded; ${total.toLocaleString("en")} events in the table, ${
        accountEvents.toLocaleString("en")
      } of the measured account in ${rollupRows.toLocaleString("en")} rollup rows`,
    ),
  );
  await pgbench(db, "summary_month_by_day.sql", 3); // warm-up
  await pgbench(db, "summary_control.sql", 3);
  const s1 = await pgbench(db, "summary_month_by_day.sql", half);
  const c1 = await pgbench(db, "summary_control.sql", half);
  const c2 = await pgbench(db, "summary_control.sql", half);
  const s2 = await pgbench(db, "summary_month_by_day.sql", half);
  const rawGroupBy = await pgbench(db, "summary_raw_group_by.sql", half);
  return { events: total, accountEvents, rollupRows, summary: combine(s1, s2), control: combine(c1, c2), rawGroupBy };
}

export async function runSummaryBench(db: Db, seconds: number): Promise<SummaryBenchResult> {
  const sizes: SizeResult[] = [];
  for (const events of SIZES) {
    const measured = await step(
      `7. usage_summary, month by day, with ${events.toLocaleString("en")} usage events`,
      () => measureSize(db, events, seconds),
    );
    console.log(
      dim(
        `    summary ${measured.summary.latencyMs.toFixed(2)} ms, control ${
          measured.control.latencyMs.toFixed(2)
        } ms, plain group by ${measured.rawGroupBy.latencyMs.toFixed(2)} ms`,
      ),
    );
    sizes.push(measured);
  }
  const [small, large] = sizes;
  return {
    sizes,
    ratio: large.summary.latencyMs / small.summary.latencyMs,
    controlRatio: large.control.latencyMs / small.control.latencyMs,
  };
}

export function printSummaryBench(r: SummaryBenchResult): void {
  const met = r.ratio <= TARGET;
  console.log(
    `\n${bold("Usage summary benchmark")} ${
      dim(
        `(docs/performance.md#targets; one account's month by day, ${CLIENTS} clients, pgbench -M prepared, A B B A with a control)`,
      )
    }`,
  );
  for (const s of r.sizes) {
    console.log(
      `  ${s.events.toLocaleString("en").padStart(11)} events  summary ${
        s.summary.latencyMs.toFixed(2).padStart(7)
      } ms  control ${s.control.latencyMs.toFixed(2).padStart(6)} ms  plain group by ${
        s.rawGroupBy.latencyMs.toFixed(2).padStart(8)
      } ms  (${s.accountEvents.toLocaleString("en")} events of the account, ${
        s.rollupRows.toLocaleString("en")
      } rollup rows)`,
    );
  }
  console.log(
    `  ratio ${r.ratio.toFixed(2)}  target ≤ ${TARGET.toFixed(2)}  ${
      met ? green("met") : red(`MISSED by ${(r.ratio - TARGET).toFixed(2)}`)
    }  ${dim(`(control ratio ${r.controlRatio.toFixed(2)}: the machine's drift between the sizes)`)}`,
  );
}
