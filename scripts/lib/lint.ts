// The lint gate: `supabase db lint` over every schema the CLI picks, failing on any
// error-level finding except in functions that belong to an extension.
//
// On Supabase the `extensions` schema belongs to postgres, so the CLI lints it, pgTAP's
// own functions included, and those fail at error level (pgTAP reads temporary tables
// plpgsql_check cannot see). They are not ours to fix. Functions of our own stay linted
// in every schema, `extensions` included. Each run plants a broken function in `public`
// and one in `private` and requires the gate to catch both, so the filter is proved on
// every run not to hide findings in our schemas.
import { join } from "node:path";
import { type Cluster, pgBin } from "./postgres.ts";
import { must } from "./proc.ts";
import { supabase } from "./supabase.ts";

export interface LintIssue {
  level: string;
  message: string;
  sqlState?: string;
}

export interface LintResult {
  function: string;
  issues: LintIssue[];
}

export interface LintVerdict {
  ok: boolean;
  /** Error-level findings that fail the gate (the canaries left out). */
  blocking: LintResult[];
  /** Canaries the gate did not catch: the filter would hide a finding there. */
  missedCanaries: string[];
  /** Functions excused because they belong to an extension. */
  excused: string[];
  output: string;
}

/** Broken on purpose: each reads a table that does not exist. */
export const canaries = ["public.lint_gate_canary", "private.lint_gate_canary"];

/** The JSON array `supabase db lint` prints after its banner lines; none when clean. */
export function parseLintOutput(stdout: string): LintResult[] {
  const start = stdout.search(/^\[/m);
  if (start < 0) return [];
  return JSON.parse(stdout.slice(start)) as LintResult[];
}

/** Findings at error level, except in functions that only an extension defines. */
export function blockingFindings(results: LintResult[], extensionFunctions: ReadonlySet<string>): LintResult[] {
  return results
    .filter((r) => !extensionFunctions.has(r.function))
    .map((r) => ({ function: r.function, issues: r.issues.filter((i) => i.level === "error") }))
    .filter((r) => r.issues.length > 0);
}

/**
 * Verdict on one lint run: fails on a blocking finding in a function of ours, and when
 * a canary was not reported as blocking.
 */
export function lintVerdict(results: LintResult[], extensionFunctions: ReadonlySet<string>, output = ""): LintVerdict {
  const all = blockingFindings(results, extensionFunctions);
  const caught = new Set(all.map((r) => r.function));
  const missedCanaries = canaries.filter((c) => !caught.has(c));
  const blocking = all.filter((r) => !canaries.includes(r.function));
  const excused = [...new Set(results.map((r) => r.function).filter((f) => extensionFunctions.has(f)))];
  return { ok: blocking.length === 0 && missedCanaries.length === 0, blocking, missedCanaries, excused, output };
}

// schema.name of functions that belong to an extension, unless a function of the same
// name outside any extension exists (the CLI reports by name, not by signature).
const extensionFunctionsSql = `
  with f as (
    select n.nspname || '.' || p.proname as name,
           exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e') as of_extension
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  )
  select coalesce(json_agg(distinct name), '[]') from f
  where of_extension and name not in (select name from f where not of_extension)`;

function canarySql(name: string): string {
  return `create function ${name}() returns void language plpgsql set search_path = '' as $$
    begin perform 1 from public.lint_gate_missing_table; end $$;
    comment on function ${name}() is 'Broken on purpose while the lint gate runs; dropped right after.';`;
}

/** Runs `supabase db lint` on the test database with the canaries planted, then removes them. */
export async function lintGate(cluster: Cluster, url: string): Promise<LintVerdict> {
  const psqlArgs = ["-XAt", "-v", "ON_ERROR_STOP=1", "-d", cluster.url("postgres"), "-c", extensionFunctionsSql];
  const query = await must("list extension functions", join(pgBin, "psql"), psqlArgs);
  const extensionFunctions = new Set(JSON.parse(query.stdout.trim()) as string[]);
  await cluster.psql({ command: canaries.map(canarySql).join("\n") }, "postgres", "postgres", "plant lint canaries");
  try {
    const result = await supabase(["db", "lint", `--remote=${url}`, "--level", "error", "--fail-on", "none"]);
    const output = result.stdout + "\n" + result.stderr;
    if (result.code !== 0) return { ok: false, blocking: [], missedCanaries: [], excused: [], output };
    return lintVerdict(parseLintOutput(result.stdout), extensionFunctions, output);
  } finally {
    await cluster.psql(
      { command: canaries.map((c) => `drop function if exists ${c}();`).join("\n") },
      "postgres",
      "postgres",
      "drop lint canaries",
    );
  }
}
