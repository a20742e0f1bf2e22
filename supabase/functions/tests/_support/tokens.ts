/**
 * Test support: the local database URL and JWT secret (from the environment,
 * with the local-stack defaults), and tokens shaped like Supabase Auth's.
 */
import { base64url, type JWTPayload, SignJWT } from "jose";

export const TEST_DB_URL = Deno.env.get("SUPABASE_DB_URL") ??
  "postgresql://postgres:postgres@127.0.0.1:54399/postgres";

export const TEST_JWT_SECRET = Deno.env.get("JWT_SECRET") ??
  "super-secret-jwt-token-with-at-least-32-characters-long";

const encoder = new TextEncoder();

/** Seconds since the epoch. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** The claims GoTrue puts in a user's access token. */
export function userClaims(userId: string, extra: JWTPayload = {}): JWTPayload {
  const now = nowSeconds();
  return {
    iss: "http://127.0.0.1:54321/auth/v1",
    sub: userId,
    aud: "authenticated",
    exp: now + 3600,
    iat: now,
    email: `${userId.slice(0, 8)}@example.test`,
    phone: "",
    app_metadata: { provider: "email", providers: ["email"] },
    user_metadata: {},
    role: "authenticated",
    aal: "aal1",
    amr: [{ method: "password", timestamp: now }],
    session_id: crypto.randomUUID(),
    is_anonymous: false,
    ...extra,
  };
}

/** HS256-signs `claims` as given (no claim is added). */
export async function signHs256(claims: JWTPayload, secret: string = TEST_JWT_SECRET): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(encoder.encode(secret));
}

/** An unsigned token (`alg: none`), the classic forgery. */
export function unsignedToken(claims: JWTPayload): string {
  const part = (value: unknown) => base64url.encode(JSON.stringify(value));
  return `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.`;
}
