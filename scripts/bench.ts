// npm run bench: the performance targets of docs/performance.md#targets for the credit engine, measured as
// ratios of pairs run back to back on one throw-away database.
//
// A cluster of its own (bench-db, beside the clone's other clusters; durable: fsync and synchronous_commit on, so
// commit flushes are real), the migrations and seed through the Supabase CLI, the data of
// bench/setup.sql, then pgbench pairs from bench/*.sql. Each side of a pair runs in two
// rounds in ABBA order so that drift (other work on the machine) hits both sides alike.
// tps comes from pgbench, p95 from its per-transaction logs (--log), per-statement
// latencies from -r.
import { join, relative } from "node:path";
import { bold, dim, formatMs, green, main, parseArgs, red, step, UserError, yellow } from "./lib/log.ts";
import { Cluster, ensurePackages, freePort, pgBin } from "./lib/postgres.ts";
import { clusterHome, root } from "./lib/paths.ts";
import { must, run } from "./lib/proc.ts";
import { pushMigrations } from "./lib/supabase.ts";
import { runWebhookBench, type WebhookBenchResult } from "../supabase/functions/stripe-webhook/bench.ts";
import { printSummaryBench, runSummaryBench, type SummaryBenchResult } from "./lib/summary-bench.ts";

const benchDir = join(root, "bench");
const ACCOUNTS = 10_000;
const LEDGER_ROWS = 1_000_000;
const THREADS = 2;

const usage = `usage: npm run bench [-- options]

  --duration=S   seconds per side of each pair (default 20), run as two ABBA rounds
  --clients=N    pgbench clients (default 32; threads: ${THREADS})
  --only=LIST    pairs to run (comma list): hot, hotbare, hotfloor, spread, spreadbare, wrapped, floor, ratelimit,
                 policy, ledger, webhook, audit, summary
  --apply=FILES  after the data is ready, run these SQL files (comma list) as postgres,
                 e.g. candidate functions made with create or replace
  --profile      afterwards, profile consume_credits: per-statement times with
                 pg_stat_statements.track = all, function self times, wait events
  --keep         leave the bench database running afterwards (its URL is printed)`;

interface Side {
  label: string;
  file: string;
}
interface Pair {
  key: string;
  title: string;
  baseline: Side;
  candidate: Side;
  /** throughput: candidate tps / baseline tps must be >= target; cost: baseline tps / candidate tps <= target. */
  kind: "throughput" | "cost";
  target: number | null;
}

const pairs: Pair[] = [
  {
    key: "hot",
    title: "1. one hot account",
    baseline: { label: "hand-written RPC, 1 row", file: "handwritten_hot.sql" },
    candidate: { label: "consume_credits, 1 account", file: "consume_hot.sql" },
    kind: "throughput",
    target: 0.95,
  },
  {
    key: "hotbare",
    title: "1a. bare update (info)",
    baseline: { label: "bare update, 1 row", file: "bare_update_hot.sql" },
    candidate: { label: "consume_credits, 1 account", file: "consume_hot.sql" },
    kind: "throughput",
    target: null,
  },
  {
    key: "hotfloor",
    title: "1b. required writes (info)",
    baseline: { label: "bare update, 1 row", file: "bare_update_hot.sql" },
    candidate: { label: "2 row writes, 1 account", file: "floor_required_writes_hot.sql" },
    kind: "throughput",
    target: null,
  },
  {
    key: "spread",
    title: "2. 10,000 accounts",
    baseline: { label: "hand-written RPC, 10k rows", file: "handwritten_spread.sql" },
    candidate: { label: "consume_credits, 10k accounts", file: "consume_spread.sql" },
    kind: "throughput",
    target: 0.8,
  },
  {
    key: "spreadbare",
    title: "2a. bare update (info)",
    baseline: { label: "bare update, 10k rows", file: "bare_update_spread.sql" },
    candidate: { label: "consume_credits, 10k accounts", file: "consume_spread.sql" },
    kind: "throughput",
    target: null,
  },
  {
    key: "wrapped",
    title: "2b. update in a function (info)",
    baseline: { label: "bare update, 10k rows", file: "bare_update_spread.sql" },
    candidate: { label: "same update, definer fn", file: "floor_update_in_function.sql" },
    kind: "throughput",
    target: null,
  },
  {
    key: "floor",
    title: "2c. required writes (info)",
    baseline: { label: "bare update, 10k rows", file: "bare_update_spread.sql" },
    candidate: { label: "2 row writes, no checks", file: "floor_required_writes.sql" },
    kind: "throughput",
    target: null,
  },
  {
    key: "ratelimit",
    title: "3. rate-limit check",
    baseline: { label: "bare update, 10k rows", file: "bare_update_spread.sql" },
    candidate: { label: "check_rate_limit, 10k keys", file: "rate_limit_check.sql" },
    kind: "throughput",
    target: 0.8,
  },
  {
    key: "policy",
    title: "3b. named policy (info)",
    baseline: { label: "bare update, 10k rows", file: "bare_update_spread.sql" },
    candidate: { label: "rate_limit(policy), 10k accts", file: "rate_limit_policy.sql" },
    kind: "throughput",
    target: null,
  },
  {
    key: "ledger",
    title: "4. ledger page, 1M rows",
    baseline: { label: "owner, no RLS", file: "ledger_page_owner.sql" },
    candidate: { label: "authenticated, RLS", file: "ledger_page_rls.sql" },
    kind: "cost",
    target: 1.3,
  },
];

