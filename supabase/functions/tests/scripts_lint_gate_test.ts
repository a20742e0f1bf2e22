/**
 * Story: `npm test` lints the database with `supabase db lint`. On Supabase's layout the
 * CLI also lints pgTAP's own functions in `extensions`, which fail; the gate excuses
 * functions that belong to an extension and nothing else. These pin the verdict; the
 * step itself also plants broken functions in `public` and `private` on every run.
 */
import { canaries, type LintResult, lintVerdict, parseLintOutput } from "../../../scripts/lib/lint.ts";
import { assert, assertEquals } from "./_support/assert.ts";

const error = (fn: string): LintResult => ({
  function: fn,
  issues: [{ level: "error", message: "relation does not exist" }],
});
const warning = (fn: string): LintResult => ({
  function: fn,
  issues: [{ level: "warning", message: "unused variable" }],
});
const pgtap = new Set(["extensions.plan", "extensions.add_result"]);
const planted = canaries.map(error);

Deno.test("pgTAP's own errors in extensions are excused, and with the canaries caught the gate passes", () => {
  const verdict = lintVerdict([error("extensions.plan"), error("extensions.add_result"), ...planted], pgtap);
  assert(verdict.ok);
  assertEquals(verdict.excused.sort(), ["extensions.add_result", "extensions.plan"]);
});

Deno.test("an error in a function of ours fails the gate, in public, private or extensions alike", () => {
  for (const ours of ["public.consume_credits", "private.lock_account", "extensions.platform_lend_policy_owner"]) {
    const verdict = lintVerdict([error("extensions.plan"), ...planted, error(ours)], pgtap);
    assert(!verdict.ok, `${ours} must fail the gate`);
    assertEquals(verdict.blocking.map((r) => r.function), [ours]);
  }
});

Deno.test("warnings do not fail the gate", () => {
  assert(lintVerdict([warning("private.constant_time_equals"), ...planted], pgtap).ok);
});

Deno.test("a filter that hid our schemas would miss the planted errors, and the gate fails", () => {
  const hidesEverything = new Set(["extensions.plan", ...canaries]);
  const verdict = lintVerdict([error("extensions.plan"), ...planted], hidesEverything);
  assert(!verdict.ok);
  assertEquals(verdict.missedCanaries, canaries);
});

Deno.test("the CLI's output is read from its JSON array; a clean run prints none", () => {
  const out =
    'Linting schema: public\n[\n  {"function": "public.f", "issues": [{"level": "error", "message": "m"}]}\n]\n';
  assertEquals(parseLintOutput(out), [{ function: "public.f", issues: [{ level: "error", message: "m" }] }]);
  assertEquals(parseLintOutput("Linting schema: public\n"), []);
});
