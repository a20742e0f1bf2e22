// Progress output and user-facing errors for the local-stack commands.

/** An error the user can act on: printed as a message and a hint, never a stack trace. */
export class UserError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = "UserError";
  }
}

const tty = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
const paint = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = paint("1");
export const dim = paint("2");
export const red = paint("31");
export const green = paint("32");
export const yellow = paint("33");

/** Runs one named step, printing its name, its duration and whether it worked. */
export async function step<T>(name: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  console.log(`${dim("•")} ${name}…`);
  try {
    const result = await work();
    const ms = Math.round(performance.now() - started);
    console.log(`  ${green("✓")} ${name} ${dim(`(${formatMs(ms)})`)}`);
    return result;
  } catch (error) {
    console.log(`  ${red("✗")} ${name}`);
    throw error;
  }
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Entry point wrapper: user errors become a message and exit code 1, never a stack trace. */
export async function main(run: () => Promise<number | void>): Promise<never> {
  try {
    const code = await run();
    Deno.exit(typeof code === "number" ? code : 0);
  } catch (error) {
    if (error instanceof UserError) {
      console.error(`\n${red("error:")} ${error.message}`);
      if (error.hint) console.error(`${yellow("what to do:")} ${error.hint}`);
    } else {
      console.error(
        `\n${red("unexpected error:")} ${error instanceof Error ? error.stack ?? error.message : String(error)}`,
      );
    }
    Deno.exit(1);
  }
}

/** Parses `--flag`, `--flag=value` and positional arguments; unknown flags are a UserError. */
export function parseArgs(
  args: string[],
  known: Record<string, "boolean" | "string">,
  usage: string,
): { flags: Record<string, string | boolean>; positional: string[] } {
  const flags: Record<string, string | boolean> = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(usage);
      Deno.exit(0);
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    const kind = known[name];
    if (!kind) throw new UserError(`unknown option --${name}`, usage);
    if (kind === "boolean") flags[name] = true;
    else {
      const value = inline ?? args[++i];
      if (value === undefined) throw new UserError(`--${name} needs a value`, usage);
      flags[name] = value;
    }
  }
  return { flags, positional };
}
