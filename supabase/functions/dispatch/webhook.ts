/**
 * The runner of `webhook.deliver` jobs: asks SQL for the signed request
 * (private.webhook_request: Standard Webhooks headers, one v1 signature per live
 * secret), checks where the URL leads (SSRF), POSTs it, and reports the answer.
 *
 * SSRF: the host's every address (A and AAAA, or the IP literal) is judged by
 * private.refused_webhook_addresses (loopback, private, link-local / metadata, CGNAT,
 * reserved; loopback allowed only by the webhook_allow_loopback setting). `localhost`
 * and `*.localhost` are loopback by definition (RFC 6761) and never looked up. Redirects
 * are not followed, so a public endpoint cannot bounce the request inside.
 */
import { isIP } from "node:net";
import { z } from "zod";
import type { ClaimedJob, RunnerContext, RunOutcome } from "./jobs.ts";
import { errorText } from "./jobs.ts";

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

/** Why the URL may not be called, or null. */
export async function refusedDestination(url: URL, context: RunnerContext): Promise<string | null> {
  if (url.username || url.password) return "the URL carries user info";
  const addresses = await addressesOf(url, context);
  const [row] = await context.sql`select private.refused_webhook_addresses(${addresses}::text[]) as reason`;
  return (row.reason as string | null) ?? null;
}

async function readCapped(response: Response, maxChars: number): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (text.length < maxChars) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text.slice(0, maxChars);
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
  const refused = await refusedDestination(url, context);
  if (refused) return { ok: false, error: `refused: ${refused}` };

  const started = performance.now();
  try {
    const response = await context.fetch(url, {
      method: "POST",
      headers: request.headers,
      body: request.body,
      redirect: "manual",
      signal: AbortSignal.timeout(request.timeout_ms),
    });
    const responseBody = await readCapped(response, MAX_RESPONSE_CHARS);
    const result = {
      response_status: response.status,
      response_body: responseBody,
      duration_ms: Math.round(performance.now() - started),
    };
    if (response.status >= 200 && response.status < 300) return { ok: true, result };
    return { ok: false, error: `the endpoint answered HTTP ${response.status}`, result };
  } catch (e) {
    const duration_ms = Math.round(performance.now() - started);
    const timedOut = e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError");
    return {
      ok: false,
      error: timedOut ? `no answer within ${request.timeout_ms} ms` : `the request failed: ${errorText(e)}`,
      result: { duration_ms },
    };
  }
}
