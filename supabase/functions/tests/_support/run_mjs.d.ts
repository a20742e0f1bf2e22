// Types of scripts/run.mjs (plain Node, no types of its own) for the tests that import it.
export interface LockEntry {
  name?: string;
  version?: string;
  optional?: boolean;
  os?: string[];
  cpu?: string[];
  libc?: string[];
}
export interface Lockfile {
  packages?: Record<string, LockEntry>;
}
export interface Platform {
  os: string;
  cpu: string;
  libc: string;
}
export function fitsPlatform(entry: LockEntry, platform: Platform): boolean;
export function missingPackages(lock: Lockfile | null, installed: Lockfile | null, platform: Platform): string[];
