/**
 * The runner of `webhook.deliver` jobs: asks SQL for the signed request
 * (private.webhook_request: Standard Webhooks headers, one v1 signature per live
 * secret), checks where the URL leads (SSRF), POSTs it, and reports the answer.
 *
 * SSRF: the host's every address (A and AAAA, or the IP literal) is judged by
 * private.refused_webhook_addresses (loopback, private, link-local / metadata, CGNAT,
 * reserved; loopback allowed only by the webhook_allow_loopback setting). `localhost`
 * and `*.localhost` are loopback by definition (RFC 6761) and never looked up. The
 * request then goes to the first of the checked addresses (pinned_request.ts): the host
 * is looked up once per delivery, so DNS rebinding cannot send it elsewhere. Redirects
 * are not followed, so a public endpoint cannot bounce the request inside.
 */
import { isIP } from "node:net";
import { z } from "zod";
import type { ClaimedJob, RunnerContext, RunOutcome } from "./jobs.ts";
import { errorText } from "./jobs.ts";
import { PinningUnavailable } from "./pinned_request.ts";

/** The most of an endpoint's answer we keep. */
export const MAX_RESPONSE_CHARS = 1000;

const webhookRequest = z.object({
  url: z.string(),
  body: z.string(),
  timeout_ms: z.number().int().positive(),
  headers: z.record(z.string(), z.string()),
});

/** The addresses a URL's host stands for. */
export async function addressesOf(url: URL, context: Pick<RunnerContext, "resolveDns">): Promise<string[]> {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "").toLowerCase();
  if (isIP(host)) return [host];
  if (host === "localhost" || host.endsWith(".localhost")) return ["127.0.0.1", "::1"];
  const answers = await Promise.allSettled([context.resolveDns(host, "A"), context.resolveDns(host, "AAAA")]);
  return answers.flatMap((a) => (a.status === "fulfilled" ? a.value : []));
}

/** Where the URL may be sent: the address to connect to (the first checked one), or why not. */
export async function checkedDestination(
  url: URL,
  context: RunnerContext,
): Promise<{ ok: true; address: string } | { ok: false; reason: string }> {
  if (url.username || url.password) return { ok: false, reason: "the URL carries user info" };
  const addresses = await addressesOf(url, context);
  const [row] = await context.sql`select private.refused_webhook_addresses(${addresses}::text[]) as reason`;
  const reason = row.reason as string | null;
  return reason === null ? { ok: true, address: addresses[0] } : { ok: false, reason };
}

export async function deliverWebhook(job: ClaimedJob, context: RunnerContext): Promise<RunOutcome> {
  const deliveryId = z.uuid().safeParse(job.payload.delivery_id);
  if (!deliveryId.success) return { ok: false, error: "the job has no delivery_id" };
  const [row] = await context.sql`select private.webhook_request(${deliveryId.data}::uuid) as request`;
  if (row.request === null) return { ok: true, result: { skipped: "the endpoint is disabled or gone" } };
  const request = webhookRequest.parse(row.request);

  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return { ok: false, error: "the endpoint URL is not valid" };
  }
  const destination = await checkedDestination(url, context);
  if (!destination.ok) return { ok: false, error: `refused: ${destination.reason}` };

  const started = performance.now();
  try {
    const response = await context.pinnedRequest(url, destination.address, {
      method: "POST",
      headers: request.headers,
      body: request.body,
      signal: AbortSignal.timeout(request.timeout_ms),
      maxBodyChars: MAX_RESPONSE_CHARS,
    });
    const result = {
      response_status: response.status,
      response_body: response.body,
      duration_ms: Math.round(performance.now() - started),
    };
    // Any other answer fails, a redirect (3xx) too: it is not followed.
    if (response.status >= 200 && response.status < 300) return { ok: true, result };
    return { ok: false, error: `the endpoint answered HTTP ${response.status}`, result };
  } catch (e) {
    if (e instanceof PinningUnavailable) return { ok: false, error: `refused: pinning_unavailable: ${e.message}` };
    const duration_ms = Math.round(performance.now() - started);
    const timedOut = e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError");
    return {
      ok: false,
      error: timedOut ? `no answer within ${request.timeout_ms} ms` : `the request failed: ${errorText(e)}`,
      result: { duration_ms },
    };
  }
}
