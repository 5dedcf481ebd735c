// TLS end to end, with certificates the test makes (openssl): the gateway's
// listener and admin listener over HTTPS (the real openai client trusting the
// test CA), an https:// backend (the simulator serving HTTPS) checked against
// its CA, and Redis over mutual TLS (redis-server's tls-port, a client
// certificate) deciding the limits. Then what must fail does: a plain-HTTP
// client or a silent one on the TLS port is closed and counted while others
// are served; a backend whose certificate is not signed by the configured CA,
// or does not name the host, is never used; and a missing file stops the
// gateway at start with the file's name.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { makeCerts } from "../lib/certs.mjs";
import { startSim, startGateway, startRedis, redisCli, stopAll, fetchJson, metric, metricIn, eventually, freePort, REPO_ROOT, LLMGATE_BIN } from "../lib/procs.mjs";

const dir = mkdtempSync(join(tmpdir(), "llmgate-tls-"));
const certs = makeCerts(dir);
after(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

// One HTTPS request trusting the test CA: {status, text, json}.
function httpsRequest(url, { method, body, headers = {}, ca = readFileSync(certs.ca) } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const req = https.request(
      url,
      { method: method || (data === undefined ? "GET" : "POST"), ca, headers: { ...(data ? { "content-type": "application/json" } : {}), ...headers }, agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => {
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, text, json });
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(20000, () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end(data);
  });
}

const httpsMetric = async (url, name, labels) => metricIn((await httpsRequest(`${url}/metrics`)).text, name, labels);
const toHttps = (url) => url.replace(/^http:/, "https:");
const chat = (content, extra = {}) => ({ model: "Qwen3-1.7B", messages: [{ role: "user", content }], max_tokens: 8, ...extra });

describe("TLS on every hop", () => {
  let sim, redis, gw, url, adminUrl;
  const KEY = "sk-tls-test";

  before(async () => {
    sim = await startSim({ args: ["--tls-cert", certs.cert, "--tls-key", certs.key] });
    const tlsPort = await freePort();
    // Both ports: the plain one is only for the test to look into Redis.
    redis = await startRedis({
      args: ["--tls-port", String(tlsPort), "--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "yes"],
    });
    gw = await startGateway(`listen: 127.0.0.1:0
workers: 2
server: {header_timeout: 1s, tls: {cert: "${certs.cert}", key: "${certs.key}"}}
health: {interval: 200ms}
backends:
  - {name: secure, url: "https://127.0.0.1:${sim.port}", models: [Qwen3-1.7B], tls: {ca: "${certs.ca}"}}
models:
  - {name: Qwen3-1.7B}
auth: {mode: required}
keys:
  - {key: "${KEY}", name: tls-key}
limits:
  store: redis
  rules:
    - {name: per-key, key: api_key, algorithm: fixed_window, limit: 6/minute}
redis: {url: "rediss://127.0.0.1:${tlsPort}", timeout: 500ms, on_failure: deny, tls: {ca: "${certs.ca}", cert: "${certs.clientCert}", key: "${certs.clientKey}"}}
admin: {listen: 127.0.0.1:0, token: admin-token}
`);
    url = toHttps(gw.url);
    adminUrl = toHttps(gw.adminUrl);
  });

  test("the real openai client talks HTTPS to the gateway, whole answers and streams", async () => {
    // The client trusts the test CA the way a user's would: NODE_EXTRA_CA_CERTS.
    const script = `
      import OpenAI from "openai";
      const client = new OpenAI({ baseURL: process.env.GW + "/v1", apiKey: process.env.KEY, maxRetries: 0 });
      const whole = await client.chat.completions.create({ model: "Qwen3-1.7B", messages: [{ role: "user", content: "hello over tls" }], max_tokens: 200 });
      const stream = await client.chat.completions.create({ model: "Qwen3-1.7B", messages: [{ role: "user", content: "stream over tls" }], max_tokens: 200, stream: true });
      let chunks = 0, text = "";
      for await (const c of stream) { chunks++; text += c.choices[0]?.delta?.content ?? ""; }
      console.log(JSON.stringify({ whole: whole.choices[0].message.content, chunks, text }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.ca, GW: url, KEY },
      timeout: 30000,
    });
    const out = JSON.parse(stdout.trim().split("\n").pop());
    assert.ok(out.whole.length > 0, "a whole answer came back");
    assert.ok(out.chunks > 2 && out.text.length > 0, `a stream came back in pieces (${out.chunks} chunks)`);
    assert.ok((await httpsMetric(url, "llmgate_tls_handshakes_total", { result: "ok" })) >= 2);
  });

  test("the backend is reached and health-checked over TLS", async () => {
    assert.ok((await httpsMetric(url, "llmgate_upstream_connections_opened_total", { backend: "secure" })) > 0);
    await eventually(async () => (await httpsMetric(url, "llmgate_health_checks_total", { backend: "secure", result: "pass" })) > 0, {
      what: "a health check passed over TLS",
    });
    assert.equal(await httpsMetric(url, "llmgate_health_checks_total", { backend: "secure", result: "fail" }), 0);
  });

  test("limits are decided in Redis over mutual TLS", async () => {
    // on_failure: deny — had Redis not answered over TLS, every request would be refused 503.
    const before = await httpsMetric(url, "llmgate_redis_decisions_total", { outcome: "redis" });
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await httpsRequest(`${url}/v1/chat/completions`, { body: chat(`count ${i}`), headers: { authorization: `Bearer ${KEY}` } })).status);
    // Two requests came before (the openai client's): 6 per minute leaves 4.
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
    assert.ok((await httpsMetric(url, "llmgate_redis_decisions_total", { outcome: "redis" })) >= before + 8);
    const keys = (await redisCli(redis.port, "--scan", "--pattern", "llmgate:*per-key*")).split("\n").filter(Boolean);
    assert.ok(keys.length > 0, "the rule's counter is in Redis");
  });

  test("the admin API is on HTTPS too", async () => {
    const r = await httpsRequest(`${adminUrl}/admin/status`, { headers: { authorization: "Bearer admin-token" } });
    assert.equal(r.status, 200);
    assert.equal(r.json.backends[0].name, "secure");
  });

  test("a plain-HTTP client and a silent one are closed and counted; others go on", async () => {
    const failedBefore = await httpsMetric(url, "llmgate_tls_handshakes_total", { result: "failed" });
    const port = Number(new URL(url).port);
    // Plain HTTP on the TLS port: no HTTP answer, the connection closes.
    const plain = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      let got = "";
      s.on("data", (d) => (got += d.toString("latin1")));
      s.on("connect", () => s.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
      s.on("close", () => resolve(got));
      s.on("error", () => {});
      s.setTimeout(15000, () => s.destroy());
    });
    assert.ok(!plain.startsWith("HTTP/"), "no plain HTTP answer on the TLS port");
    // A client that connects and never starts its handshake: closed at header_timeout (1 s), bounded here at 15 s.
    const started = Date.now();
    const silentClosed = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.on("close", () => resolve(true));
      s.on("error", () => {});
      s.setTimeout(15000, () => {
        s.destroy();
        resolve(false);
      });
    });
    assert.ok(silentClosed, `the silent client was closed (after ${Date.now() - started} ms)`);
    await eventually(async () => (await httpsMetric(url, "llmgate_tls_handshakes_total", { result: "failed" })) >= failedBefore + 2, {
      what: "both failed handshakes counted",
    });
    const ok = await httpsRequest(`${url}/healthz`);
    assert.equal(ok.status, 200, "the gateway still serves");
  });

  test("SIGTERM with TLS connections open: the gateway exits 0", async () => {
    const agent = new https.Agent({ keepAlive: true, ca: readFileSync(certs.ca) });
    await new Promise((resolve, reject) => https.get(`${url}/healthz`, { agent }, (res) => res.resume().on("end", resolve)).on("error", reject));
    const exit = await gw.stop(10000);
    agent.destroy();
    assert.deepEqual(exit, { code: 0, signal: null }, gw.output().stderr.slice(-4000));
  });
});

describe("a backend's certificate is checked", () => {
  const plainGateway = (tls) =>
    startSimAndGateway(tls).then(({ gw }) => gw);
  async function startSimAndGateway(tls) {
    const sim = await startSim({ args: ["--tls-cert", certs.cert, "--tls-key", certs.key] });
    const gw = await startGateway(`listen: 127.0.0.1:0
health: {interval: 200ms, unhealthy_threshold: 1}
retry: {max_attempts: 1}
backends:
  - {name: checked, url: "https://127.0.0.1:${sim.port}", models: [Qwen3-1.7B], tls: ${tls}}
models:
  - {name: Qwen3-1.7B}
`);
    return { sim, gw };
  }

  for (const [what, tls, reason] of [
    ["signed by another CA", `{ca: "${certs.otherCa}"}`, /certificate verify failed/i],
    ["naming another host", `{ca: "${certs.ca}", server_name: "wrong.example"}`, /certificate verify failed/i],
  ])
    test(`a backend ${what} is never used`, async () => {
      const gw = await plainGateway(tls);
      await eventually(async () => (await metric(gw.url, "llmgate_health_checks_total", { backend: "checked", result: "fail" })) > 0, {
        what: "a failed health check",
      });
      const r = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat("hello") });
      assert.ok([502, 503].includes(r.status), `refused, not served (${r.status} ${r.text})`);
      assert.equal(await metric(gw.url, "llmgate_health_checks_total", { backend: "checked", result: "pass" }), 0);
      await eventually(() => reason.test(gw.output().stderr + gw.output().stdout), { what: "the reason logged" });
      await gw.stop();
    });

  test("verify: false takes a certificate it cannot check (a lab backend)", async () => {
    const gw = await plainGateway("{verify: false}");
    const r = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat("hello") });
    assert.equal(r.status, 200, r.text);
    await gw.stop();
  });

  test("check --probe speaks TLS to an https:// backend, with the same checks", async () => {
    const sim = await startSim({ args: ["--tls-cert", certs.cert, "--tls-key", certs.key] });
    const file = join(dir, "probe.yaml");
    writeFileSync(file, `backends:
  - {name: trusted, url: "https://127.0.0.1:${sim.port}", kind: vllm, models: [Qwen3-1.7B], tls: {ca: "${certs.ca}"}}
  - {name: untrusted, url: "https://127.0.0.1:${sim.port}", kind: vllm, models: [Qwen3-1.7B], tls: {ca: "${certs.otherCa}"}}
`);
    const r = spawnSync(LLMGATE_BIN, ["check", "-c", file, "--probe"], { encoding: "utf8", timeout: 30000 });
    assert.match(r.stdout, /ok {3}trusted: https:.* serves Qwen3-1\.7B/, r.stdout + r.stderr);
    assert.match(r.stdout, /ok {3}trusted: metrics https:.*exposes vllm: metrics/, r.stdout);
    assert.match(r.stdout, /FAIL untrusted: .*certificate verify failed/i, r.stdout);
    assert.notEqual(r.status, 0);
    await sim.stop();
  });

  test("a certificate file that is not there stops the gateway at start, naming it", async () => {
    const listenerWith = (cert, key) => `listen: 127.0.0.1:0
server: {tls: {cert: "${cert}", key: "${key}"}}
backends:
  - {name: a, url: "http://127.0.0.1:9", models: [Qwen3-1.7B]}
models:
  - {name: Qwen3-1.7B}
`;
    const missing = join(dir, "no-such.crt");
    await assert.rejects(startGateway(listenerWith(missing, certs.key)), (e) => e.message.includes(missing) && /server\.tls\.cert/.test(e.message));
    // A key that is not the certificate's.
    await assert.rejects(startGateway(listenerWith(certs.cert, certs.clientKey)), (e) => /does not belong|key values mismatch/i.test(e.message));
  });
});