interface RunStats {
  /** Steady-state window and tps (see warmupSkip); pgbenchTps is pgbench's own figure for the whole run. */
  seconds: number;
  tps: number;
  pgbenchTps: number;
  transactions: number;
  /** WAL written during the whole run (cluster-wide), and full-page images in it. */
  walBytes: number;
  walFpi: number;
  latencies: Float64Array; // per transaction, ms
  statements: Array<{ ms: number; command: string }>;
}

interface Measured {
  tps: number;
  transactions: number;
  walPerTx: number;
  fpiPerTx: number;
  p50: number;
  p95: number;
  mean: number;
  statements: Array<{ ms: number; command: string }>;
}

async function benchMain(): Promise<void> {
  const { flags } = parseArgs(
    Deno.args,
    { duration: "string", clients: "string", only: "string", apply: "string", profile: "boolean", keep: "boolean" },
    usage,
  );
  const duration = positiveInt(flags.duration ?? "20", "--duration");
  const clients = positiveInt(flags.clients ?? "32", "--clients");
  const only = typeof flags.only === "string" ? new Set(flags.only.split(",")) : null;
  for (const k of only ?? []) {
    if (k !== "webhook" && k !== "audit" && k !== "summary" && !pairs.some((p) => p.key === k)) {
      throw new UserError(`unknown pair "${k}"`, usage);
    }
  }
  const withWebhook = !only || only.has("webhook");
  let webhook: WebhookBenchResult | null = null;
  let audit: AuditScaling | null = null;
  let summary: SummaryBenchResult | null = null;
  const chosen = pairs.filter((p) => !only || only.has(p.key));
  const apply = typeof flags.apply === "string" ? flags.apply : null;
  const applyFiles = apply ? apply.split(",") : [];
  for (const f of applyFiles) {
    if (!(await Deno.stat(f).catch(() => null))) throw new UserError(`--apply: no such file ${f}`);
  }
  const started = performance.now();

  await step("Checking Debian packages", () => ensurePackages(console.log));
  // Not ephemeral: fsync, synchronous_commit and full_page_writes stay on, as in production.
  const dir = join(clusterHome, "bench-db");
  await new Cluster({ dir, port: 0 }).stop(); // a leftover of an interrupted run frees its port first
  const cluster = new Cluster({ dir, port: freePort(54380) });
  const logs = await Deno.makeTempDir({ prefix: "ledgerbase-bench-" });
  const consumeTransactions = { count: 0 };
  const bench = new Bench(cluster, clients, logs, consumeTransactions);
  const results: Array<{ pair: Pair; baseline: Measured; candidate: Measured }> = [];
  try {
    await step(`Creating a durable throw-away database on port ${cluster.port}`, async () => {
      await cluster.destroy();
      await cluster.init();
      await cluster.start();
      await cluster.freshDatabase();
    });
    await step("Applying migrations and seed with `supabase db push`", () => pushMigrations(cluster.url()));
    await step(
      `Preparing ${ACCOUNTS.toLocaleString("en")} accounts and ${LEDGER_ROWS.toLocaleString("en")} ledger rows`,
      () => bench.sql({ file: join(benchDir, "setup.sql"), vars: { accounts: ACCOUNTS, ledger_rows: LEDGER_ROWS } }),
    );
    await step(
      `Preparing the hand-written baseline on its own ${ACCOUNTS.toLocaleString("en")} profiles`,
      () => bench.sql({ file: join(benchDir, "handwritten_setup.sql"), vars: { accounts: ACCOUNTS } }),
    );
    for (const f of applyFiles) await step(`Applying ${f}`, () => bench.sql({ file: f }));
    await step("Checkpointing once; no checkpoint during the measurements", () => bench.quietCheckpoints());

    for (const pair of chosen) {
      const measured = await step(
        `${pair.title}: ${pair.baseline.label} vs ${pair.candidate.label} (${duration} s each, ${clients} clients)`,
        () => bench.pair(pair, duration),
      );
      results.push({ pair, ...measured });
      console.log(dim(`    ${line(pair, measured.baseline, measured.candidate)}`));
    }

    if (withWebhook) {
      webhook = await step(
        "5. stripe-webhook: signed invoice.paid deliveries, verify + insert raw vs the handler, then the rows alone (2,000 each, 8 concurrent)",
        () => runWebhookBench({ dbUrl: cluster.url(), events: 2000, concurrency: 8 }),
      );
    }

    if (!only || only.has("audit")) {
      audit = await step(
        `6. audited staff adjustments: 1 client vs 32 clients on 32 accounts, a sealer every second (${duration} s each)`,
        () => auditScaling(cluster, logs, duration),
      );
    }

    if (chosen.some((p) => p.candidate.file.startsWith("consume_"))) {
      await step("Checking the credit invariants after the run", () => bench.checkInvariants());
    }
    // Last: it adds 10^7 usage events (see scripts/lib/summary-bench.ts).
    if (!only || only.has("summary")) summary = await runSummaryBench(cluster, duration);
    if (flags.profile) {
      await bench.profile(Math.max(10, Math.round(duration / 2)));
    }
  } finally {
    if (flags.keep) {
      console.log(
        `\n${bold("bench database kept:")} ${cluster.url()}  ${
          dim(`(in ${relative(root, cluster.dir)}; the next npm run bench replaces it)`)
        }`,
      );
    } else await cluster.destroy().catch(() => {});
    await Deno.remove(logs, { recursive: true }).catch(() => {});
  }

  printTable(results, { clients, duration, apply });
  if (webhook) printWebhook(webhook);
  if (audit) printAuditScaling(audit);
  if (summary) printSummaryBench(summary);
  console.log(dim(`\n(${formatMs(Math.round(performance.now() - started))} in all)`));
}

