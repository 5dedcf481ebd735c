// Faults under load: a mixed streaming and non-streaming load runs through one
// gateway (limits in a real Redis, two simulators, one behind a fault proxy)
// while, phase by phase, a backend is SIGKILLed mid-stream and restarted, is
// frozen (SIGSTOP) and thawed, hangs, answers garbage, refuses connections;
// Redis is killed and restarted; the config is reloaded (SIGHUP, the admin API,
// an invalid file); and at the end the gateway gets SIGTERM under load.
//
// After each phase, from the metrics and by probing: no request is in flight,
// nothing is held at a backend or waits in its line, every client connection
// closes, and each key's concurrency slots are all free again (4 streams of a
// key are admitted, the fifth is refused). Throughout: no request runs past
// its bound, no connection breaks under a client, no stream is cut without an
// error event, and every request is in the access log — every failure logged
// as failed and counted in llmgate_requests_total.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnLlmgate, startSim, startGateway, startRedis, redisCli, stopAll, fetchJson, metric, eventually, readSSE } from "../lib/procs.mjs";
import { startFaultProxy } from "../lib/fault_proxy.mjs";
import { startLoad, failuresOf } from "../lib/load.mjs";

// What lives in this process (the fault proxy's server, load loops) goes too,
// also when an assertion fails half-way: left open, it would keep the test
// file from ever exiting.
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await stopAll();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const KEYS = ["sk-fault-one", "sk-fault-two", "sk-fault-three"];
const CONCURRENCY = 4;
const SIM_ARGS = ["--answer-tokens", "24", "--thinking-tokens", "8"];

function simOn(port) {
  return spawnLlmgate(["sim", "--host", "127.0.0.1", "--port", String(port), "--model", "Qwen3-1.7B", "--profile", "default", ...SIM_ARGS], {
    name: `sim(:${port})`,
  });
}

function configText({ simA, proxyB, redis, accessLog, globalLimit = "100000/minute", broken = false }) {
  return `listen: 127.0.0.1:0
workers: 2
access_log: ${accessLog}
server: {idle_timeout: 1s, drain_timeout: 10s}
upstream: {connect_timeout: 1s, first_token_timeout: 2s, idle_timeout: 2s, total_timeout: 15s}
breaker: {failure_threshold: 3, recovery_timeout: 1s}
health: {interval: 300ms, timeout: 1s, unhealthy_threshold: 2, healthy_threshold: 1}
retry: {budget_min_per_second: 50}
backends:
  - {name: a, url: "${simA.url}", models: [Qwen3-1.7B], max_in_flight: 16, queue: {max: 16, timeout: 2s}}
  - {name: b, url: "${proxyB.url}", models: [Qwen3-1.7B], max_in_flight: 16, queue: {max: 16, timeout: 2s}}
models:
  - {name: Qwen3-1.7B}
auth: {mode: required}
keys:
${KEYS.map((k, i) => `  - {key: "${k}", name: key-${i}}`).join("\n")}
limits:
  store: redis
  rules:
    - {name: parallel, key: api_key, algorithm: concurrency, limit: ${CONCURRENCY}}
    - {name: fleet, key: global, algorithm: sliding_window, limit: ${globalLimit}}
redis: {url: "${redis.url}", timeout: 50ms, connect_timeout: 200ms}
admin: {listen: 127.0.0.1:0, token: "\${FAULT_ADMIN_TOKEN}"}
${broken ? "limits: [this is not valid" : ""}
`;
}

// Every key's slots are free: CONCURRENCY streams of the key are admitted and
// held open, the next one is refused 429 by the concurrency rule.
async function assertSlotsFree(url, key, redisPort) {
  const open = [];
  try {
    for (let i = 0; i < CONCURRENCY; i++) {
      const abort = new AbortController();
      const res = await fetch(`${url}/v1/chat/completions`, {
        signal: abort.signal,
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        // ignore_eos (vLLM's): exactly max_tokens tokens, ~6 s, so the stream holds its slot however slow the
        // probing is (a sanitizer build) — the simulator's answers are otherwise 32 tokens, half a second.
        body: JSON.stringify({ model: "Qwen3-1.7B", messages: [{ role: "user", content: "hold" }], max_tokens: 400, ignore_eos: true, stream: true }),
      });
      assert.equal(res.status, 200, `${key}: stream ${i + 1} of ${CONCURRENCY} admitted (${res.status} ${res.status === 200 ? "" : await res.text()})`);
      const events = readSSE(res);
      await events.next(); // its first event: it holds its slot now
      open.push(abort);
    }
    const extra = await fetchJson(`${url}/v1/chat/completions`, {
      body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "one more" }], max_tokens: 4 },
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(extra.status, 429, `${key}: the ${CONCURRENCY + 1}th at once is refused`);
    assert.match(extra.json.error.message, /parallel/);
  } finally {
    for (const abort of open) abort.abort(); // the client leaves: each slot must come back
  }
  // The gateway learns of the leaving clients at its next write; the load of
  // the next phase starts only once they are gone.
  await eventually(async () => (await metric(url, "llmgate_requests_in_flight")) === 0, { timeoutMs: 10000, what: `${key}: the probes' requests ended` });
  await eventually(async () => (await leasesHeld(redisPort)) === 0, { timeoutMs: 10000, what: `${key}: the probes' leases removed from Redis` });
}

