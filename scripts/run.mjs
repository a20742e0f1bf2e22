// The npm scripts' entry point: `node scripts/run.mjs scripts/<name>.ts [args...]`.
//
// Plain Node with no dependencies, so that `npm start` and `npm test` work straight after
// `git clone`: when node_modules is missing or does not hold what package-lock.json pins for
// this platform, it runs `npm ci` first (which installs exactly the lockfile and never
// rewrites it), then runs the script with the Deno from node_modules.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Whether a lockfile entry is meant for this platform (optional per-platform binaries). */
export function fitsPlatform(entry, platform) {
  const allows = (list, value) => !Array.isArray(list) || list.includes(value);
  return allows(entry.os, platform.os) && allows(entry.cpu, platform.cpu) &&
    (platform.os !== "linux" || allows(entry.libc, platform.libc));
}

/**
 * The packages that package-lock.json pins and node_modules lacks (or holds at another
 * version), judged by npm's own record of what it installed (node_modules/.package-lock.json).
 */
export function missingPackages(lock, installed, platform) {
  const missing = [];
  for (const [path, entry] of Object.entries(lock?.packages ?? {})) {
    if (path === "" || (entry.optional && !fitsPlatform(entry, platform))) continue;
    if (installed?.packages?.[path]?.version !== entry.version) missing.push(path.replace(/^node_modules\//, ""));
  }
  return missing;
}

function currentPlatform() {
  const glibc = process.platform === "linux" && process.report?.getReport?.().header?.glibcVersionRuntime;
  return { os: process.platform, cpu: process.arch, libc: glibc ? "glibc" : "musl" };
}

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}

function ensureDependencies() {
  const lock = readJson(join(root, "package-lock.json"));
  const installed = readJson(join(root, "node_modules", ".package-lock.json"));
  const missing = missingPackages(lock, installed, currentPlatform());
  if (missing.length === 0 && existsSync(join(root, "node_modules", ".bin", "deno"))) return;
  // On stderr, like npm ci's output: stdout stays the script's (`$(npm run -s token -- ...)`).
  console.error(
    `• Installing ${installed ? "the changed" : "the"} dependencies from package-lock.json (npm ci): ${
      missing.join(", ") || "deno"
    }…`,
  );
  // Inside an npm script, npm_execpath is the npm that runs us; otherwise the one on PATH.
  const npm = process.env.npm_execpath;
  const args = ["ci", "--no-audit", "--no-fund", "--loglevel=error"];
  const result = npm && npm.endsWith(".js")
    ? spawnSync(process.execPath, [npm, ...args], { cwd: root, stdio: [0, 2, 2] })
    : spawnSync("npm", args, { cwd: root, stdio: [0, 2, 2] });
  if (result.status !== 0) {
    console.error(
      `\nerror: npm ci failed (exit ${result.status ?? result.signal}); run \`npm ci\` in ${root} to see why.`,
    );
    process.exit(1);
  }
}

function main() {
  const [script, ...args] = process.argv.slice(2);
  if (!script) {
    console.error("usage: node scripts/run.mjs scripts/<name>.ts [args...]");
    process.exit(2);
  }
  ensureDependencies();
  const child = spawn(
    join(root, "node_modules", ".bin", "deno"),
    ["run", "-A", "--quiet", join(root, script), ...args],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
  // Ctrl-C reaches the script itself (same process group): let it clean up and report.
  process.on("SIGINT", () => {});
  for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 + (signal === "SIGINT" ? 2 : 15) : 1)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
