/**
 * Story: Mallory registers a webhook endpoint on a host name whose DNS she controls. She answers
 * the dispatcher's address check with a public address and any later lookup with the cloud
 * metadata address (169.254.169.254) or loopback: DNS rebinding. The delivery must go to the
 * address that was checked, never to an address looked up again.
 *
 * Two kinds of proof:
 * - With an injected transport (PinnedRequest) the tests see which address each delivery is
 *   pinned to, and how often the resolver was asked.
 * - With the real transport and real local servers the bytes are seen arriving: the endpoint's
 *   host name (`hooks.mallory.invalid`) resolves nowhere, so they can only arrive through the
 *   connection pinned to the checked address. Local servers are loopback, which the address
 *   policy refuses unless webhook_allow_loopback is on, as in local development; the tests
 *   turn it on and stand 127.0.0.1 in for a public address and 127.0.0.2 for the metadata one.
 */
import { createDb, type Sql } from "../_shared/db.ts";
import { dispatch, type DispatchDeps } from "../dispatch/handler.ts";
import { createPinnedRequest, type PinnedRequest } from "../dispatch/pinned_request.ts";
import { assert, assertEquals, assertMatch } from "./_support/assert.ts";
import { TEST_DB_URL } from "./_support/tokens.ts";
import { HOOKS_CERT, HOOKS_KEY } from "./_support/tls_fixture.ts";

const MALLORY_HOST = "hooks.mallory.invalid";
const PUBLIC_ADDRESS = "93.184.215.14";
const METADATA_ADDRESS = "169.254.169.254";

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------
interface Mallory {
  sql: Sql;
  accountId: string;
  endpointId: string;
  /** Points the endpoint at `url` (as if it had been changed after creation) and emits one event. */
  emit(url: string): Promise<void>;
  /** Runs the due deliveries with these dependencies. */
  deliver(deps?: Partial<DispatchDeps>): Promise<void>;
  /** The newest delivery of the endpoint. */
  lastDelivery(): Promise<{ status: string; last_error: string | null; response_status: number | null }>;
}

async function withMallory(fn: (m: Mallory) => Promise<void>): Promise<void> {
  const sql = createDb(TEST_DB_URL, { max: 1 });
  const accountId = crypto.randomUUID();
  try {
    await sql`update private.settings set value = 'true' where key = 'webhook_allow_loopback'`;
    await sql`update private.settings set value = '2' where key = 'webhook_timeout_seconds'`;
    await sql`
      insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                              raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      values ('00000000-0000-0000-0000-000000000000', ${accountId}, 'authenticated', 'authenticated',
              ${`mallory-${accountId}@example.test`}, '', now(), '{"provider": "email"}', '{}', now(), now())`;
    const [row] = await sql`
      select public.create_webhook_endpoint(${accountId}::uuid, 'https://hooks.example.com/in', '{*}') as e`;
    const endpointId: string = row.e.id;
    await fn({
      sql,
      accountId,
      endpointId,
      emit: async (url) => {
        await sql`update public.webhook_endpoints set url = ${url} where id = ${endpointId}`;
        await sql`select private.emit_event(${accountId}::uuid, 'credits.low', '{}')`;
      },
      deliver: async (deps = {}) => void (await dispatch(sql, { kinds: ["webhook.deliver"], ...deps })),
      lastDelivery: async () => {
        const [d] = await sql`
          select status, last_error, response_status from public.webhook_deliveries
          where endpoint_id = ${endpointId} order by created_at desc, id desc limit 1`;
        return d as { status: string; last_error: string | null; response_status: number | null };
      },
    });
  } finally {
    await sql`update private.settings set value = 'false' where key = 'webhook_allow_loopback'`;
    await sql`update private.settings set value = '10' where key = 'webhook_timeout_seconds'`;
    await sql`delete from private.jobs where kind = 'webhook.deliver'`;
    await sql`delete from auth.users where id = ${accountId}`;
    await sql.end();
  }
}

/** Mallory's DNS: the first answer for A is `first`, every later one `later`; no AAAA. It counts the questions. */
function rebindingDns(first: string, later: string) {
  const asked: string[] = [];
  let answeredA = 0;
  const resolveDns = (host: string, type: "A" | "AAAA") => {
    asked.push(`${type} ${host}`);
    if (host !== MALLORY_HOST || type === "AAAA") return Promise.resolve([]);
    return Promise.resolve([answeredA++ === 0 ? first : later]);
  };
  return { asked, resolveDns };
}

/** A transport that records where each request was pinned and answers 200. */
function recordingTransport() {
  const pinned: Array<{ url: string; address: string; host: string }> = [];
  const pinnedRequest: PinnedRequest = (url, address, init) => {
    pinned.push({ url: url.href, address, host: url.host });
    assertEquals(init.method, "POST");
    return Promise.resolve({ status: 200, body: "ok" });
  };
  return { pinned, pinnedRequest };
}

interface Hit {
  host: string | null;
  body: string;
  /** The local address the request arrived at. */
  at: string;
}

