// npm test: from nothing to a verdict.
//
// A throw-away cluster of its own (never the one `npm start` runs), the platform
// bootstrap and its fidelity tests, the migrations and seed through the real Supabase
// CLI, pgTAP, Deno tests, `supabase db lint`, `supabase db advisors`, the drift checks of
// supabase/schema/ and the types, and the released-migrations check. Ends with one line:
// "N passed, N failed".
import { join, relative } from "node:path";
import { bold, dim, formatMs, green, main, parseArgs, red, step, UserError } from "./lib/log.ts";
import { Cluster, ensurePackages, freePort, portInUse, PRELOADED_LIBRARIES } from "./lib/postgres.ts";
import { ensureCronPackage, preloadCron } from "./lib/cron.ts";
import {
  bin,
  clusterHome,
  databaseTestsDir,
  engineTestsDir,
  functionsDir,
  local,
  platformDir,
  root,
  typesFile,
} from "./lib/paths.ts";
import { run } from "./lib/proc.ts";
import { generateTypes, pushMigrations, supabase } from "./lib/supabase.ts";
import { parseDenoSummary, parseProveOutput } from "./lib/tap.ts";
import { UPGRADE_FROM, upgradeTest } from "./lib/upgrade.ts";
import { DEFAULT_JWT_SECRET, testClusterDir } from "./lib/config.ts";
import { lintGate } from "./lib/lint.ts";
import { databaseSnapshot, driftReport, readSnapshot, schemaDrift } from "./lib/schema.ts";
import { checkReleased, migrationHashes, readReleased } from "./lib/released.ts";

const usage = `usage: npm test [-- [--keep] [--only=steps] [files...]]

  --keep         leave the test database running afterwards (its URL is printed)
  --only=LIST    run only these steps (comma list): released, schema, pgtap, deno, upgrade, lint, advisors,
                 types (drift and deno check), fmt (deno fmt --check)
  files...       run only these pgTAP (.sql) or Deno (.ts) test files`;

type Outcome = { name: string; passed: number; failed: number; skipped: number; ms: number; note?: string };

await main(async () => {
  const { flags, positional } = parseArgs(Deno.args, { keep: "boolean", only: "string" }, usage);
  const only = typeof flags.only === "string" ? new Set(flags.only.split(",")) : null;
  const known = ["released", "schema", "pgtap", "deno", "upgrade", "lint", "advisors", "types", "fmt"];
  for (const s of only ?? []) if (!known.includes(s)) throw new UserError(`unknown step "${s}"`, usage);
  const wants = (s: string) => !only || only.has(s);
  const sqlFiles = positional.filter((f) => f.endsWith(".sql"));
  const tsFiles = positional.filter((f) => f.endsWith(".ts"));
  const outcomes: Outcome[] = [];
  const started = performance.now();

  if (positional.length === 0 && wants("released")) outcomes.push(await releasedCheck());

  await step(
    "Checking Debian packages (PostgreSQL 15, pgTAP, plpgsql_check, pg_prove, pg_cron)",
    async () => {
      await ensurePackages(console.log);
      await ensureCronPackage(console.log);
    },
  );

  await removeAbandonedClusters();
  const cluster = await step("Creating a throw-away cluster", () => throwAwayCluster());
  const url = cluster.url();
  try {
    await step(`Creating a throw-away database on port ${cluster.port}`, async () => {
      await cluster.freshDatabase();
      await cluster.psql({ command: "create extension if not exists pgtap with schema extensions" }, "supabase_admin");
    });

    outcomes.push(await pgTap("platform fidelity", cluster.port, await sqlIn(platformDir + "/tests")));

    await step("Applying migrations and seed with `supabase db push`", async () => {
      const applied = await pushMigrations(url);
      console.log(dim(`    ${applied.length} migrations applied`));
    });
    // Read right after the migrations, before any test adds to the database.
    if (positional.length === 0 && wants("schema")) outcomes.push(await schemaSnapshotDrift(url));

    if (wants("pgtap")) {
      const files = sqlFiles.length ? withHelpers(sqlFiles) : await sqlIn(databaseTestsDir);
      outcomes.push(await pgTap("pgTAP", cluster.port, files));
    }
    if (wants("deno") && (sqlFiles.length === 0 || tsFiles.length > 0)) outcomes.push(await denoTests(url, tsFiles));
    if (positional.length === 0) {
      if (wants("upgrade")) outcomes.push(await upgrade(cluster));
      if (wants("lint")) outcomes.push(await lint(cluster, url));
      if (wants("advisors")) {
        outcomes.push(
          await check("supabase db advisors (security)", [
            "db",
            "advisors",
            `--remote=${url}`,
            "--type",
            "security",
            "--level",
            "warn",
            "--fail-on",
            "warn",
          ]),
        );
      }
      if (wants("types")) {
        outcomes.push(await typesDrift(url));
        outcomes.push(await typeCheck());
      }
      if (wants("fmt")) outcomes.push(await formatCheck());
    }
  } finally {
    if (flags.keep) console.log(`\n${bold("test database kept:")} ${url}  ${dim("(the next npm test replaces it)")}`);
    else await cluster.destroy().catch(() => {});
  }

  console.log(`\n${bold("Summary")} ${dim(`(${formatMs(Math.round(performance.now() - started))})`)}`);
  for (const o of outcomes) {
    const mark = o.failed ? red("✗") : green("✓");
    const skipped = o.skipped ? `, ${o.skipped} skipped` : "";
    console.log(
      `  ${mark} ${o.name.padEnd(34)} ${o.passed} passed, ${o.failed} failed${skipped} ${dim(formatMs(o.ms))}${
        o.note ? `  ${o.note}` : ""
      }`,
    );
  }
  const total = outcomes.reduce((t, o) => ({ p: t.p + o.passed, f: t.f + o.failed, s: t.s + o.skipped }), {
    p: 0,
    f: 0,
    s: 0,
  });
  const failedSteps = outcomes.filter((o) => o.failed).map((o) => o.name);
  if (failedSteps.length) console.log(`\n${red("failed:")} ${failedSteps.join(", ")}`);
  console.log(`${total.p} passed, ${total.f} failed${total.s ? `, ${total.s} skipped` : ""}`);
  return total.f > 0 ? 1 : 0;
});

