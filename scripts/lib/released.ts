// Released migrations are frozen: supabase/migrations/released.txt lists each with its sha256,
// in `sha256sum` format (`cd supabase/migrations && sha256sum -c released.txt` checks them too).
// `npm test` fails when a listed file changed or disappeared; `npm run release` appends the
// migrations not listed yet.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { migrationsDir } from "./paths.ts";

export const releasedFile = join(migrationsDir, "released.txt");

export interface Release {
  sha256: string;
  file: string;
}

/** The entries of released.txt; a line that is not `<sha256>  <file>` is an error naming its number. */
export function parseReleased(text: string): Release[] {
  const releases: Release[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const match = line.match(/^([0-9a-f]{64}) [ *](\S+)$/);
    if (!match) throw new Error(`supabase/migrations/released.txt line ${i + 1} is not "<sha256>  <file>": ${line}`);
    releases.push({ sha256: match[1], file: match[2] });
  });
  return releases;
}

export function formatReleased(releases: Release[]): string {
  return releases.map((r) => `${r.sha256}  ${r.file}\n`).join("");
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Every migration file in `dir` (name → sha256 of its bytes). */
export async function migrationHashes(dir = migrationsDir): Promise<Map<string, string>> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) if (entry.isFile && entry.name.endsWith(".sql")) names.push(entry.name);
  const hashes = new Map<string, string>();
  for (const name of names.sort()) hashes.set(name, sha256(await Deno.readFile(join(dir, name))));
  return hashes;
}

export async function readReleased(path = releasedFile): Promise<Release[]> {
  try {
    return parseReleased(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

export interface ReleaseVerdict {
  /** One line per released migration that changed or disappeared, saying what to do. */
  problems: string[];
  /** Migrations not released yet (free to edit until `npm run release`). */
  unreleased: string[];
}

/** Whether every released migration is still there, byte for byte. */
export function checkReleased(released: Release[], present: Map<string, string>): ReleaseVerdict {
  const problems: string[] = [];
  for (const r of released) {
    const hash = present.get(r.file);
    if (hash === undefined) {
      problems.push(
        `supabase/migrations/${r.file} is released and has disappeared: restore it (a released migration is never removed; undo what it did in a new migration)`,
      );
    } else if (hash !== r.sha256) {
      problems.push(
        `supabase/migrations/${r.file} is released and has changed: restore it and add a new migration instead (\`git checkout -- supabase/migrations/${r.file}\`)`,
      );
    }
  }
  const listed = new Set(released.map((r) => r.file));
  return { problems, unreleased: [...present.keys()].filter((f) => !listed.has(f)).sort() };
}

/** The list with every migration not listed yet appended (in file-name order). */
export function release(released: Release[], present: Map<string, string>): Release[] {
  const listed = new Set(released.map((r) => r.file));
  const added = [...present].filter(([file]) => !listed.has(file)).sort(([a], [b]) => (a < b ? -1 : 1));
  return [...released, ...added.map(([file, sha256]) => ({ sha256, file }))];
}

/**
 * The list with the hashes of the listed migrations as they are now: only for an edit of
 * comments that leaves what a migration does unchanged. A listed file that is gone stays an error.
 */
export function rehash(released: Release[], present: Map<string, string>): Release[] {
  return released.map((r) => {
    const hash = present.get(r.file);
    if (hash === undefined) {
      throw new Error(`supabase/migrations/${r.file} is released and has disappeared: restore it`);
    }
    return { sha256: hash, file: r.file };
  });
}