/** A local HTTP(S) server on `hostname` that records what arrives and answers `answer()` (200 "thanks"). */
function listen(
  hostname: string,
  port = 0,
  tls?: { cert: string; key: string },
  answer = () => new Response("thanks"),
) {
  const hits: Hit[] = [];
  const server = Deno.serve({ hostname, port, onListen: () => {}, ...tls }, async (request) => {
    hits.push({ host: request.headers.get("host"), body: await request.text(), at: hostname });
    return answer();
  });
  return { hits, port: server.addr.port, close: () => server.shutdown() };
}

// ---------------------------------------------------------------------------
// Stories
// ---------------------------------------------------------------------------
Deno.test("Mallory's endpoint answers the check with a public address and the delivery with the metadata address: the request goes to the checked one", async () => {
  await withMallory(async (m) => {
    const dns = rebindingDns(PUBLIC_ADDRESS, METADATA_ADDRESS);
    const transport = recordingTransport();
    await m.emit(`https://${MALLORY_HOST}/in`);
    await m.deliver({ resolveDns: dns.resolveDns, pinnedRequest: transport.pinnedRequest });

    assertEquals(
      transport.pinned,
      [{ url: `https://${MALLORY_HOST}/in`, address: PUBLIC_ADDRESS, host: MALLORY_HOST }],
      "one request, pinned to the address that was checked; the URL (Host, SNI) keeps the name",
    );
    assertEquals(dns.asked, [`A ${MALLORY_HOST}`, `AAAA ${MALLORY_HOST}`], "one lookup per delivery, none after it");
    assertEquals((await m.lastDelivery()).status, "delivered");

    // The next delivery looks the name up again, gets the metadata address, and is refused.
    await m.emit(`https://${MALLORY_HOST}/in`);
    await m.deliver({ resolveDns: dns.resolveDns, pinnedRequest: transport.pinnedRequest });
    const refused = await m.lastDelivery();
    assert(
      refused.last_error?.startsWith("refused: ") && refused.last_error.includes(METADATA_ADDRESS),
      refused.last_error!,
    );
    assertEquals(transport.pinned.length, 1, "nothing was sent for the refused delivery");
  });
});

Deno.test("an IP-literal URL is pinned to itself and DNS is never asked", async () => {
  await withMallory(async (m) => {
    const dns = rebindingDns(PUBLIC_ADDRESS, METADATA_ADDRESS);
    const transport = recordingTransport();
    await m.emit(`https://${PUBLIC_ADDRESS}:8443/in`);
    await m.deliver({ resolveDns: dns.resolveDns, pinnedRequest: transport.pinnedRequest });
    await m.emit("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/in");
    await m.deliver({ resolveDns: dns.resolveDns, pinnedRequest: transport.pinnedRequest });
    assertEquals(transport.pinned.map((p) => p.address), [PUBLIC_ADDRESS, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]);
    assertEquals(dns.asked, [], "an address needs no lookup");
  });
});

Deno.test("the bytes arrive through the pinned connection, for a host name no resolver knows", async () => {
  await withMallory(async (m) => {
    // 127.0.0.1 stands for Mallory's public server, 127.0.0.2 on the same port for the metadata service.
    const endpoint = listen("127.0.0.1");
    const metadata = listen("127.0.0.2", endpoint.port);
    try {
      const dns = rebindingDns("127.0.0.1", "127.0.0.2");
      const url = `http://${MALLORY_HOST}:${endpoint.port}/in`;
      await m.emit(url);
      await m.deliver({ resolveDns: dns.resolveDns });
      const d = await m.lastDelivery();
      assertEquals([d.status, d.response_status, d.last_error], ["delivered", 200, null]);
      assertEquals(endpoint.hits.length, 1, "the checked address received the delivery");
      assertEquals(endpoint.hits[0].host, `${MALLORY_HOST}:${endpoint.port}`, "with the URL's host name as Host");
      assertEquals(JSON.parse(endpoint.hits[0].body).type, "credits.low");
      assertEquals(metadata.hits, [], "the address of a later lookup received nothing");
    } finally {
      await endpoint.close();
      await metadata.close();
    }
  });
});

Deno.test("Mallory's endpoint redirects to the metadata address: the redirect is not followed and the delivery fails", async () => {
  await withMallory(async (m) => {
    const metadata = listen("127.0.0.2");
    const endpoint = listen(
      "127.0.0.1",
      0,
      undefined,
      () =>
        new Response(null, {
          status: 307,
          headers: { location: `http://127.0.0.2:${metadata.port}/latest/meta-data` },
        }),
    );
    try {
      await m.emit(`http://${MALLORY_HOST}:${endpoint.port}/in`);
      await m.deliver({ resolveDns: rebindingDns("127.0.0.1", "127.0.0.2").resolveDns });
      const d = await m.lastDelivery();
      assertEquals([d.status, d.response_status, d.last_error], ["pending", 307, "the endpoint answered HTTP 307"]);
      assertEquals(endpoint.hits.length, 1);
      assertEquals(metadata.hits, [], "the redirect target received nothing");
    } finally {
      await endpoint.close();
      await metadata.close();
    }
  });
});

