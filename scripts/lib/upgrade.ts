// The upgrade test: a database built with the migrations of the previous release, filled
// with wallets as its users have them, then upgraded with `supabase db push` (only the
// new migrations apply), and checked.
//
// UPGRADE_FROM is the first migration of the upgrade under test: stage 1 pushes every
// migration older than it (and the seed), supabase/tests/upgrade/fill.sql fills the
// wallets and snapshots them, stage 2 pushes the rest, and
// supabase/tests/upgrade/check.test.sql (pgTAP) compares and checks the invariants.
import { join, relative } from "node:path";
import { Cluster, pgBin } from "./postgres.ts";
import { migrationsDir, root, supabaseDir } from "./paths.ts";
import { run } from "./proc.ts";
import { pushMigrations } from "./supabase.ts";
import { parseProveOutput } from "./tap.ts";

export const UPGRADE_FROM = "20261208000000";
const DATABASE = "upgrade";
const upgradeTestsDir = join(supabaseDir, "tests", "upgrade");

export interface UpgradeOutcome {
  passed: number;
  failed: number;
  skipped: number;
  lines: string[];
}

export async function upgradeTest(cluster: Cluster): Promise<UpgradeOutcome> {
  const lines: string[] = [];
  const previous = await Deno.makeTempDir({ prefix: "ledgerbase-upgrade-" });
  try {
    // Stage 1: the previous release (a project directory with the older migrations only).
    await Deno.mkdir(join(previous, "supabase", "migrations"), { recursive: true });
    await Deno.copyFile(join(supabaseDir, "config.toml"), join(previous, "supabase", "config.toml"));
    await Deno.mkdir(join(previous, "supabase", "seed"));
    for await (const entry of Deno.readDir(join(supabaseDir, "seed"))) {
      if (entry.isFile) {
        await Deno.copyFile(join(supabaseDir, "seed", entry.name), join(previous, "supabase", "seed", entry.name));
      }
    }
    let older = 0;
    for await (const entry of Deno.readDir(migrationsDir)) {
      if (entry.isFile && entry.name.endsWith(".sql") && entry.name < UPGRADE_FROM) {
        await Deno.copyFile(join(migrationsDir, entry.name), join(previous, "supabase", "migrations", entry.name));
        older++;
      }
    }
    await cluster.freshDatabase(DATABASE);
    const url = cluster.url("postgres", DATABASE);
    await pushMigrations(url, undefined, previous);
    lines.push(`${older} migrations of the previous release applied`);
    const fill = await run(join(pgBin, "psql"), [
      "-X",
      "-q",
      "-v",
      "ON_ERROR_STOP=1",
      "-o",
      "/dev/null",
      "-d",
      url,
      "-f",
      join(upgradeTestsDir, "fill.sql"),
    ]);
    if (fill.code !== 0) throw new Error(`supabase/tests/upgrade/fill.sql failed: ${fill.stderr.trim()}`);
    await cluster.psql(
      { command: "create extension if not exists pgtap with schema extensions" },
      "supabase_admin",
      DATABASE,
    );

    // Stage 2: the upgrade.
    const applied = await pushMigrations(url);
    lines.push(`upgrade applied: ${applied.join(", ") || "nothing"}`);
    const result = await run("pg_prove", [
      "-v",
      "-h",
      "127.0.0.1",
      "-p",
      String(cluster.port),
      "-U",
      "postgres",
      "-d",
      DATABASE,
      relative(root, join(upgradeTestsDir, "check.test.sql")),
    ], { cwd: root, env: { PGOPTIONS: "--client-min-messages=warning" } });
    const [file] = parseProveOutput(result.stdout);
    if (!file) {
      lines.push(...(result.stdout + result.stderr).trim().split("\n").slice(-20));
      return { passed: 0, failed: 1, skipped: 0, lines };
    }
    lines.push(...file.failures);
    const failed = file.failed || (result.code !== 0 ? 1 : 0);
    return { passed: file.passed, failed, skipped: file.skipped, lines };
  } finally {
    await Deno.remove(previous, { recursive: true }).catch(() => {});
    await cluster.psql({ command: `drop database if exists ${DATABASE} with (force)` }, "supabase_admin", "template1")
      .catch(() => {});
  }
}