class Bench {
  constructor(
    readonly cluster: Cluster,
    readonly clients: number,
    readonly logs: string,
    readonly consumed: { count: number },
  ) {}

  /** psql with variables; returns stdout (unaligned, tuples only when asked). */
  async sql(
    opts: { file?: string; command?: string; vars?: Record<string, string | number>; user?: string; tuples?: boolean },
  ): Promise<string> {
    const args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", this.cluster.url(opts.user ?? "postgres")];
    for (const [k, v] of Object.entries(opts.vars ?? {})) args.push("-v", `${k}=${v}`);
    if (opts.tuples) args.push("-A", "-t", "-F", "\t");
    if (opts.file) args.push("-f", opts.file);
    if (opts.command) args.push("-c", opts.command);
    return (await must(`psql ${opts.file ? relative(root, opts.file) : "command"}`, join(pgBin, "psql"), args)).stdout;
  }

  /** Starts every run from the same state: the hot tables vacuumed. */
  async settle(): Promise<void> {
    await this.sql({
      command: "vacuum (analyze) bench.wallets, bench.profiles, public.credit_balances, ledger.lots, " +
        "private.rate_limit_buckets",
    });
  }

  /**
   * Measures between checkpoints: right after one, the first change to every page writes
   * a full-page image into the WAL, which would hit the side touching more distinct pages
   * (consume_credits: random index leaves of the ledger and usage events) far harder in a
   * short run than in production, where a checkpoint comes every few minutes. One
   * checkpoint now, and none until the end (bench cluster only).
   */
  async quietCheckpoints(): Promise<void> {
    await this.sql({ user: "supabase_admin", command: "alter system set max_wal_size = '32GB'" });
    await this.sql({ user: "supabase_admin", command: "alter system set checkpoint_timeout = '1h'" });
    await this.sql({ user: "supabase_admin", command: "select pg_reload_conf()" });
    await this.sql({ user: "supabase_admin", command: "checkpoint" });
  }