/** A cluster of this run's own on a free port; another run may take the port before ours starts: then the next one. */
async function throwAwayCluster(): Promise<Cluster> {
  for (let attempt = 1;; attempt++) {
    const cluster = new Cluster({ dir: testClusterDir(), port: freePort(54330), ephemeral: true });
    try {
      await cluster.destroy();
      await cluster.init();
      // Loaded as `npm start` loads it, so the tests can schedule the sweepers with the real pg_cron.
      // The extension itself is only ever created inside a test's rolled-back transaction: no job
      // of a test runs in the background.
      await preloadCron(cluster, PRELOADED_LIBRARIES);
      await cluster.start();
      return cluster;
    } catch (error) {
      await cluster.destroy().catch(() => {});
      if (attempt === 5 || !portInUse(cluster.port)) throw error;
    }
  }
}

/** Clusters of earlier runs that were killed before cleaning up (their process is gone). */
async function removeAbandonedClusters(): Promise<void> {
  for (const home of new Set([clusterHome, local])) {
    await Deno.mkdir(home, { recursive: true });
    for await (const entry of Deno.readDir(home)) {
      const pid = entry.name.match(/^test-db-(\d+)$/)?.[1];
      if (!pid || Number(pid) === Deno.pid) continue;
      try {
        await Deno.stat(`/proc/${pid}`);
      } catch {
        await new Cluster({ dir: join(home, entry.name), port: 0 }).destroy().catch(() => {});
      }
    }
  }
}

async function sqlIn(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".test.sql")) files.push(join(dir, entry.name));
  }
  return files.sort();
}

/** The helpers file installs what every other file uses, so it always runs first. */
function withHelpers(files: string[]): string[] {
  const helpers = join(databaseTestsDir, "00_helpers.test.sql");
  const absolute = files.map((f) => join(root, relative(root, f)));
  return absolute.includes(helpers) ? absolute : [helpers, ...absolute];
}

async function pgTap(name: string, port: number, files: string[]): Promise<Outcome> {
  return await timed(name, async () => {
    console.log(`${dim("•")} ${name}: pg_prove over ${files.length} files…`);
    const result = await run("pg_prove", [
      "-v",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "postgres",
      "-d",
      "postgres",
      ...files.map((f) => relative(root, f)),
    ], {
      cwd: root,
      env: { PGOPTIONS: "--client-min-messages=warning" },
    });
    const parsed = parseProveOutput(result.stdout);
    let passed = 0, failed = 0, skipped = 0;
    for (const f of parsed) {
      passed += f.passed;
      failed += f.failed;
      skipped += f.skipped;
      const mark = f.failed ? red("✗") : green("✓");
      console.log(`  ${mark} ${f.file} ${dim(`${f.passed}/${f.planned ?? "?"}`)}`);
      for (const line of f.failures) console.log(`      ${line}`);
    }
    const errors = result.stderr.split("\n").filter((l) => /ERROR|FATAL/.test(l));
    for (const line of errors.slice(0, 20)) console.log(`      ${red(line)}`);
    if (parsed.length < files.length) failed += files.length - parsed.length;
    if (result.code !== 0 && failed === 0) failed = 1;
    return { passed, failed, skipped };
  });
}

