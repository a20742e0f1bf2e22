/**
 * One HTTP request over a TCP connection to an address chosen beforehand (DNS pinning).
 *
 * The webhook runner resolves an endpoint's host, has SQL judge every address, and then must
 * send to an address it judged: a second lookup (as `fetch(url)` does) can be answered by the
 * endpoint's DNS with another address (rebinding: the metadata service, loopback, a private
 * network). So the connection is opened to the checked IP literal itself, while the request
 * keeps the URL's host name where it belongs: in the Host header, as TLS SNI, and as the name
 * the server's certificate must carry.
 *
 * Built on the node:http / node:https clients: they take the IP to connect to (`host`) apart
 * from the name TLS checks (`servername`) and the Host header. The host name is never handed
 * to anything that resolves names, so a runtime that ignored `servername` would fail the
 * certificate check (closed), never connect elsewhere. (Deno.createHttpClient's `tcp` proxy
 * transport does not fit: it sends the request in clear text, even for an https URL.)
 */
import { isIP } from "node:net";

export interface PinnedRequestInit {
  method: string;
  headers: Record<string, string>;
  body: string;
  /** Aborts the whole exchange (connect, send, answer); the error is the signal's reason. */
  signal: AbortSignal;
  /** The most of the answer's body that is read (characters); the rest is not waited for. */
  maxBodyChars: number;
}

export interface PinnedResponse {
  status: number;
  /** The start of the answer's body, at most `maxBodyChars` characters. */
  body: string;
}

/**
 * Sends a request for `url` over a connection to `address` (an IP literal that was checked).
 * The connection is closed when the promise settles, whatever the outcome.
 */
export type PinnedRequest = (url: URL, address: string, init: PinnedRequestInit) => Promise<PinnedResponse>;

/** The runtime has no HTTP client that can be pinned to an address: nothing was sent. */
export class PinningUnavailable extends Error {
  override name = "PinningUnavailable";
}

type NodeClients = {
  http: typeof import("node:http");
  https: typeof import("node:https");
};

export interface PinnedRequestOptions {
  /** More root certificates (PEM) to trust, e.g. a local test server's; unset, the runtime's roots. */
  caCerts?: string[];
  /** Loads the node:http and node:https clients; default the runtime's. */
  load?: () => Promise<NodeClients>;
}

const loadNodeClients = async (): Promise<NodeClients> => {
  const [http, https] = await Promise.all([import("node:http"), import("node:https")]);
  return { http, https };
};

/** The port a URL means: its own, else the scheme's default. */
export function portOf(url: URL): number {
  return Number(url.port || (url.protocol === "https:" ? 443 : 80));
}

export function createPinnedRequest(options: PinnedRequestOptions = {}): PinnedRequest {
  const load = options.load ?? loadNodeClients;
  let clients: Promise<NodeClients> | null = null;
  return async (url, address, init) => {
    if (!isIP(address)) throw new TypeError(`a pinned request needs an IP address, got "${address}"`);
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new TypeError(`only http and https can be sent, not ${url.protocol}`);
    }
    clients ??= load();
    let client;
    try {
      const loaded = await clients;
      client = url.protocol === "https:" ? loaded.https : loaded.http;
      if (typeof client?.request !== "function") throw new Error("no request function");
    } catch (e) {
      clients = null;
      throw new PinningUnavailable(
        `this runtime has no node:http / node:https client to connect to the checked address (${
          e instanceof Error ? e.message : String(e)
        })`,
      );
    }
    init.signal.throwIfAborted();
    const name = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const body = new TextEncoder().encode(init.body);
    return await new Promise<PinnedResponse>((resolve, reject) => {
      const request = client.request({
        host: address,
        family: isIP(address),
        port: portOf(url),
        method: init.method,
        path: `${url.pathname}${url.search}`,
        headers: { ...init.headers, host: url.host, "content-length": String(body.byteLength) },
        agent: false,
        // TLS: SNI and the certificate check use the URL's name (an IP-literal URL is checked as its IP).
        ...(url.protocol === "https:"
          ? { servername: isIP(name) ? undefined : name, ca: options.caCerts, rejectUnauthorized: true }
          : {}),
      });
      let settled = false;
      const settle = (done: () => void) => {
        if (settled) return;
        settled = true;
        init.signal.removeEventListener("abort", onAbort);
        request.destroy();
        done();
      };
      const onAbort = () => settle(() => reject(init.signal.reason));
      init.signal.addEventListener("abort", onAbort, { once: true });
      request.on("error", (e) => settle(() => reject(e)));
      request.on("close", () => settle(() => reject(new Error("the connection closed before an answer"))));
      request.on("response", (response) => {
        const status = response.statusCode ?? 0;
        let text = "";
        const answer = () => settle(() => resolve({ status, body: text.slice(0, init.maxBodyChars) }));
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          text += chunk;
          if (text.length >= init.maxBodyChars) answer();
        });
        response.on("end", answer);
        response.on("error", (e) => settle(() => reject(e)));
      });
      request.end(body);
    });
  };
}

/** The runtime's pinned request. */
export const pinnedRequest: PinnedRequest = createPinnedRequest();
