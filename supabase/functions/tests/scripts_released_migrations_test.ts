/**
 * Story: a released migration has run on every user's database, so it is frozen.
 * supabase/migrations/released.txt lists each with its sha256; `npm test` fails when one
 * changes or disappears, and `npm run release` freezes the new ones (scripts/lib/released.ts).
 * These prove the check passes on the repository as committed, fails on a one-byte edit and on
 * a removal (naming the file and saying to add a new migration), leaves unreleased migrations
 * free, and that releasing and rehashing write what the check then accepts.
 */
import { join } from "node:path";
import {
  checkReleased,
  formatReleased,
  migrationHashes,
  parseReleased,
  readReleased,
  rehash,
  release,
  sha256,
} from "../../../scripts/lib/released.ts";
import { migrationsDir } from "../../../scripts/lib/paths.ts";
import { assert, assertEquals, assertMatch } from "./_support/assert.ts";

const released = await readReleased();
// The released migrations as they are in the repository (migrations not released yet, which
// a change under review may add, play no part in these stories).
const present = new Map([...await migrationHashes()].filter(([file]) => released.some((r) => r.file === file)));
const credits = "20261122030200_credits.sql";

Deno.test("every released migration is in the repository as it was released", () => {
  assert(released.some((r) => r.file === credits), `${credits} is released`);
  assertEquals(checkReleased(released, present).problems, []);
});

Deno.test("one byte changed in a released migration fails the check, naming the file and saying to add a new migration", async () => {
  const bytes = await Deno.readFile(join(migrationsDir, credits));
  const edited = new Uint8Array([...bytes, 0x0a]); // a trailing newline is a change too
  const after = new Map(present).set(credits, sha256(edited));
  const { problems } = checkReleased(released, after);
  assertEquals(problems.length, 1);
  assertMatch(problems[0], new RegExp(`supabase/migrations/${credits} is released and has changed`));
  assertMatch(problems[0], /add a new migration instead/);
});

Deno.test("a released migration that disappeared fails the check", () => {
  const after = new Map(present);
  after.delete(credits);
  const { problems } = checkReleased(released, after);
  assertEquals(problems.length, 1);
  assertMatch(problems[0], new RegExp(`supabase/migrations/${credits} is released and has disappeared`));
});

Deno.test("a new migration is free until released; npm run release appends it and then guards it", () => {
  const added = "20991231000000_invoices.sql";
  const withNew = new Map(present).set(added, sha256(new TextEncoder().encode("create table public.invoices ();\n")));
  assertEquals(checkReleased(released, withNew), { problems: [], unreleased: [added] });

  const next = release(released, withNew);
  assertEquals(next.slice(0, released.length), released, "released entries stay as they were");
  assertEquals(next.at(-1), { sha256: withNew.get(added)!, file: added });
  assertEquals(checkReleased(next, withNew), { problems: [], unreleased: [] });
  const edited = new Map(withNew).set(
    added,
    sha256(new TextEncoder().encode("create table public.invoices (id int);\n")),
  );
  assertEquals(checkReleased(next, edited).problems.length, 1);
});

Deno.test("--rehash takes the files as they are now (for comment-only edits) but never forgives a removal", () => {
  const commented = new Map(present).set(credits, sha256(new TextEncoder().encode("-- see docs/credits.md\n")));
  const next = rehash(released, commented);
  assertEquals(next.map((r) => r.file), released.map((r) => r.file));
  assertEquals(checkReleased(next, commented).problems, []);

  const gone = new Map(present);
  gone.delete(credits);
  let refused = "";
  try {
    rehash(released, gone);
  } catch (error) {
    refused = error instanceof Error ? error.message : String(error);
  }
  assertMatch(refused, /has disappeared/);
});

Deno.test("released.txt is sha256sum's format, one `<sha256>  <file>` per line; anything else is refused with its line", () => {
  assertEquals(parseReleased(formatReleased(released)), released);
  let refused = "";
  try {
    parseReleased(`${formatReleased(released)}not-a-hash  ${credits}\n`);
  } catch (error) {
    refused = error instanceof Error ? error.message : String(error);
  }
  assertMatch(refused, new RegExp(`line ${released.length + 1} is not`));
});