  async wal(): Promise<{ bytes: number; fpi: number }> {
    const [bytes, fpi] = (await this.sql({ tuples: true, command: "select wal_bytes, wal_fpi from pg_stat_wal" }))
      .trim().split("\t").map(Number);
    return { bytes, fpi };
  }

  async pgbench(file: string, seconds: number, log: boolean): Promise<RunStats> {
    const dir = await Deno.makeTempDir({ dir: this.logs });
    const args = [
      "-h",
      "127.0.0.1",
      "-p",
      String(this.cluster.port),
      "-U",
      "postgres",
      "-n",
      "-M",
      "prepared",
      "-r",
      "-c",
      String(this.clients),
      "-j",
      String(THREADS),
      "-T",
      String(seconds),
      "-D",
      `accounts=${ACCOUNTS}`,
      "-f",
      join(benchDir, file),
      ...(log ? ["--log", `--log-prefix=${join(dir, "tx")}`] : []),
      "postgres",
    ];
    const walBefore = await this.wal();
    const result = await run(join(pgBin, "pgbench"), args, { cwd: dir });
    const walAfter = await this.wal();
    const text = result.stdout + "\n" + result.stderr;
    const processed = Number(text.match(/number of transactions actually processed: (\d+)/)?.[1] ?? NaN);
    const failed = Number(text.match(/number of failed transactions: (\d+)/)?.[1] ?? 0);
    const tps = Number(text.match(/tps = ([\d.]+) \(without initial connection time\)/)?.[1] ?? NaN);
    if (file.startsWith("consume_") && Number.isFinite(processed)) this.consumed.count += processed;
    if (result.code !== 0 || failed > 0 || !Number.isFinite(tps)) {
      const tail = text.trim().split("\n").filter((l) => /error|abort|fail/i.test(l)).slice(0, 8).join("\n");
      throw new UserError(
        `pgbench ${file} did not complete cleanly (exit ${result.code}, ${failed} failed transactions):\n${
          tail || text.trim().slice(-2000)
        }`,
        "every measured call must succeed: check the rate-limit policies, quotas and balances prepared by bench/setup.sql",
      );
    }
    const statements: RunStats["statements"] = [];
    const block = text.split(/statement latencies in milliseconds[^\n]*\n/)[1] ?? "";
    for (const row of block.split("\n")) {
      const m = row.match(/^\s+([\d.]+)\s+\d+\s+(.*)$/);
      if (m) statements.push({ ms: Number(m[1]), command: m[2].trim() });
    }
    // Steady state from the per-transaction logs: the first seconds of a run (32 new
    // sessions compiling plpgsql and planning every statement once) are left out, as a
    // pooled server (Supavisor, PostgREST) keeps its sessions warm.
    let latencies = new Float64Array(0);
    let steadyTps = tps;
    let steadySeconds = seconds;
    if (log) {
      const ends: number[] = [];
      const lats: number[] = [];
      for await (const entry of Deno.readDir(dir)) {
        if (!entry.name.startsWith("tx.")) continue;
        for (const row of (await Deno.readTextFile(join(dir, entry.name))).split("\n")) {
          const f = row.split(" ");
          if (f.length < 6) continue;
          lats.push(Number(f[2]) / 1000);
          ends.push(Number(f[4]) * 1000 + Number(f[5]) / 1000);
        }
      }
      let first = Infinity, last = -Infinity;
      for (let i = 0; i < ends.length; i++) {
        first = Math.min(first, ends[i] - lats[i]);
        last = Math.max(last, ends[i]);
      }
      const from = first + warmupSkip(seconds) * 1000;
      const kept: number[] = [];
      for (let i = 0; i < ends.length; i++) if (ends[i] >= from) kept.push(lats[i]);
      latencies = Float64Array.from(kept);
      steadySeconds = (last - from) / 1000;
      steadyTps = kept.length / steadySeconds;
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    return {
      seconds: steadySeconds,
      tps: steadyTps,
      pgbenchTps: tps,
      transactions: processed,
      walBytes: walAfter.bytes - walBefore.bytes,
      walFpi: walAfter.fpi - walBefore.fpi,
      latencies,
      statements,
    };
  }

  /** Two rounds per side in ABBA order, after a short warm-up of each side. */
  async pair(pair: Pair, duration: number): Promise<{ baseline: Measured; candidate: Measured }> {
    const half = Math.max(2, Math.round(duration / 2));
    await this.pgbench(pair.baseline.file, 5, false);
    await this.pgbench(pair.candidate.file, 5, false);
    const runs = { baseline: [] as RunStats[], candidate: [] as RunStats[] };
    for (const side of ["baseline", "candidate", "candidate", "baseline"] as const) {
      await this.settle();
      runs[side].push(await this.pgbench(pair[side].file, half, true));
    }
    return { baseline: combine(runs.baseline), candidate: combine(runs.candidate) };
  }

  async checkInvariants(): Promise<void> {
    const out = await this.sql({
      tuples: true,
      command: `
        select
          (select count(*) from public.credit_balances w
            where w.balance <> (select coalesce(sum(l.delta), 0) from public.credit_ledger l where l.account_id = w.account_id)),
          (select count(*) from public.credit_balances w
            where w.balance <> (select coalesce(sum(g.remaining), 0) from public.credit_grants g where g.account_id = w.account_id)),
          (select count(*) from public.usage_events where action <> 'bench_floor')`,
    });
    const [ledgerOff, lotsOff, events] = out.trim().split("\t").map(Number);
    if (ledgerOff || lotsOff) {
      throw new UserError(
        `credit invariants broken after the run: ${ledgerOff} wallets off their ledger, ${lotsOff} off their lots`,
      );
    }
    if (events !== this.consumed.count) {
      throw new UserError(
        `pgbench reported ${this.consumed.count} consume_credits calls, but there are ${events} usage events`,
      );
    }
    console.log(
      dim(`    ${events.toLocaleString("en")} usage events, every wallet = sum of its ledger = sum of its lots`),
    );
  }

  /** Where consume_credits spends its time: nested statements, function self times, wait events. */
  async profile(seconds: number): Promise<void> {
    await this.sql({
      user: "supabase_admin",
      command: "alter system set pg_stat_statements.track = 'all'",
    });
    await this.sql({ user: "supabase_admin", command: "alter system set track_functions = 'all'" });
    await this.sql({ user: "supabase_admin", command: "select pg_reload_conf()" });
    const files = ["handwritten_hot.sql", "consume_hot.sql", "handwritten_spread.sql", "consume_spread.sql"];
    for (const file of files) {
      await this.settle();
      await this.sql({
        user: "supabase_admin",
        command: "select extensions.pg_stat_statements_reset(); select pg_stat_reset();",
      });
      const sampler = this.sql({
        user: "supabase_admin",
        tuples: true,
        command: `
          create temp table samples (what text, n int);
          do $$ begin
            while clock_timestamp() < statement_timestamp() + interval '${seconds} seconds' loop
              insert into samples
              select case when state = 'active' then coalesce(wait_event_type || ':' || wait_event, 'CPU (running or runnable)')
                          else state || coalesce(' ' || wait_event, '') end, count(*)
              from pg_stat_activity
              where backend_type = 'client backend' and pid <> pg_backend_pid() and usename = 'postgres'
              group by 1;
              perform pg_stat_clear_snapshot();
              perform pg_sleep(0.02);
            end loop;
          end $$;
          select what, round(100.0 * sum(n) / (select sum(n) from samples), 1) from samples group by 1 order by 2 desc;`,
      });
      const stats = await this.pgbench(file, seconds, false);
      const waits = await sampler;
      console.log(
        `\n${bold(`Profile: ${file}`)} ${
          dim(
            `(${stats.tps.toFixed(0)} tps, ${this.clients} clients, ${seconds} s; per transaction ${
              (stats.walBytes / stats.transactions / 1024).toFixed(1)
            } kB WAL, ${(stats.walFpi / stats.transactions).toFixed(2)} full-page images)`,
          )
        }`,
      );
      console.log(dim("  where the client backends were (share of samples every 20 ms):"));
      for (const row of waits.trim().split("\n")) {
        const [what, pct] = row.split("\t");
        console.log(`    ${pct.padStart(5)} %  ${what}`);
      }
      if (file.startsWith("handwritten_")) {
        console.log(dim("  statements by total time (pg_stat_statements, track = all):"));
        console.log(indent(
          await this.sql({
            command: `
          select s.calls, round(s.mean_exec_time::numeric, 3) as mean_ms,
                 left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110) as query
          from extensions.pg_stat_statements s
          join pg_database d on d.oid = s.dbid and d.datname = current_database()
          where s.userid = 'postgres'::regrole and s.query !~* '^(vacuum|checkpoint|select extensions.pg_stat|select pg_stat)'
          order by s.total_exec_time desc limit 4`,
          }),
        ));
        continue;
      }
      console.log(dim("  statements by total time (pg_stat_statements, track = all; nested ones included):"));
      console.log(indent(
        await this.sql({
          command: `
          select s.calls, round(s.mean_exec_time::numeric, 3) as mean_ms, round(s.total_exec_time::numeric) as total_ms,
                 case when s.toplevel then 'top' else 'nested' end as level,
                 left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110) as query
          from extensions.pg_stat_statements s
          join pg_database d on d.oid = s.dbid and d.datname = current_database()
          where s.userid = 'postgres'::regrole and s.query !~* '^(vacuum|checkpoint|select extensions.pg_stat|select pg_stat)'
          order by s.total_exec_time desc limit 18`,
        }),
      ));
      console.log(dim("  functions by self time (track_functions = all):"));
      console.log(indent(
        await this.sql({
          command: `
          select schemaname || '.' || funcname as function, calls, round(total_time::numeric) as total_ms,
                 round(self_time::numeric) as self_ms, round((self_time / nullif(calls, 0))::numeric, 4) as self_ms_per_call
          from pg_stat_user_functions order by self_time desc limit 14`,
        }),
      ));
    }
    await this.sql({ user: "supabase_admin", command: "alter system reset pg_stat_statements.track" });
    await this.sql({ user: "supabase_admin", command: "alter system reset track_functions" });
    await this.sql({ user: "supabase_admin", command: "select pg_reload_conf()" });
  }
}

function combine(runs: RunStats[]): Measured {
  const seconds = runs.reduce((s, r) => s + r.seconds, 0);
  const tps = runs.reduce((s, r) => s + r.tps * r.seconds, 0) / seconds;
  const all = new Float64Array(runs.reduce((n, r) => n + r.latencies.length, 0));
  let at = 0;
  for (const r of runs) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  all.sort();
  const pct = (p: number) => (all.length ? all[Math.min(all.length - 1, Math.ceil(p * all.length) - 1)] : NaN);
  const transactions = runs.reduce((n, r) => n + r.transactions, 0);
  const statements = runs[0].statements.map((s, i) => ({
    command: s.command,
    ms: runs.reduce((sum, r) => sum + (r.statements[i]?.ms ?? 0) * r.transactions, 0) / transactions,
  }));
  return {
    tps,
    transactions,
    walPerTx: runs.reduce((n, r) => n + r.walBytes, 0) / transactions,
    fpiPerTx: runs.reduce((n, r) => n + r.walFpi, 0) / transactions,
    p50: pct(0.5),
    p95: pct(0.95),
    mean: all.length ? all.reduce((s, v) => s + v, 0) / all.length : NaN,
    statements,
  };
}

function ratioOf(pair: Pair, baseline: Measured, candidate: Measured): number {
  return pair.kind === "throughput" ? candidate.tps / baseline.tps : baseline.tps / candidate.tps;
}

function verdict(pair: Pair, ratio: number): { met: boolean | null; text: string } {
  if (pair.target === null) return { met: null, text: "info" };
  const met = pair.kind === "throughput" ? ratio >= pair.target : ratio <= pair.target;
  return { met, text: `${pair.kind === "throughput" ? "≥" : "≤"} ${pair.target.toFixed(2)}` };
}

function line(pair: Pair, b: Measured, c: Measured): string {
  const r = ratioOf(pair, b, c);
  return `${b.tps.toFixed(0)} vs ${c.tps.toFixed(0)} tps, p95 ${b.p95.toFixed(2)} vs ${c.p95.toFixed(2)} ms, ratio ${
    r.toFixed(2)
  }`;
}

function printTable(
  results: Array<{ pair: Pair; baseline: Measured; candidate: Measured }>,
  info: { clients: number; duration: number; apply: string | null },
) {
  if (!results.length) return;
  console.log(
    `\n${bold("Credit engine benchmarks")} ${
      dim(
        `(docs/performance.md#targets; ${info.clients} clients, ${THREADS} threads, -M prepared, ${info.duration} s per side in ABBA rounds, fsync on${
          info.apply ? `, with ${info.apply}` : ""
        })`,
      )
    }`,
  );
  const header = ["pair", "side", "tps", "p50 ms", "p95 ms", "WAL/tx", "ratio", "target", ""];
  const rows: string[][] = [];
  for (const { pair, baseline, candidate } of results) {
    const ratio = ratioOf(pair, baseline, candidate);
    const v = verdict(pair, ratio);
    const wal = (m: Measured) => `${(m.walPerTx / 1024).toFixed(1)} kB`;
    const mark = v.met === null ? dim("–") : v.met ? green("met") : red(`MISSED by ${missBy(pair, ratio)}`);
    rows.push([
      pair.title,
      pair.baseline.label,
      baseline.tps.toFixed(0),
      baseline.p50.toFixed(2),
      baseline.p95.toFixed(2),
      wal(baseline),
      "",
      "",
      "",
    ]);
    rows.push([
      "",
      pair.candidate.label,
      candidate.tps.toFixed(0),
      candidate.p50.toFixed(2),
      candidate.p95.toFixed(2),
      wal(candidate),
      ratio.toFixed(2),
      v.text,
      mark,
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i]).length)));
  const fmt = (r: string[]) =>
    r.map((c, i) => (i >= 2 && i <= 6 ? c.padStart(widths[i]) : c + " ".repeat(widths[i] - visible(c).length))).join(
      "  ",
    ).trimEnd();
  console.log(fmt(header));
  console.log(dim(widths.map((w) => "─".repeat(w)).join("  ")));
  results.forEach((_, i) => {
    console.log(fmt(rows[2 * i]));
    console.log(fmt(rows[2 * i + 1]));
  });
  console.log(dim(
    "ratio: candidate tps / baseline tps (pairs 1–3); for pair 4, RLS cost / owner cost = owner tps / RLS tps (mean latency ratio).",
  ));
  const ledger = results.find((r) => r.pair.key === "ledger");
  if (ledger) {
    const q = (m: Measured) =>
      m.statements.find((s) => /^select \* from public\.credit_ledger/i.test(s.command))?.ms ?? NaN;
    const b = q(ledger.baseline), c = q(ledger.candidate);
    console.log(
      dim(
        `pair 4, the page query alone (pgbench -r): owner ${b.toFixed(3)} ms, RLS ${c.toFixed(3)} ms, ratio ${
          (c / b).toFixed(2)
        }; p95 ratio ${(ledger.candidate.p95 / ledger.baseline.p95).toFixed(2)}.`,
      ),
    );
  }
  const missed = results.filter((r) => verdict(r.pair, ratioOf(r.pair, r.baseline, r.candidate)).met === false);
  if (missed.length) console.log(yellow(`${missed.length} target(s) missed: see bench/README.md for why.`));
}

