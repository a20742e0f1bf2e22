// The common start of a JSON POST endpoint for signed-in users: CORS preflight, method,
// the user's JWT, and a body validated by a zod schema. Anything wrong comes back as the
// Response to send; otherwise the verified user, the body and the CORS headers. Bodies over
// 64 kB are refused (413 payload_too_large) while they stream.
import type { z } from "zod";
import { MAX_JSON_BODY_BYTES, readBodyText } from "./body.ts";
import { type EnvSource } from "./env.ts";
import { type AppError, appError } from "./errors.ts";
import { appErrorResponse, corsHeaders, errorResponse, preflight } from "./http.ts";
import { authenticate, type JwtVerifier, type VerifiedJwt, verifierFromEnv } from "./jwt.ts";

export interface UserRequest<T> {
  jwt: VerifiedJwt;
  body: T;
  cors: Record<string, string>;
  /** An error response carrying the CORS headers. */
  fail: (error: AppError) => Response;
}

/**
 * Reads a POST from a signed-in user. `what` names the request in the 400 message
 * ("Invalid checkout request."); zod's issues go into the error's detail.
 */
export async function readUserRequest<S extends z.ZodType>(
  request: Request,
  schema: S,
  what: string,
  deps: { env: EnvSource; verifier?: JwtVerifier },
): Promise<Response | UserRequest<z.infer<S>>> {
  const pre = preflight(request);
  if (pre) return pre;
  const cors = corsHeaders(request);
  const fail = (error: AppError) => appErrorResponse(error, cors);
  if (request.method !== "POST") return errorResponse("method_not_allowed", "Use POST.", 405, cors);

  let verifier = deps.verifier;
  if (verifier === undefined) {
    const configured = verifierFromEnv(deps.env);
    if (!configured.ok) return fail(configured.error);
    verifier = configured.value;
  }
  const jwt = await authenticate(request, { verifier });
  if (!jwt.ok) return fail(jwt.error);

  const text = await readBodyText(request, MAX_JSON_BODY_BYTES);
  if (!text.ok) return fail(text.error);
  let raw: unknown;
  try {
    raw = JSON.parse(text.value);
  } catch {
    return fail(appError("invalid_input", "The body must be JSON.", 400));
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return fail(appError("invalid_input", `Invalid ${what}.`, 400, {
      detail: parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "),
    }));
  }
  return { jwt: jwt.value, body: parsed.data, cors, fail };
}
