/**
 * Assertions for Deno tests without jsr:@std/assert (JSR is unreachable):
 * thin typed wrappers over node:assert, plus Result helpers.
 */
import nodeAssert from "node:assert/strict";
import type { Result } from "../../_shared/errors.ts";

export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message);
}

export function assertEquals<T>(actual: unknown, expected: T, message?: string): asserts actual is T {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(actual, pattern, message);
}

/** The value of a successful Result; fails the test with the error otherwise. */
export function okValue<T, E>(result: Result<T, E>): T {
  if (!result.ok) nodeAssert.fail(`expected ok, got error ${JSON.stringify(result.error)}`);
  return result.value;
}

/** The error of a failed Result; fails the test if it succeeded. */
export function errorOf<T, E>(result: Result<T, E>): E {
  if (result.ok) nodeAssert.fail(`expected an error, got ok ${JSON.stringify(result.value)}`);
  return result.error;
}