/** docs/performance.md#targets: stripe-webhook (signature + full processing) >= 0.35 x verify + insert the raw event. */
function printWebhook(w: WebhookBenchResult): void {
  const target = 0.35;
  const met = w.ratio >= target;
  console.log(
    `\n${bold("Webhook benchmark")} ${
      dim("(docs/performance.md#targets; signed invoice.paid deliveries: payment, plan credits, audit)")
    }`,
  );
  console.log(
    `  baseline  verify signature + insert raw event  ${w.baseline.perSecond.toFixed(0).padStart(6)} events/s`,
  );
  console.log(`  full      stripe-webhook handler               ${w.full.perSecond.toFixed(0).padStart(6)} events/s`);
  console.log(
    dim(
      `  floor     verify + the same rows, no rule          ${
        w.floor.perSecond.toFixed(0).padStart(6)
      } events/s  (info: ${(w.floor.perSecond / w.baseline.perSecond).toFixed(2)} of the baseline)`,
    ),
  );
  console.log(
    `  ratio ${w.ratio.toFixed(2)}  target ≥ ${target.toFixed(2)}  ${
      met ? green("met") : red(`MISSED by ${(target - w.ratio).toFixed(2)}`)
    }`,
  );
}

interface AuditScaling {
  one: Measured;
  many: Measured;
  ratio: number;
  sealed: number;
}

