/**
 * Request bodies read with a size cap, counted while they stream.
 *
 * A declared Content-Length above the cap is refused before a byte is read; a body without
 * one (chunked) is counted chunk by chunk and cut as soon as it passes the cap, the rest of
 * the stream cancelled. Either way the answer is `payload_too_large` (413), and at most the
 * cap plus one chunk was ever held in memory.
 */
import { type AppError, appError, err, ok, type Result } from "./errors.ts";

/** Bodies of JSON endpoints called by browsers and servers (checkout, billing-portal, usage). */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

function tooLarge(maxBytes: number): AppError {
  return appError("payload_too_large", `The request body is larger than ${maxBytes} bytes.`, 413);
}

/** The body's bytes, or `payload_too_large` when it has more than `maxBytes`. */
export async function readBodyBytes(request: Request, maxBytes: number): Promise<Result<Uint8Array>> {
  // A malformed Content-Length is left to the count below (the HTTP server frames the body).
  const declared = request.headers.get("content-length")?.trim();
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    await request.body?.cancel().catch(() => {});
    return err(tooLarge(maxBytes));
  }
  if (request.body === null) return ok(new Uint8Array(0));

  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        return err(tooLarge(maxBytes));
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return ok(body);
}

/** The body as UTF-8 text (as `Request.text()` decodes it), or `payload_too_large`. */
export async function readBodyText(request: Request, maxBytes: number): Promise<Result<string>> {
  const bytes = await readBodyBytes(request, maxBytes);
  if (!bytes.ok) return bytes;
  return ok(new TextDecoder().decode(bytes.value));
}
