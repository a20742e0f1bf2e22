// Counting pg_prove's verbose TAP output: every assertion, and every planned one that never ran.

export interface TapFile {
  file: string;
  planned: number | null;
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
}

export function parseProveOutput(output: string): TapFile[] {
  const files: TapFile[] = [];
  let current: TapFile | null = null;
  for (const line of output.split("\n")) {
    const header = line.match(/^(\S+\.sql) \.{2,}(?: |$)/);
    if (header) {
      current = { file: header[1], planned: null, passed: 0, failed: 0, skipped: 0, failures: [] };
      files.push(current);
      continue;
    }
    if (!current) continue;
    const plan = line.match(/^1\.\.(\d+)/);
    if (plan) current.planned = Number(plan[1]);
    else if (/^not ok \d+/.test(line)) {
      if (/# TODO/i.test(line)) current.skipped++;
      else {
        current.failed++;
        current.failures.push(line);
      }
    } else if (/^ok \d+/.test(line)) {
      if (/# (SKIP|TODO)/i.test(line)) current.skipped++;
      else current.passed++;
    } else if (/^# /.test(line) && current.failures.length > 0 && current.failures.length < 40) {
      current.failures.push(line);
    } else if (/^psql:.*ERROR:/.test(line)) {
      current.failures.push(line);
    }
  }
  // A file that died before its plan ran out: every missing assertion is a failure.
  for (const f of files) {
    const ran = f.passed + f.failed + f.skipped;
    if (f.planned === null) {
      f.failed = Math.max(f.failed, 1);
      f.failures.push(`${f.file}: no plan (the file did not run)`);
    } else if (ran < f.planned) {
      f.failed += f.planned - ran;
      f.failures.push(`${f.file}: planned ${f.planned} assertions but ran ${ran}`);
    }
  }
  return files;
}

/** deno test's closing line: "ok | 12 passed (3 steps) | 0 failed | 1 ignored (2s)". */
export function parseDenoSummary(output: string): { passed: number; failed: number; skipped: number } | null {
  // deno-lint-ignore no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  const line = plain.split("\n").reverse().find((l) => /^(ok|FAILED) \| \d+ passed/.test(l));
  if (!line) return null;
  const number = (re: RegExp) => Number(line.match(re)?.[1] ?? 0);
  return { passed: number(/(\d+) passed/), failed: number(/(\d+) failed/), skipped: number(/(\d+) ignored/) };
}