async function denoTests(url: string, files: string[]): Promise<Outcome> {
  return await timed("Deno tests", async () => {
    console.log(`${dim("•")} Deno tests…`);
    const env = {
      SUPABASE_DB_URL: url,
      SUPABASE_URL: "http://127.0.0.1:54321",
      JWT_SECRET: DEFAULT_JWT_SECRET,
      SITE_URL: "http://localhost:3000",
      ALLOWED_REDIRECT_URLS: "http://localhost:3000",
      ALLOWED_ORIGINS: "http://localhost:3000",
      NO_COLOR: "1",
    };
    // One run over both folders, so its summary counts every Deno test.
    const targets = files.length ? files : [relative(root, functionsDir), relative(root, engineTestsDir)];
    const result = await run(bin("deno"), ["test", "-A", "--permit-no-files", "--no-prompt", ...targets], {
      cwd: root,
      env,
    });
    const output = result.stdout + "\n" + result.stderr;
    const summary = parseDenoSummary(output);
    const lines = output.split("\n").filter((l) => l.trim());
    // A property test's failure says what failed after the stack: its seed, counterexample and error.
    const failing = lines.filter((l) =>
      /\.\.\. FAILED|^error:|^\s+at |AssertionError|seed:|Counterexample:|Got error:|Shrunk/.test(l)
    ).slice(0, 60);
    for (const l of failing) console.log(`      ${l}`);
    if (!summary) {
      for (const l of lines.slice(-30)) console.log(`      ${l}`);
      return { passed: 0, failed: 1, skipped: 0, note: "deno test did not finish" };
    }
    console.log(`  ${summary.failed ? red("✗") : green("✓")} ${summary.passed} passed, ${summary.failed} failed`);
    return { ...summary, failed: summary.failed || (result.code !== 0 ? 1 : 0) };
  });
}

/** The previous release's database, filled, upgraded with the new migrations, and checked. */
async function upgrade(cluster: Cluster): Promise<Outcome> {
  return await timed("upgrade from the previous release", async () => {
    console.log(`${dim("•")} upgrade: migrations before ${UPGRADE_FROM}, wallets filled, then the upgrade…`);
    const result = await upgradeTest(cluster);
    for (const l of result.lines) console.log(`      ${l}`);
    console.log(`  ${result.failed ? red("✗") : green("✓")} ${result.passed} passed, ${result.failed} failed`);
    return { passed: result.passed, failed: result.failed, skipped: result.skipped };
  });
}

/** A CLI check counts as one test: it passes or it fails. */
async function check(name: string, args: string[]): Promise<Outcome> {
  return await timed(name, async () => {
    console.log(`${dim("•")} ${name}…`);
    const result = await supabase(args);
    const text = (result.stdout + "\n" + result.stderr).split("\n")
      .filter((l) => l.trim() && !/^Target:|without TLS|^│|^▲/.test(l));
    if (result.code !== 0) { for (const l of text.slice(-40)) console.log(`      ${l}`); }
    console.log(`  ${result.code ? red("✗") : green("✓")} ${name}`);
    return { passed: result.code ? 0 : 1, failed: result.code ? 1 : 0, skipped: 0 };
  });
}

/** `supabase db lint` at error level; findings in extensions' own functions are not ours (see lib/lint.ts). */
async function lint(cluster: Cluster, url: string): Promise<Outcome> {
  const name = "supabase db lint";
  return await timed(name, async () => {
    console.log(`${dim("•")} ${name} (with a broken function planted in public and in private)…`);
    const verdict = await lintGate(cluster, url);
    if (verdict.excused.length) {
      console.log(
        dim(
          `    not ours, not counted: ${verdict.excused.length} extension functions (${
            verdict.excused.slice(0, 3).join(", ")
          }, …)`,
        ),
      );
    }
    for (const r of verdict.blocking) for (const i of r.issues) console.log(`      ${r.function}: ${i.message}`);
    for (const c of verdict.missedCanaries) {
      console.log(`      ${red(`the gate missed the planted error in ${c}: it would hide findings there`)}`);
    }
    if (!verdict.ok && !verdict.blocking.length && !verdict.missedCanaries.length) {
      for (const l of verdict.output.split("\n").filter((l) => l.trim()).slice(-40)) console.log(`      ${l}`);
    }
    console.log(`  ${verdict.ok ? green("✓") : red("✗")} ${name}`);
    return { passed: verdict.ok ? 1 : 0, failed: verdict.ok ? 0 : 1, skipped: 0 };
  });
}