Deno.test("https: the connection goes to the checked address, TLS checks the certificate against the URL's host name", async () => {
  await withMallory(async (m) => {
    const endpoint = listen("127.0.0.1", 0, { cert: HOOKS_CERT, key: HOOKS_KEY });
    try {
      const dns = rebindingDns("127.0.0.1", "127.0.0.2");
      // The real transport, trusting the test certificate in addition to the system's roots.
      const pinnedRequest = createPinnedRequest({ caCerts: [HOOKS_CERT] });
      await m.emit(`https://${MALLORY_HOST}:${endpoint.port}/in`);
      await m.deliver({ resolveDns: dns.resolveDns, pinnedRequest });
      const d = await m.lastDelivery();
      assertEquals([d.status, d.response_status, d.last_error], ["delivered", 200, null]);
      assertEquals(endpoint.hits.map((h) => h.host), [`${MALLORY_HOST}:${endpoint.port}`]);

      // The same address under another name: the certificate does not match the name, nothing is sent.
      const anyNameIsLocal = (_host: string, type: "A" | "AAAA") => Promise.resolve(type === "A" ? ["127.0.0.1"] : []);
      await m.emit(`https://other.invalid:${endpoint.port}/in`);
      await m.deliver({ resolveDns: anyNameIsLocal, pinnedRequest });
      const refused = await m.lastDelivery();
      assertEquals(refused.status, "pending");
      assertMatch(refused.last_error ?? "", /^the request failed: .*other\.invalid/);
      assertEquals(endpoint.hits.length, 1, "no request over a connection whose certificate names another host");
    } finally {
      await endpoint.close();
    }
  });
});

Deno.test("the connection is closed after every delivery: answered, failed or timed out", async () => {
  await withMallory(async (m) => {
    // A raw server that answers with keep-alive (or not at all), so only the dispatcher can close the connection.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const answers = [
      "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
      "HTTP/1.1 500 Boom\r\ncontent-length: 4\r\n\r\nboom",
      null,
    ];
    const connections: Array<{ closedByPeer: Promise<void>; conn: Deno.Conn }> = [];
    // Ends when every answer is given, or when the listener is closed after a failure.
    const serving = (async () => {
      for (const answer of answers) {
        const conn = await listener.accept();
        const buffer = new Uint8Array(64 * 1024);
        await conn.read(buffer);
        if (answer) await conn.write(new TextEncoder().encode(answer));
        // Resolves when the dispatcher closes its end (EOF or reset).
        const closedByPeer = (async () => {
          try {
            while ((await conn.read(buffer)) !== null) { /* drain */ }
          } catch { /* reset */ }
        })();
        connections.push({ closedByPeer, conn });
      }
    })().catch(() => {});
    try {
      await m.sql`update private.settings set value = '0.5' where key = 'webhook_timeout_seconds'`;
      for (let i = 0; i < answers.length; i++) {
        await m.emit(`http://${MALLORY_HOST}:${port}/in`);
        await m.deliver({ resolveDns: rebindingDns("127.0.0.1", "127.0.0.2").resolveDns });
        const d = await m.lastDelivery();
        assertEquals(connections.length, i + 1, `delivery ${i + 1} connected (${d.last_error})`);
        // Bounded wait, so a leaked connection fails the test instead of hanging it.
        const open = Symbol("open");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const outcome = await Promise.race([
          connections[i].closedByPeer,
          new Promise((resolve) => timer = setTimeout(() => resolve(open), 5_000)),
        ]);
        clearTimeout(timer);
        assert(outcome !== open, `delivery ${i + 1} left its connection open`);
      }
      await serving;
      const errors = await m.sql`
        select last_error from public.webhook_deliveries where endpoint_id = ${m.endpointId} order by created_at, id`;
      assertEquals(errors.map((e) => e.last_error), [
        null,
        "the endpoint answered HTTP 500",
        "no answer within 500 ms",
      ]);
    } finally {
      for (const { conn } of connections) conn.close();
      listener.close();
    }
  });
});

Deno.test("a runtime without an HTTP client that can be pinned refuses with pinning_unavailable and sends nothing", async () => {
  await withMallory(async (m) => {
    const endpoint = listen("127.0.0.1");
    try {
      const dns = rebindingDns("127.0.0.1", "127.0.0.2");
      // As on an older edge runtime: the node:http / node:https clients cannot be loaded.
      const pinnedRequest = createPinnedRequest({ load: () => Promise.reject(new Error("Module not found")) });
      await m.emit(`http://${MALLORY_HOST}:${endpoint.port}/in`);
      await m.deliver({ resolveDns: dns.resolveDns, pinnedRequest });
      const d = await m.lastDelivery();
      assertEquals(d.status, "pending", "retried later, as any refusal");
      assertMatch(d.last_error ?? "", /^refused: pinning_unavailable: /);
      assertEquals(endpoint.hits, [], "no unpinned request was made instead");
    } finally {
      await endpoint.close();
    }
  });
});
