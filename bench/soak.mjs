#!/usr/bin/env node
// The soak: a mixed streaming and non-streaming load through one gateway for
// a long time (10 minutes by default), with a fault on a timer, while the
// gateway's memory is sampled every 5 s. At the end: was its memory flat
// after warm-up, and did nothing leak (requests in flight, backend slots,
// queue entries, client connections, concurrency leases), and is every
// request in the access log?
//
//   node bench/soak.mjs [--seconds 600] [--clients 8] [--fault-every 20] [--json FILE]
//   make soak                       (the same, 10 minutes)
//
// The stack: a real redis-server (limits.store: redis, a concurrency rule per
// API key), two `llmgate sim --profile default`, one behind the fault proxy of
// tests/lib; LLMGATE_BIN picks the gateway binary (default build/llmgate).
// The faults, in turn: backend b hangs, answers garbage, refuses; backend a is
// frozen (SIGSTOP) and thawed; Redis is killed and restarted; the config is
// reloaded (SIGHUP). Exit status 0 when every check passed.
//
// Every request asks something new, so the response cache (on, as by
// default) keeps an answer per request until its bound: max_entries is set to
// 1000 here so that it fills during warm-up (at the default 10000 it takes
// about 8 minutes at this load, ~3 KiB each, and memory grows until then by
// design).
//
// Memory is judged only on runs of at least 5 minutes: it is "flat" when the
// mean RSS of the last fifth of the run exceeds the mean of the fifth after
// warm-up (the first fifth) by less than max(4 MiB, 5%).
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startSim, startGateway, startRedis, redisCli, stopAll, metric, eventually } from "../tests/lib/procs.mjs";
import { startFaultProxy } from "../tests/lib/fault_proxy.mjs";
import { startLoad, failuresOf } from "../tests/lib/load.mjs";

const { values: opt } = parseArgs({
  options: {
    seconds: { type: "string", default: "600" },
    clients: { type: "string", default: "8" },
    "fault-every": { type: "string", default: "20" },
    json: { type: "string" },
  },
});
const SECONDS = Number(opt.seconds);
const CLIENTS = Number(opt.clients);
const FAULT_EVERY_MS = Number(opt["fault-every"]) * 1000;
const KEYS = ["sk-soak-1", "sk-soak-2", "sk-soak-3", "sk-soak-4"];
// Two more than the load itself holds per key: a lease being removed behind
// an admission that timed out (redis.timeout) or a release still on its way
// may be counted for a moment; a 429 then means slots that stay taken.
const CONCURRENCY = Math.ceil(CLIENTS / KEYS.length) + 2;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const log = (s) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

const dir = mkdtempSync(join(tmpdir(), "llmgate-soak-"));
const accessLog = join(dir, "access.log");
let redis = await startRedis();
const simA = await startSim({ profile: "default", args: ["--answer-tokens", "24"] });
const simB = await startSim({ profile: "default", args: ["--answer-tokens", "24"] });
const proxyB = await startFaultProxy(simB.port);
const config = (limit) => `listen: 127.0.0.1:0
workers: 2
access_log: ${accessLog}
server: {idle_timeout: 1s}
cache: {max_entries: 1000}
upstream: {connect_timeout: 1s, first_token_timeout: 2s, idle_timeout: 2s, total_timeout: 15s}
breaker: {failure_threshold: 3, recovery_timeout: 1s}
health: {interval: 500ms, timeout: 1s, unhealthy_threshold: 2, healthy_threshold: 1}
retry: {budget_min_per_second: 50}
backends:
  - {name: a, url: "${simA.url}", models: [Qwen3-1.7B], max_in_flight: 32}
  - {name: b, url: "${proxyB.url}", models: [Qwen3-1.7B], max_in_flight: 32}
models:
  - {name: Qwen3-1.7B}
keys:
${KEYS.map((k, i) => `  - {key: "${k}", name: soak-${i}}`).join("\n")}
limits:
  store: redis
  rules:
    - {name: parallel, key: api_key, algorithm: concurrency, limit: ${CONCURRENCY}}
    - {name: fleet, key: global, algorithm: sliding_window, limit: ${limit}}
redis: {url: "${redis.url}", timeout: 50ms, connect_timeout: 200ms}
`;
const gw = await startGateway(config("1000000/minute"));
log(`gateway pid ${gw.pid} at ${gw.url}; ${SECONDS} s, ${CLIENTS} clients, a fault every ${FAULT_EVERY_MS / 1000} s`);

const faults = [
  ["backend b hangs", async () => { await proxyB.setMode("hang"); await sleep(3000); await proxyB.setMode("pass"); }],
  ["backend b answers garbage", async () => { await proxyB.setMode("garbage"); await sleep(3000); await proxyB.setMode("pass"); }],
  ["backend b refuses", async () => { await proxyB.setMode("refuse"); await sleep(2000); await proxyB.setMode("pass"); }],
  ["backend a frozen", async () => { process.kill(simA.pid, "SIGSTOP"); await sleep(2500); process.kill(simA.pid, "SIGCONT"); }],
  ["Redis restarted", async () => { await redis.stop(); await sleep(2000); redis = await redis.restart(); }],
  ["config reloaded", async () => { writeFileSync(gw.configPath, config(`${1000000 + Math.floor(Math.random() * 1000)}/minute`)); process.kill(gw.pid, "SIGHUP"); }],
];

