// npm run release: freezes the migrations not released yet by appending them, with their
// sha256, to supabase/migrations/released.txt. From then on `npm test` fails if they change.
//
// `npm run release -- --rehash` rewrites the hashes of released migrations as the files are
// now. It is only for edits of comments that change nothing a migration does; any other
// change to a released migration goes into a new migration.
import { main, parseArgs, UserError } from "./lib/log.ts";
import {
  checkReleased,
  formatReleased,
  migrationHashes,
  readReleased,
  rehash,
  release,
  releasedFile,
} from "./lib/released.ts";

const usage = `usage: npm run release [-- --rehash]

Appends every migration in supabase/migrations not yet in released.txt, with its sha256.

  --rehash   rewrite the hashes of released migrations as the files are now; only for edits of
             comments that change nothing a migration does (anything else: a new migration)`;

await main(async () => {
  const { flags } = parseArgs(Deno.args, { rehash: "boolean" }, usage);
  const released = await readReleased();
  const present = await migrationHashes();
  if (flags.rehash) {
    const before = new Map(released.map((r) => [r.file, r.sha256]));
    let next;
    try {
      next = rehash(released, present);
    } catch (error) {
      throw new UserError(error instanceof Error ? error.message : String(error));
    }
    const changed = next.filter((r) => before.get(r.file) !== r.sha256).map((r) => r.file);
    await Deno.writeTextFile(releasedFile, formatReleased(next));
    console.log(
      `Rehashed ${changed.length} released migration${changed.length === 1 ? "" : "s"}${changed.length ? ":" : "."}`,
    );
    for (const file of changed) console.log(`  ${file}`);
    return;
  }
  const { problems, unreleased } = checkReleased(released, present);
  if (problems.length) {
    throw new UserError(
      problems.join("\n"),
      "a released migration stays as it was released: put changes in a new migration",
    );
  }
  await Deno.writeTextFile(releasedFile, formatReleased(release(released, present)));
  if (unreleased.length === 0) {
    console.log("Nothing to release: every migration is in supabase/migrations/released.txt.");
  } else {console.log(
      `Released ${unreleased.length} migration${unreleased.length === 1 ? "" : "s"}:\n${
        unreleased.map((f) => `  ${f}`).join("\n")
      }`,
    );}
});
