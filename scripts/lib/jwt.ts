// HS256 keys and tokens, signed the way `supabase status` and GoTrue sign them.
import { SignJWT } from "jose";

export async function signJwt(secret: string, claims: Record<string, unknown>): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(
    new TextEncoder().encode(secret),
  );
}

/** The anon and service_role API keys (the same payloads as the Supabase CLI's local keys). */
export async function apiKeys(secret: string): Promise<{ anon: string; serviceRole: string }> {
  const exp = 1983812996;
  return {
    anon: await signJwt(secret, { iss: "supabase-demo", role: "anon", exp }),
    serviceRole: await signJwt(secret, { iss: "supabase-demo", role: "service_role", exp }),
  };
}
