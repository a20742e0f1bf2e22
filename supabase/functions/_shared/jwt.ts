/**
 * User JWT verification, as Supabase Auth issues them.
 *
 * - HS256 with JWT_SECRET (legacy and local projects), or the project's JWKS
 *   (asymmetric signing keys: ES256, RS256, EdDSA) when no secret is set.
 * - `exp` is required; `role` must be anon, authenticated or service_role
 *   (the roles PostgREST would switch to); authenticated tokens need a UUID `sub`.
 * - A user token (role authenticated) must be meant for us: `aud` is `authenticated`
 *   (or an array holding it), else `invalid_jwt_audience`; and when the project's auth
 *   URL is known (JWT_ISSUER, or `<SUPABASE_URL>/auth/v1`), `iss` is exactly that, else
 *   `invalid_jwt_issuer`. Both 401. Another app sharing the secret or the keys cannot
 *   pass its tokens off as our users'.
 * - Failures are values: `{ ok: false, error: { code, message, status } }`.
 */
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify, type JWTVerifyGetKey } from "jose";
import { type AppError, appError, err, ok, type Result } from "./errors.ts";
import { type EnvSource, jwtIssuer, type JwtVerification, jwtVerification, processEnv } from "./env.ts";

export type DbRole = "anon" | "authenticated" | "service_role";
export const DB_ROLES: readonly DbRole[] = ["anon", "authenticated", "service_role"];

export function isDbRole(value: unknown): value is DbRole {
  return typeof value === "string" && (DB_ROLES as readonly string[]).includes(value);
}

/** All claims of a verified token; `role` is checked, the rest passes through. */
export type JwtClaims = JWTPayload & { readonly role: DbRole };

export interface VerifiedJwt {
  readonly role: DbRole;
  /** `sub` as a UUID for authenticated users, else null. */
  readonly userId: string | null;
  readonly claims: JwtClaims;
}

export type JwtErrorCode =
  | "missing_jwt"
  | "invalid_jwt"
  | "expired_jwt"
  /** A user token issued for another audience than `authenticated` (401). */
  | "invalid_jwt_audience"
  /** A user token issued by another auth server than the project's (401). */
  | "invalid_jwt_issuer"
  /** The JWKS could not be fetched: our problem, not the caller's (503). */
  | "jwks_unavailable"
  /** Neither JWT_SECRET nor SUPABASE_URL is usable (500). */
  | "config_missing"
  | "config_invalid";

export interface JwtError extends AppError {
  readonly code: JwtErrorCode;
}

export interface JwtVerifier {
  verify(token: string): Promise<Result<VerifiedJwt, JwtError>>;
}

export interface JwtVerifierOptions {
  /** Accepted clock skew for exp/nbf, seconds. Default 0. */
  clockToleranceSeconds?: number;
  /** The `iss` user tokens must carry (the project's auth URL); unchecked when absent. */
  issuer?: string;
}

/** The audience Supabase Auth gives user access tokens. */
export const USER_AUDIENCE = "authenticated";

const ASYMMETRIC_ALGORITHMS = ["ES256", "RS256", "EdDSA", "Ed25519"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function jwtError(code: JwtErrorCode, message: string, status = 401): JwtError {
  return appError(code, message, status) as JwtError;
}

/** Raised inside the key resolver when the JWKS endpoint fails, to tell it apart from bad tokens. */
class JwksUnavailable extends Error {}

/** One remote key set per URL and isolate, so its key cache is shared. */
const remoteKeySets = new Map<string, JWTVerifyGetKey>();

function remoteKeySet(url: URL): JWTVerifyGetKey {
  let keySet = remoteKeySets.get(url.href);
  if (keySet === undefined) {
    const remote = createRemoteJWKSet(url, { timeoutDuration: 5_000, cooldownDuration: 30_000 });
    keySet = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (e) {
        if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) throw e;
        throw new JwksUnavailable(e instanceof Error ? e.message : String(e));
      }
    };
    remoteKeySets.set(url.href, keySet);
  }
  return keySet;
}

function classify(e: unknown): JwtError {
  if (e instanceof errors.JWTExpired) return jwtError("expired_jwt", "The JWT has expired.");
  if (e instanceof JwksUnavailable) {
    return jwtError("jwks_unavailable", "The signing keys of the project could not be fetched.", 503);
  }
  if (e instanceof errors.JOSEAlgNotAllowed) {
    return jwtError("invalid_jwt", "The JWT is signed with an algorithm that is not accepted.");
  }
  if (e instanceof errors.JWSSignatureVerificationFailed || e instanceof errors.JWKSNoMatchingKey) {
    return jwtError("invalid_jwt", "The JWT signature is not valid.");
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    return jwtError("invalid_jwt", `The JWT claims are not valid: ${e.message}.`);
  }
  return jwtError("invalid_jwt", "The JWT is malformed or not valid.");
}

function hasUserAudience(aud: unknown): boolean {
  return aud === USER_AUDIENCE || (Array.isArray(aud) && aud.includes(USER_AUDIENCE));
}

