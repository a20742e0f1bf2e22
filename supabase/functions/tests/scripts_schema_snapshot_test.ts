/**
 * Story: Dana changes a released function the right way (a new migration with
 * `create or replace`) but forgets `npm run schema`, so supabase/schema/ still shows the old
 * definition. `npm test` compares the committed files with what the migrations produce
 * (scripts/lib/schema.ts); these prove the comparison catches every kind of drift and says
 * what to do, using the committed snapshot itself. The `schema drift` step of `npm test`
 * runs the same comparison against the database built from the migrations on every run.
 */
import { join } from "node:path";
import {
  driftReport,
  generatedHeader,
  readSnapshot,
  schemaDrift,
  type Snapshot,
  writeSnapshot,
} from "../../../scripts/lib/schema.ts";
import { assert, assertEquals, assertMatch } from "./_support/assert.ts";

const committed = await readSnapshot();
const consumeCredits = "public/functions/consume_credits.sql";

Deno.test("the committed snapshot has a file per table, view and function of ours, and our triggers and policies on platform tables", () => {
  for (
    const path of [
      "public/schema.sql",
      "private/schema.sql",
      "public/tables/credit_balances.sql",
      "private/tables/settings.sql",
      "public/views/account_entitlements.sql",
      consumeCredits,
      "auth/tables/users.sql",
      "storage/tables/objects.sql",
    ]
  ) {
    assert(committed.has(path), `supabase/schema/${path} must exist`);
    assert(committed.get(path)!.startsWith(generatedHeader), `${path} says it is generated`);
  }
  // Only what we add to the platform's tables: the signup trigger, not the platform's own.
  assertMatch(committed.get("auth/tables/users.sql")!, /create trigger on_auth_user_created/i);
  assert(!committed.get("storage/tables/objects.sql")!.includes("protect_objects_delete"));
  assert(![...committed.keys()].some((p) => p.startsWith("extensions/")), "extension objects are not ours");
});

Deno.test("the same snapshot on both sides is no drift", () => {
  const drift = schemaDrift(committed, new Map(committed));
  assertEquals(drift, { changed: [], missing: [], extra: [] });
  assertEquals(driftReport(drift), []);
});

Deno.test("a function redefined by a new migration, with the snapshot not regenerated, is drift that says to run npm run schema", () => {
  const generated: Snapshot = new Map(committed);
  generated.set(consumeCredits, committed.get(consumeCredits)!.replace("begin", "begin\n  perform 1;"));
  const drift = schemaDrift(committed, generated);
  assertEquals(drift, { changed: [consumeCredits], missing: [], extra: [] });
  const report = driftReport(drift);
  assertMatch(report[0], /run `npm run schema`/);
  assert(report.includes(`changed: supabase/schema/${consumeCredits}`));
});

Deno.test("a new table without its file, and a file of a dropped view, are drift too", () => {
  const generated: Snapshot = new Map(committed);
  generated.set("public/tables/invoices.sql", `${generatedHeader}\n\ncreate table public.invoices ();\n`);
  generated.delete("public/views/account_entitlements.sql");
  const drift = schemaDrift(committed, generated);
  assertEquals(drift, {
    changed: [],
    missing: ["public/tables/invoices.sql"],
    extra: ["public/views/account_entitlements.sql"],
  });
  assertEquals(driftReport(drift).slice(1), [
    "not committed: supabase/schema/public/tables/invoices.sql",
    "no such object: supabase/schema/public/views/account_entitlements.sql",
  ]);
});

Deno.test("writing a snapshot replaces the folder: files of dropped objects go, the rest reads back as written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ledgerbase-schema-" });
  try {
    await Deno.mkdir(join(dir, "public", "views"), { recursive: true });
    await Deno.writeTextFile(join(dir, "public", "views", "dropped.sql"), "-- a view no migration creates any more\n");
    const snapshot: Snapshot = new Map([
      [consumeCredits, committed.get(consumeCredits)!],
      ["public/tables/credit_balances.sql", committed.get("public/tables/credit_balances.sql")!],
    ]);
    await writeSnapshot(snapshot, dir);
    const written = await readSnapshot(dir);
    assertEquals(schemaDrift(written, snapshot), { changed: [], missing: [], extra: [] });
    assert(
      !(await Deno.stat(join(dir, "public", "views")).then(() => true, () => false)),
      "the emptied folder is gone",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