/** Released migrations are frozen: each listed in supabase/migrations/released.txt must be there unchanged. */
async function releasedCheck(): Promise<Outcome> {
  return await timed("released migrations unchanged", async () => {
    console.log(`${dim("•")} released migrations: comparing supabase/migrations with released.txt…`);
    const verdict = checkReleased(await readReleased(), await migrationHashes());
    for (const line of verdict.problems) console.log(`      ${red(line)}`);
    const pending = verdict.unreleased.length
      ? dim(`(not released yet: ${verdict.unreleased.join(", ")}; \`npm run release\` freezes them)`)
      : "";
    if (verdict.problems.length) {
      console.log(`  ${red("✗")} a released migration changed or disappeared: add a new migration instead ${pending}`);
      return { passed: 0, failed: 1, skipped: 0 };
    }
    console.log(`  ${green("✓")} every released migration is unchanged ${pending}`);
    return { passed: 1, failed: 0, skipped: 0 };
  });
}

/** supabase/schema/ must be what the migrations produce (`npm run schema` writes it). */
async function schemaSnapshotDrift(url: string): Promise<Outcome> {
  return await timed("schema drift", async () => {
    console.log(`${dim("•")} schema drift: comparing supabase/schema/ with the database the migrations built…`);
    const report = driftReport(schemaDrift(await readSnapshot(), await databaseSnapshot(url)));
    if (report.length === 0) {
      console.log(`  ${green("✓")} supabase/schema/ matches the migrations`);
      return { passed: 1, failed: 0, skipped: 0 };
    }
    console.log(`  ${red("✗")} ${report[0]}`);
    for (const line of report.slice(1)) console.log(`      ${line}`);
    return { passed: 0, failed: 1, skipped: 0 };
  });
}

async function typesDrift(url: string): Promise<Outcome> {
  return await timed("types drift", async () => {
    console.log(`${dim("•")} types drift: regenerating types/database.ts…`);
    const generated = await generateTypes(url);
    let committed = "";
    try {
      committed = await Deno.readTextFile(typesFile);
    } catch {
      // missing file: drift
    }
    if (generated === committed) {
      console.log(`  ${green("✓")} types/database.ts matches the schema`);
      return { passed: 1, failed: 0, skipped: 0 };
    }
    console.log(`  ${red("✗")} types/database.ts is stale: run \`npm run types\` and commit it`);
    return { passed: 0, failed: 1, skipped: 0 };
  });
}

/** Typed supabase-js calls must compile against the committed types; scripts must compile; all code passes deno lint. */
async function typeCheck(): Promise<Outcome> {
  return await timed("deno check + lint", async () => {
    console.log(`${dim("•")} deno check: typed supabase-js calls and scripts…`);
    const targets = ["types/index.ts", "types/client_check.ts", ...(await tsIn(join(root, "scripts")))];
    const checked = await run(bin("deno"), ["check", "--quiet", ...targets], { cwd: root, env: { NO_COLOR: "1" } });
    const linted = checked.code === 0
      ? await run(bin("deno"), ["lint", "--quiet"], { cwd: root, env: { NO_COLOR: "1" } })
      : checked;
    for (const result of [checked, linted]) {
      if (result.code !== 0) {
        for (const l of (result.stderr + result.stdout).split("\n").filter((l) => l.trim()).slice(0, 40)) {
          console.log(`      ${l}`);
        }
      }
    }
    const failed = checked.code !== 0 || linted.code !== 0;
    console.log(`  ${failed ? red("✗") : green("✓")} deno check and deno lint`);
    return { passed: failed ? 0 : 1, failed: failed ? 1 : 0, skipped: 0 };
  });
}

/** The tree is formatted as `deno fmt` writes it (TypeScript, JSON, Markdown; deno.json excludes generated types). */
async function formatCheck(): Promise<Outcome> {
  return await timed("deno fmt --check", async () => {
    console.log(`${dim("•")} deno fmt --check: the tree as deno fmt writes it…`);
    const result = await run(bin("deno"), ["fmt", "--check"], { cwd: root, env: { NO_COLOR: "1" } });
    const unformatted = (result.stderr + result.stdout).split("\n").filter((l) => l.startsWith("from ")).map((l) =>
      relative(root, l.slice(5).replace(/:$/, ""))
    );
    if (result.code !== 0) {
      for (const file of unformatted.slice(0, 20)) console.log(`      not formatted: ${file}`);
      console.log(
        `  ${red("✗")} ${unformatted.length || "some"} file(s) not formatted: run \`npx deno fmt\` and commit`,
      );
      return { passed: 0, failed: 1, skipped: 0 };
    }
    console.log(`  ${green("✓")} every file is formatted`);
    return { passed: 1, failed: 0, skipped: 0 };
  });
}

async function tsIn(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".ts")) files.push(relative(root, join(dir, entry.name)));
  }
  return files.sort();
}

async function timed(name: string, work: () => Promise<Omit<Outcome, "name" | "ms">>): Promise<Outcome> {
  const t = performance.now();
  try {
    return { name, ...(await work()), ms: Math.round(performance.now() - t) };
  } catch (error) {
    console.log(`  ${red("✗")} ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return { name, passed: 0, failed: 1, skipped: 0, ms: Math.round(performance.now() - t) };
  }
}