function checkClaims(payload: JWTPayload, issuer: string | undefined): Result<VerifiedJwt, JwtError> {
  const role = payload.role;
  if (!isDbRole(role)) {
    return err(jwtError("invalid_jwt", `The JWT role claim must be one of ${DB_ROLES.join(", ")}.`));
  }
  const sub = typeof payload.sub === "string" && UUID.test(payload.sub) ? payload.sub.toLowerCase() : null;
  if (role === "authenticated") {
    if (sub === null) {
      return err(jwtError("invalid_jwt", "An authenticated JWT needs a user id (UUID) in its sub claim."));
    }
    if (!hasUserAudience(payload.aud)) {
      return err(jwtError(
        "invalid_jwt_audience",
        `The JWT was issued for another audience: a user token of this project has aud "${USER_AUDIENCE}".`,
      ));
    }
    if (issuer !== undefined && payload.iss !== issuer) {
      return err(jwtError(
        "invalid_jwt_issuer",
        `The JWT was not issued by this project's auth server: a user token has iss "${issuer}".`,
      ));
    }
  }
  return ok({ role, userId: role === "authenticated" ? sub : null, claims: { ...payload, role } });
}

/** A verifier for one configuration (HS256 secret or JWKS URL). */
export function createJwtVerifier(config: JwtVerification, options: JwtVerifierOptions = {}): JwtVerifier {
  const algorithms = config.kind === "hs256" ? ["HS256"] : ASYMMETRIC_ALGORITHMS;
  const secret = config.kind === "hs256" ? new TextEncoder().encode(config.secret) : undefined;
  const keySet = config.kind === "jwks" ? remoteKeySet(config.jwksUrl) : undefined;
  const verifyOptions = {
    algorithms,
    requiredClaims: ["exp"],
    clockTolerance: options.clockToleranceSeconds ?? 0,
  };
  return {
    async verify(token) {
      try {
        const { payload } = secret !== undefined
          ? await jwtVerify(token, secret, verifyOptions)
          : await jwtVerify(token, keySet as JWTVerifyGetKey, verifyOptions);
        return checkClaims(payload, options.issuer);
      } catch (e) {
        return err(classify(e));
      }
    },
  };
}

let envVerifier: { key: string; verifier: JwtVerifier } | undefined;

/** The verifier configured by JWT_SECRET / SUPABASE_URL / JWT_ISSUER, cached per isolate. */
export function verifierFromEnv(env: EnvSource = processEnv): Result<JwtVerifier, JwtError> {
  const config = jwtVerification(env);
  if (!config.ok) return err(config.error as JwtError);
  const issuer = jwtIssuer(env);
  if (!issuer.ok) return err(issuer.error as JwtError);
  const key = (config.value.kind === "hs256" ? `hs256:${config.value.secret}` : `jwks:${config.value.jwksUrl.href}`) +
    ` iss:${issuer.value ?? ""}`;
  if (envVerifier?.key !== key) {
    envVerifier = { key, verifier: createJwtVerifier(config.value, { issuer: issuer.value }) };
  }
  return ok(envVerifier.verifier);
}

/** Verifies a token with the given verifier, or the one configured in the environment. */
export async function verifyJwt(token: string, verifier?: JwtVerifier): Promise<Result<VerifiedJwt, JwtError>> {
  const chosen = verifier === undefined ? verifierFromEnv() : ok(verifier);
  if (!chosen.ok) return chosen;
  return await chosen.value.verify(token);
}

/** The token of `Authorization: Bearer <token>`, or `missing_jwt`. */
export function bearerToken(source: Request | Headers): Result<string, JwtError> {
  const headers = source instanceof Request ? source.headers : source;
  const header = headers.get("authorization");
  if (header === null || header.trim() === "") {
    return err(jwtError("missing_jwt", "Missing Authorization header with a Bearer token."));
  }
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (match === null) {
    return err(jwtError("missing_jwt", "The Authorization header must be 'Bearer <token>'."));
  }
  return ok(match[1]);
}

export interface AuthenticateOptions {
  /** Roles this endpoint accepts; default only signed-in users (`authenticated`). */
  roles?: readonly DbRole[];
  verifier?: JwtVerifier;
}

/**
 * Bearer token → verified JWT with an accepted role. A valid anon or service
 * key on a user endpoint is `missing_jwt`: no user token was sent.
 */
export async function authenticate(
  request: Request,
  options: AuthenticateOptions = {},
): Promise<Result<VerifiedJwt, JwtError>> {
  const token = bearerToken(request);
  if (!token.ok) return token;
  const verified = await verifyJwt(token.value, options.verifier);
  if (!verified.ok) return verified;
  const roles = options.roles ?? ["authenticated"];
  if (!roles.includes(verified.value.role)) {
    return err(jwtError("missing_jwt", `This endpoint needs a ${roles.join(" or ")} JWT, not ${verified.value.role}.`));
  }
  return verified;
}