/**
 * Pair 6: audited staff adjustments scale with clients. 1 client, then 32 clients each on
 * its own account (bench/audit_adjust.sql), in ABBA rounds; throughout, a sealer links the
 * new entries once a second as pg_cron would. Afterwards every entry is sealed and the
 * chain must verify: the figure counts only work that kept the chain whole.
 */
async function auditScaling(cluster: Cluster, logs: string, duration: number): Promise<AuditScaling> {
  const file = "audit_adjust.sql";
  const sides = { one: new Bench(cluster, 1, logs, { count: 0 }), many: new Bench(cluster, 32, logs, { count: 0 }) };
  const sealer = sides.one;
  // One statement (a DO block that commits after each run), so it is not one transaction.
  const sealFor = (seconds: number) =>
    sealer.sql({
      command: `
        do $$ begin
          while clock_timestamp() < statement_timestamp() + interval '${seconds + 1} seconds' loop
            perform private.seal_audit_log();
            commit;
            perform pg_sleep(1);
          end loop;
        end $$`,
    });
  const head = async () =>
    Number((await sealer.sql({ tuples: true, command: "select position from private.audit_head()" })).trim());
  const half = Math.max(2, Math.round(duration / 2));
  await sides.one.pgbench(file, 5, false);
  await sides.many.pgbench(file, 5, false);
  const runs = { one: [] as RunStats[], many: [] as RunStats[] };
  const before = await head();
  for (const side of ["one", "many", "many", "one"] as const) {
    await sides[side].settle();
    const sealing = sealFor(half);
    runs[side].push(await sides[side].pgbench(file, half, true));
    await sealing;
  }
  const sealed = (await head()) - before;
  const left = await sealer.sql({
    tuples: true,
    command: `select private.seal_audit_log(1000000);
              select count(*) from public.audit_log where sealed_at is null;
              select count(*) from private.verify_audit_chain();`,
  });
  const [, unsealed, breaks] = left.trim().split("\n").map(Number);
  if (unsealed || breaks) {
    throw new UserError(`audit chain after the run: ${unsealed} entries unsealed, ${breaks} breaks reported`);
  }
  const one = combine(runs.one), many = combine(runs.many);
  return { one, many, ratio: many.tps / one.tps, sealed };
}