// Concurrency leases in Redis (one sorted-set member per request in flight), over every key.
async function leasesHeld(port) {
  const keys = (await redisCli(port, "--scan", "--pattern", "llmgate:*parallel*")).split("\n").filter(Boolean);
  let n = 0;
  for (const k of keys) n += Number(await redisCli(port, "ZCARD", k));
  return n;
}

async function assertNothingLeft(gw, what) {
  await eventually(async () => (await metric(gw.url, "llmgate_requests_in_flight")) === 0, { timeoutMs: 10000, what: `${what}: no request in flight` });
  await eventually(async () => (await metric(gw.url, "llmgate_backend_in_flight")) === 0, { timeoutMs: 10000, what: `${what}: nothing held at a backend` });
  assert.equal(await metric(gw.url, "llmgate_backend_queue_length"), 0, `${what}: no one waits in a backend's line`);
  await eventually(async () => (await metric(gw.url, "llmgate_connections_open")) <= 1, { timeoutMs: 10000, what: `${what}: every client connection closed` });
}

test("faults under load: nothing hangs, leaks or goes unlogged", { timeout: 300000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "llmgate-faults-"));
  const accessLog = join(dir, "access.log");
  let redis = await startRedis();
  let simA = await startSim({ profile: "default", args: SIM_ARGS });
  const simB = await startSim({ profile: "default", args: SIM_ARGS });
  const proxyB = await startFaultProxy(simB.port);
  cleanups.push(() => proxyB.stop());
  const env = { FAULT_ADMIN_TOKEN: "admin-secret-for-faults" };
  const gw = await startGateway(configText({ simA, proxyB, redis, accessLog }), { env });
  assert.ok(gw.adminUrl, "the admin listener's address is printed");
  const admin = (path, method = "GET") => fetchJson(`${gw.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${env.FAULT_ADMIN_TOKEN}` } });
  const fleetLimit = async () => (await admin("/admin/status")).json.rules.find((r) => r.name === "fleet").limit;

  const total = { sent: 0, answered: 0, failures: 0 };
  // Both backends take requests again: healthy, and no breaker open. A
  // breaker whose last failure came as the load ended stays half-open until
  // the next request is its probe (the slot probes that follow are), so
  // half-open counts as back.
  const backToNormal = async () => {
    let last;
    try {
      await eventually(
        async () => {
          last = (await admin("/admin/status")).json?.backends;
          return last?.every((b) => b.healthy && b.breaker !== "open");
        },
        { timeoutMs: 30000, what: "both backends healthy with no breaker open" },
      );
    } catch (e) {
      throw new Error(`${e.message}: ${JSON.stringify(last)}`);
    }
  };

  // Backend b misbehaves for `ms` under load; the gateway must have met it.
  const proxyFault = async (mode, ms) => {
    const before = proxyB.counts[mode] || 0;
    await sleep(500);
    await proxyB.setMode(mode);
    await sleep(ms);
    await proxyB.setMode("pass");
    if (mode !== "refuse") assert.ok(proxyB.counts[mode] > before, `the gateway met the ${mode} backend`);
    await sleep(1000);
  };

  const phases = [
    ["baseline", async () => sleep(1500)],
    [
      "a backend SIGKILLed mid-stream, then restarted",
      async () => {
        await sleep(800);
        const port = simA.port;
        process.kill(simA.pid, "SIGKILL");
        await simA.exited;
        await sleep(1500);
        simA = await simOn(port);
        await sleep(1000);
      },
    ],
    [
      "a backend frozen (SIGSTOP) for 3 s, then thawed",
      async () => {
        await sleep(500);
        process.kill(simA.pid, "SIGSTOP");
        await sleep(3000);
        process.kill(simA.pid, "SIGCONT");
        await sleep(1000);
      },
    ],
    ["a backend that accepts and never answers", () => proxyFault("hang", 3000)],
    ["a backend answering garbage", () => proxyFault("garbage", 3000)],
    ["a backend refusing connections", () => proxyFault("refuse", 2000)],
    [
      "Redis killed, then restarted",
      async () => {
        await sleep(500);
        const fallbacksBefore = await metric(gw.url, "llmgate_redis_decisions_total", { outcome: "local" });
        redis = await (async () => {
          const port = redis.port;
          await redis.stop();
          await sleep(2000);
          const again = await redis.restart();
          assert.equal(again.port, port);
          return again;
        })();
        assert.ok((await metric(gw.url, "llmgate_redis_decisions_total", { outcome: "local" })) > fallbacksBefore, "decided locally while Redis was down");
        await eventually(async () => (await metric(gw.url, "llmgate_redis_up")) === 1, { timeoutMs: 10000, what: "Redis up again" });
        await sleep(1000);
      },
    ],
    [
      "the config reloaded under load: SIGHUP, the admin API, an invalid file",
      async () => {
        const okBefore = await metric(gw.url, "llmgate_config_reloads_total", { result: "ok" });
        const refusedBefore = await metric(gw.url, "llmgate_config_reloads_total", { result: "refused" });
        await sleep(300);
        writeFileSync(gw.configPath, configText({ simA, proxyB, redis, accessLog, globalLimit: "200000/minute" }));
        process.kill(gw.pid, "SIGHUP");
        await eventually(async () => (await metric(gw.url, "llmgate_config_reloads_total", { result: "ok" })) > okBefore, { what: "the SIGHUP reload" });
        await sleep(500);
        writeFileSync(gw.configPath, configText({ simA, proxyB, redis, accessLog, globalLimit: "300000/minute" }));
        const before = await fleetLimit();
        assert.equal((await admin("/admin/reload", "POST")).status, 200);
        const inForce = await fleetLimit();
        assert.notEqual(inForce, before, "the admin reload took the new limit");
        await sleep(500);
        writeFileSync(gw.configPath, configText({ simA, proxyB, redis, accessLog, broken: true }));
        process.kill(gw.pid, "SIGHUP");
        await eventually(async () => (await metric(gw.url, "llmgate_config_reloads_total", { result: "refused" })) > refusedBefore, { what: "the invalid file refused" });
        assert.equal(await fleetLimit(), inForce, "the last valid config stays in force");
        writeFileSync(gw.configPath, configText({ simA, proxyB, redis, accessLog, globalLimit: "300000/minute" }));
        await sleep(500);
      },
    ],
  ];

  for (const [what, fault] of phases) {
    const load = startLoad(gw.url, { clients: 6, keys: KEYS, boundMs: 20000 });
    cleanups.push(() => load.stop());
    await fault();
    const s = await load.stop();
    console.log(`${what}: ${JSON.stringify({ ...s, samples: s.samples.slice(0, 5) })}`);
    total.sent += s.sent;
    total.answered += s.answered;
    total.failures += failuresOf(s);
    assert.equal(s.overBound, 0, `${what}: no request ran past its bound`);
    assert.equal(s.networkErrors, 0, `${what}: every request got an answer`);
    assert.equal(s.bodyErrors, 0, `${what}: no stream or body broke without an error event`);
    for (const status of Object.keys(s.byStatus).map(Number))
      assert.ok([200, 502, 503, 504].includes(status), `${what}: status ${status} (a 429 would mean a leaked concurrency slot)`);
    if (what === "baseline") assert.deepEqual(s.byStatus, { 200: s.sent }, "baseline: every request succeeds");
    assert.ok(s.sent >= 10, `${what}: load ran (${s.sent} requests)`);
    await assertNothingLeft(gw, what);
    await backToNormal();
    assert.equal(await leasesHeld(redis.port), 0, `${what}: no concurrency lease left in Redis`);
    for (const key of KEYS) await assertSlotsFree(gw.url, key, redis.port);
    total.sent += KEYS.length * (CONCURRENCY + 1);
    total.answered += KEYS.length * (CONCURRENCY + 1);
  }

  // Every request so far is counted once, and every failure as failed.
  const counted = await metric(gw.url, "llmgate_requests_total");
  assert.equal(counted, total.answered, "llmgate_requests_total counts every request answered");
  assert.equal(await metric(gw.url, "llmgate_requests_total", { outcome: "failed" }), total.failures, "every failure counted as failed");

  // SIGTERM under load: what was admitted finishes, then the gateway exits 0.
  const load = startLoad(gw.url, { clients: 6, keys: KEYS, boundMs: 20000 });
  cleanups.push(() => load.stop());
  await sleep(800);
  process.kill(gw.pid, "SIGTERM");
  const exit = await gw.exited;
  const s = await load.stop();
  if (exit.code !== 0) writeFileSync(join(dir, "gateway.stderr"), gw.output().stderr); // the whole sanitizer report, kept with the access log
  console.log(`SIGTERM under load: ${JSON.stringify({ ...s, samples: s.samples.slice(0, 5) })}`);
  assert.deepEqual(exit, { code: 0, signal: null }, `the gateway drains and exits 0 (under ASan, with no report): ${gw.output().stderr.slice(-6000)}`);
  assert.equal(s.bodyErrors, 0, "SIGTERM: no admitted stream was cut");
  assert.equal(s.overBound, 0);
  assert.deepEqual(Object.keys(s.byStatus), ["200"], "SIGTERM: every request the gateway took was served");
  total.sent += s.sent;
  total.answered += s.answered;
  total.failures += failuresOf(s);

  // The access log has one line per answered request; the failed ones say so.
  assert.ok(existsSync(accessLog));
  const lines = readFileSync(accessLog, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, total.answered, "one access-log line per request answered");
  assert.equal(lines.filter((l) => l.outcome === "failed").length, total.failures, "every failure logged as failed");
  for (const l of lines) assert.ok(!JSON.stringify(l).includes("sk-fault"), "no API key in the access log");
  console.log(`faults: ${total.sent} requests sent, ${total.answered} answered, ${total.failures} failed; access log ${lines.length} lines`);

  await Promise.all([simA.stop(), simB.stop(), proxyB.stop(), redis.stop()]);
  rmSync(dir, { recursive: true, force: true });
});
