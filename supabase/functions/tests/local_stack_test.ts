/**
 * Story: a newcomer clones the repository and runs `npm start` / `npm test`, and keeps using
 * the stack for months. These are the decisions the local-stack scripts take on their behalf:
 * when node_modules must be installed first, where a clone's clusters live, which database
 * the functions talk to, and when a running PostgreSQL must be restarted because Debian
 * upgraded it underneath.
 */
import { assert, assertEquals } from "./_support/assert.ts";
import { restartReason } from "../../../scripts/lib/postgres.ts";
import { withStackUrls } from "../../../scripts/lib/env.ts";
import { cloneKey } from "../../../scripts/lib/paths.ts";
// @ts-types="./_support/run_mjs.d.ts"
import { missingPackages } from "../../../scripts/run.mjs";

const started = new Date("2026-12-01T10:00:00Z");
const debian = (v: string) => `${v} (Debian ${v}-1.pgdg120+1)`;

Deno.test("a server started before Debian upgraded PostgreSQL is restarted; an untouched one is left alone", () => {
  // The morning after: 15.20 installed under a 15.18 server (new connections fail to load plpgsql.so).
  assertEquals(
    restartReason({
      startedAt: started,
      runningVersion: debian("15.18"),
      installedVersion: debian("15.20"),
      replacedAt: [],
    }),
    "PostgreSQL 15.18 is running, 15.20 is installed",
  );
  // A rebuild of the same version: the files were replaced after the server started.
  const later = new Date(started.getTime() + 3_600_000);
  assertEquals(
    restartReason({
      startedAt: started,
      runningVersion: debian("15.20"),
      installedVersion: debian("15.20"),
      replacedAt: [null, later],
    }),
    "its binaries were replaced after it started",
  );
  // The psql probe failed (no version): the files still tell.
  assert(
    restartReason({
      startedAt: started,
      runningVersion: null,
      installedVersion: debian("15.20"),
      replacedAt: [later],
    }) !== null,
  );
  // Nothing changed since the start: no restart, whatever the packaged files' age.
  const before = new Date(started.getTime() - 86_400_000);
  assertEquals(
    restartReason({
      startedAt: started,
      runningVersion: debian("15.20"),
      installedVersion: debian("15.20"),
      replacedAt: [before, before],
    }),
    null,
  );
  // An unreadable start time never restarts on file times alone.
  assertEquals(
    restartReason({ startedAt: new Date(NaN), runningVersion: null, installedVersion: null, replacedAt: [later] }),
    null,
  );
});

Deno.test("the functions talk to the stack's own database and API unless the user set other URLs", () => {
  const stack = { dbUrl: "postgresql://postgres:postgres@127.0.0.1:55432/postgres", apiUrl: "http://127.0.0.1:55431" };
  // A fresh .env from .env.example leaves them empty: LEDGERBASE_DB_PORT decides.
  assertEquals(withStackUrls({ SUPABASE_DB_URL: "", SUPABASE_URL: "", JWT_SECRET: "s" }, stack), {
    SUPABASE_DB_URL: stack.dbUrl,
    SUPABASE_URL: stack.apiUrl,
    JWT_SECRET: "s",
  });
  // A .env copied from the former example (54322 hard-coded) is not a choice of the user's.
  const former = {
    SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:54322/postgres",
    SUPABASE_URL: "http://127.0.0.1:54321",
  };
  assertEquals(withStackUrls(former, stack), { SUPABASE_DB_URL: stack.dbUrl, SUPABASE_URL: stack.apiUrl });
  // A URL the user wrote is kept.
  const own = {
    SUPABASE_DB_URL: "postgresql://app:secret@db.internal:5432/app",
    SUPABASE_URL: "https://ref.supabase.co",
  };
  assertEquals(withStackUrls(own, stack), own);
});

Deno.test("each clone gets a cluster folder of its own, named after its path", () => {
  assertEquals(cloneKey("/root/work/ledgerbase"), cloneKey("/root/work/ledgerbase"), "stable across runs");
  assert(
    cloneKey("/root/work/ledgerbase") !== cloneKey("/root/other/ledgerbase"),
    "two clones of one name never share",
  );
  assert(/^ledgerbase-[0-9a-f]{12}$/.test(cloneKey("/root/work/ledgerbase")));
  assert(/^my_app-[0-9a-f]{12}$/.test(cloneKey("/home/a/my app")), "a folder name with spaces stays a plain name");
});

Deno.test("npm ci runs first when node_modules lacks what package-lock.json pins for this platform", () => {
  const linux = { os: "linux", cpu: "x64", libc: "glibc" };
  const lock = {
    packages: {
      "": { name: "ledgerbase" },
      "node_modules/deno": { version: "2.9.6" },
      "node_modules/@deno/linux-x64-glibc": {
        version: "2.9.6",
        optional: true,
        os: ["linux"],
        cpu: ["x64"],
        libc: ["glibc"],
      },
      "node_modules/@deno/darwin-arm64": { version: "2.9.6", optional: true, os: ["darwin"], cpu: ["arm64"] },
      "node_modules/@supabase/cli-linux-x64-musl": {
        version: "3.1.0",
        optional: true,
        os: ["linux"],
        cpu: ["x64"],
        libc: ["musl"],
      },
    },
  };
  const installedAll = {
    packages: { "node_modules/deno": { version: "2.9.6" }, "node_modules/@deno/linux-x64-glibc": { version: "2.9.6" } },
  };
  assertEquals(missingPackages(lock, installedAll, linux), [], "other platforms' binaries are not needed here");
  assertEquals(missingPackages(lock, null, linux), ["deno", "@deno/linux-x64-glibc"], "a fresh clone: everything");
  const stale = {
    packages: { "node_modules/deno": { version: "2.9.5" }, "node_modules/@deno/linux-x64-glibc": { version: "2.9.6" } },
  };
  assertEquals(missingPackages(lock, stale, linux), ["deno"], "a pull that bumped a version");
});