/** Target: 32 clients on 32 accounts >= 3 x the throughput of 1 client (writers take no audit lock). */
function printAuditScaling(a: AuditScaling): void {
  const target = 3;
  const met = a.ratio >= target;
  console.log(
    `\n${bold("Audit benchmark")} ${
      dim("(audited staff adjustments: ledger, wallet, one audit entry; a sealer every second)")
    }`,
  );
  console.log(`  1 client                 ${a.one.tps.toFixed(0).padStart(6)} tps  p95 ${a.one.p95.toFixed(2)} ms`);
  console.log(`  32 clients, 32 accounts  ${a.many.tps.toFixed(0).padStart(6)} tps  p95 ${a.many.p95.toFixed(2)} ms`);
  console.log(
    `  ratio ${a.ratio.toFixed(2)}  target ≥ ${target.toFixed(2)}  ${
      met ? green("met") : red(`MISSED by ${(target - a.ratio).toFixed(2)}`)
    }`,
  );
  console.log(
    dim(`  ${a.sealed.toLocaleString("en")} entries sealed during the rounds; afterwards all sealed, no break`),
  );
}

function missBy(pair: Pair, ratio: number): string {
  const target = pair.target!;
  return `${Math.abs(ratio - target).toFixed(2)}`;
}

function visible(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, "");
}

function indent(text: string): string {
  return text.trimEnd().split("\n").map((l) => "    " + l).join("\n");
}

/** Seconds left out at the start of a measured run. */
function warmupSkip(seconds: number): number {
  return seconds >= 8 ? 2 : seconds / 4;
}

function positiveInt(value: string | boolean, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer`, usage);
  return n;
}

await main(benchMain);
