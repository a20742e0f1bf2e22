// npm run token -- <email>: a user JWT for curl. Creates the user on first use, through
// auth.users, so the signup trigger runs as it does for a real signup.
import { main, parseArgs, UserError } from "./lib/log.ts";
import { ensureFunctionsEnv } from "./lib/env.ts";
import { signJwt } from "./lib/jwt.ts";
import { DEFAULT_JWT_SECRET } from "./lib/config.ts";
import { devCluster, requireRunningDatabase } from "./lib/stack.ts";
import { must } from "./lib/proc.ts";
import { join } from "node:path";
import { pgBin } from "./lib/postgres.ts";

const usage = `usage: npm run token -- <email> [--hours=N]

Prints a JWT for that user (created if needed), signed with the local JWT secret:
  curl -H "Authorization: Bearer $(npm run -s token -- ada@example.com)" ...`;

await main(async () => {
  const { flags, positional } = parseArgs(Deno.args, { hours: "string" }, usage);
  const email = positional[0]?.trim().toLowerCase();
  if (!email || positional.length > 1) throw new UserError("give exactly one email", usage);
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
    throw new UserError(`"${positional[0]}" is not an email address`, usage);
  }
  const hours = Number(flags.hours ?? 1);
  if (!(hours > 0 && hours <= 24 * 30)) throw new UserError("--hours must be between 0 and 720");
  const cluster = await requireRunningDatabase(devCluster());
  const sql = `
    insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                            confirmation_token, recovery_token, email_change_token_new, email_change,
                            raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    select '00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated', :'email', '',
           now(), '', '', '', '', '{"provider": "email", "providers": ["email"]}', '{}', now(), now()
    where not exists (select from auth.users where email = :'email' and not is_sso_user);
    select id, is_anonymous, raw_app_meta_data, raw_user_meta_data from auth.users
    where email = :'email' and not is_sso_user;`;
  const result = await must("create the user", join(pgBin, "psql"), [
    "-X",
    "-q",
    "-At",
    "-F",
    "\t",
    "-v",
    "ON_ERROR_STOP=1",
    "-v",
    `email=${email}`,
    "-d",
    cluster.url(),
  ], { stdin: sql });
  const [id, anonymous, appMeta, userMeta] = result.stdout.trim().split("\n").pop()!.split("\t");
  const { values } = await ensureFunctionsEnv();
  const now = Math.floor(Date.now() / 1000);
  const token = await signJwt(values.JWT_SECRET || DEFAULT_JWT_SECRET, {
    iss: "http://127.0.0.1:54321/auth/v1",
    sub: id,
    aud: "authenticated",
    role: "authenticated",
    email,
    phone: "",
    aal: "aal1",
    amr: [{ method: "password", timestamp: now }],
    session_id: crypto.randomUUID(),
    is_anonymous: anonymous === "t",
    app_metadata: JSON.parse(appMeta || "{}"),
    user_metadata: JSON.parse(userMeta || "{}"),
    iat: now,
    exp: now + Math.round(hours * 3600),
  });
  console.error(`user ${email} (${id}); token valid for ${hours} h`);
  console.log(token);
});