const samples = []; // [seconds since start, RSS KiB]
const started = Date.now();
const load = startLoad(gw.url, { clients: CLIENTS, keys: KEYS, boundMs: 30000 });
const faultsDone = [];
let running = true;
// Faults on their own timer: one every FAULT_EVERY_MS, none in the last 5 s.
const faulting = (async () => {
  for (let turn = 1; ; turn++) {
    const at = turn * FAULT_EVERY_MS;
    if (at > (SECONDS - 5) * 1000) return;
    await sleep(at - (Date.now() - started));
    if (!running) return;
    const [what, fault] = faults[(turn - 1) % faults.length];
    faultsDone.push(what);
    await fault();
  }
})();
let lastReport = 0;
while (Date.now() - started < SECONDS * 1000) {
  await sleep(Math.min(5000, SECONDS * 1000 - (Date.now() - started)));
  const t = (Date.now() - started) / 1000;
  samples.push([Math.round(t), rssKiB(gw.pid)]);
  if (t - lastReport >= 30 || t >= SECONDS) {
    lastReport = t;
    log(`${Math.round(t)} s: ${load.stats.sent} requests, RSS ${samples.at(-1)[1]} KiB, ${faultsDone.length} faults`);
  }
}
running = false;
await faulting;
const stats = await load.stop();

// Nothing left behind.
const checks = {};
const check = async (name, probe) => {
  try {
    await eventually(probe, { timeoutMs: 15000, what: name });
    checks[name] = true;
  } catch {
    checks[name] = false;
  }
};
await check("no request in flight", async () => (await metric(gw.url, "llmgate_requests_in_flight")) === 0);
await check("nothing held at a backend", async () => (await metric(gw.url, "llmgate_backend_in_flight")) === 0);
await check("no one in a backend's line", async () => (await metric(gw.url, "llmgate_backend_queue_length")) === 0);
await check("every client connection closed", async () => (await metric(gw.url, "llmgate_connections_open")) <= 1);
await check("no concurrency lease in Redis", async () => {
  const keys = (await redisCli(redis.port, "--scan", "--pattern", "llmgate:*parallel*")).split("\n").filter(Boolean);
  let n = 0;
  for (const k of keys) n += Number(await redisCli(redis.port, "ZCARD", k));
  return n === 0;
});
const counted = await metric(gw.url, "llmgate_requests_total");
const countedFailed = await metric(gw.url, "llmgate_requests_total", { outcome: "failed" });
checks["every request counted"] = counted === stats.answered;
checks["every failure counted as failed"] = countedFailed === failuresOf(stats);
checks["no request past its bound"] = stats.overBound === 0;
checks["every request answered"] = stats.networkErrors === 0 && stats.bodyErrors === 0;
checks["no 429 (no leaked slot)"] = !stats.byStatus[429];
const rssEnd = rssKiB(gw.pid);
const exit = await gw.stop(15000);
checks["exits 0"] = exit?.code === 0;
const lines = readFileSync(accessLog, "utf8").trim().split("\n").length;
checks["one access-log line per request"] = lines === stats.answered;

// Memory after warm-up.
const fifth = Math.max(1, Math.floor(samples.length / 5));
const mean = (xs) => Math.round(xs.reduce((a, [, v]) => a + v, 0) / xs.length);
const afterWarmup = mean(samples.slice(fifth, 2 * fifth));
const last = mean(samples.slice(-fifth));
const growth = last - afterWarmup;
const judged = SECONDS >= 300;
if (judged) checks["memory flat after warm-up"] = growth < Math.max(4096, afterWarmup * 0.05);

const summary = {
  date: new Date().toISOString(),
  seconds: SECONDS,
  clients: CLIENTS,
  requests: stats.sent,
  answered: stats.answered,
  by_status: stats.byStatus,
  streams: stats.streams,
  stream_errors: stats.streamErrors,
  failed: failuresOf(stats),
  max_request_ms: stats.maxMs,
  faults: faultsDone.length,
  fault_kinds: [...new Set(faultsDone)],
  rss_kib: { start: samples[0]?.[1], after_warmup_mean: afterWarmup, last_fifth_mean: last, growth: growth, end: rssEnd, judged },
  rss_samples: samples,
  checks,
  ok: Object.values(checks).every(Boolean),
};
if (opt.json) writeFileSync(opt.json, JSON.stringify(summary, null, 2) + "\n");
const { rss_samples, ...brief } = summary;
console.log(JSON.stringify(brief, null, 2));
await Promise.all([simA.stop(), simB.stop(), proxyB.stop(), redis.stop()]);
await stopAll();
rmSync(dir, { recursive: true, force: true });
process.exit(summary.ok ? 0 : 1);
