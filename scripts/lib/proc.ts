// Running child processes with captured output.
import { UserError } from "./log.ts";

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string;
  /** Stream output to the terminal instead of capturing it. */
  inherit?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: options.inherit ? "inherit" : "piped",
      stderr: options.inherit ? "inherit" : "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UserError(`command not found: ${cmd}`, "run `npm install` in the repository first");
    }
    throw error;
  }
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: options.inherit ? "" : decode(out.stdout),
    stderr: options.inherit ? "" : decode(out.stderr),
  };
}

/** Runs a command and turns a non-zero exit into a UserError carrying the tail of its output. */
export async function must(what: string, cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    const tail = (result.stderr + "\n" + result.stdout).trim().split("\n").slice(-25).join("\n");
    throw new UserError(`${what} failed (exit ${result.code})${tail ? `:\n${tail}` : ""}`);
  }
  return result;
}

export const isRoot = () => Deno.uid() === 0;

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
