// Process helpers for llmgate's JavaScript tests (node:test, Node >= 18).
//
// startSim() and startGateway() spawn build/llmgate (or $LLMGATE_BIN) on port 0,
// wait (bounded) for the "listening on HOST:PORT" line, and return a handle
// {port, host, url, proc, pid, stop(), output()}. Every process started here is
// kept in a registry: call `after(stopAll)` in each test file, and a process
// 'exit' handler SIGKILLs whatever is still alive if a file dies early.

import net from "node:net";
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const LLMGATE_BIN = process.env.LLMGATE_BIN || join(REPO_ROOT, "build", "llmgate");

/** The tokenizer test's corpus (tests/tokenizer/corpus.json): an array of texts. */
export function tokenizerCorpus() {
  return JSON.parse(readFileSync(join(REPO_ROOT, "tests", "tokenizer", "corpus.json"), "utf8"));
}

/** The seed guide (Chinese with English and code mixed in): beside the project in CI and sessions; null where it is not. */
export function seedGuide() {
  try {
    return readFileSync(join(REPO_ROOT, "..", "shared", "seed", "000_ae4aeae557506c4a.txt"), "utf8");
  } catch {
    return null;
  }
}

const READY_TIMEOUT_MS = Number(process.env.LLMGATE_READY_TIMEOUT_MS || 15000);
const STOP_TIMEOUT_MS = 5000;
const OUTPUT_TAIL_BYTES = 64 * 1024;
const READY_RE = /^llmgate (?:sim )?listening on (\[[^\]]+\]|[^\s:]+):(\d+)\s*$/;
const ADMIN_RE = /^llmgate admin on ([^\s:]+):(\d+)\s*$/;

/** Live handles, so that a failing test still stops everything. */
const live = new Set();

function killNow(pid) {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

process.on("exit", () => {
  for (const h of live) killNow(h.pid);
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    for (const h of live) killNow(h.pid);
    process.exit(128 + (sig === "SIGINT" ? 2 : 15));
  });
}

/** Keeps the last `max` bytes of a stream's text. */
class Tail {
  constructor(max) {
    this.max = max;
    this.text = "";
  }
  push(s) {
    this.text += s;
    if (this.text.length > this.max) this.text = this.text.slice(this.text.length - this.max);
  }
}

/**
 * Spawns `LLMGATE_BIN ...args` and resolves once it prints its listening line.
 * stdout and stderr are drained for the whole life of the process (a full pipe
 * would block the child) and their tails are kept for error messages.
 */
export function spawnLlmgate(args, { name = args[0], env, readyTimeoutMs = READY_TIMEOUT_MS, cleanup } = {}) {
  if (!existsSync(LLMGATE_BIN)) {
    return Promise.reject(new Error(`llmgate binary not found at ${LLMGATE_BIN} (build it, or set LLMGATE_BIN)`));
  }
  const proc = spawn(LLMGATE_BIN, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...(env || {}) },
  });
  const stdoutTail = new Tail(OUTPUT_TAIL_BYTES);
  const stderrTail = new Tail(OUTPUT_TAIL_BYTES);
  let exitInfo = null;
  let ready = false,
    stopping = false;
  const exited = new Promise((res) => {
    proc.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      // A process that died on its own after it was up (a crash, a sanitizer's
      // report) says why, even when the test that saw it fail does not print it.
      if (ready && !stopping && (code !== 0 || signal))
        console.error(`${name} (pid ${proc.pid}) exited by itself (code ${code}, signal ${signal}):\n${stderrTail.text.slice(-60000)}`);
      res(exitInfo);
    });
  });

  const handle = {
    name,
    proc,
    pid: proc.pid,
    port: 0,
    host: "127.0.0.1",
    url: "",
    exited,
    get exitInfo() {
      return exitInfo;
    },
    output() {
      return { stdout: stdoutTail.text, stderr: stderrTail.text };
    },
    async stop(timeoutMs = STOP_TIMEOUT_MS) {
      stopping = true;
      if (!exitInfo && handle.pid) {
        try {
          process.kill(handle.pid, "SIGTERM");
        } catch {
          /* gone */
        }
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise((r) => setTimeout(() => r(true), timeoutMs).unref()),
        ]);
        if (timedOut && !exitInfo) {
          killNow(handle.pid);
          await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
        }
      }
      live.delete(handle);
      if (cleanup) {
        try {
          cleanup();
        } catch {
          /* ignore */
        }
      }
      return exitInfo;
    },
  };
  if (proc.pid) live.add(handle);

  return new Promise((resolveReady, rejectReady) => {
    let done = false;
    let lineBuf = "";
    const fail = async (msg) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      await handle.stop(1000);
      const { stdout, stderr } = handle.output();
      rejectReady(new Error(`${name}: ${msg}\n--- stdout ---\n${stdout.slice(-4000)}\n--- stderr ---\n${stderr.slice(-4000)}`));
    };
    const timer = setTimeout(() => fail(`not ready after ${readyTimeoutMs} ms`), readyTimeoutMs);
    proc.once("error", (e) => fail(`spawn failed: ${e.message}`));
    exited.then((info) => fail(`exited before ready (code ${info.code}, signal ${info.signal})`));
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (d) => stderrTail.push(d));
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (d) => {
      stdoutTail.push(d);
      if (done) return;
      lineBuf += d;
      let nl;
      while ((nl = lineBuf.indexOf("\n")) >= 0) {
        const line = lineBuf.slice(0, nl).replace(/\r$/, "");
        lineBuf = lineBuf.slice(nl + 1);
        const admin = ADMIN_RE.exec(line);
        if (admin) handle.adminUrl = `http://${admin[1]}:${admin[2]}`;
        const m = READY_RE.exec(line);
        if (m) {
          done = true;
          ready = true;
          clearTimeout(timer);
          handle.host = m[1].replace(/^\[|\]$/g, "");
          handle.port = Number(m[2]);
          const hostForUrl = m[1].startsWith("[") ? m[1] : handle.host;
          handle.url = `http://${hostForUrl}:${handle.port}`;
          resolveReady(handle);
          return;
        }
      }
    });
  });
}

/**
 * Starts `llmgate sim` on 127.0.0.1:0.
 * @param {{model?: string, profile?: string, args?: string[], env?: object}} opts
 */
export function startSim({ model = "Qwen3-1.7B", profile = "instant", args = [], env } = {}) {
  return spawnLlmgate(
    ["sim", "--host", "127.0.0.1", "--port", "0", "--model", model, "--profile", profile, ...args],
    { name: `sim(${model},${profile})`, env },
  );
}

/**
 * Starts `llmgate serve -c <tmp>/config.yaml` with the given YAML text.
 * The temp dir is removed when the gateway is stopped.
 */
export function startGateway(configYamlText, { args = [], env } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "llmgate-test-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, configYamlText);
  return spawnLlmgate(["serve", "-c", file, ...args], {
    name: "gateway",
    env,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }).then((h) => Object.assign(h, { configPath: file }));
}

/** Stops every process still running (use as `after(stopAll)`). */
export async function stopAll() {
  await Promise.all([...live].map((h) => h.stop()));
}

/**
 * A minimal gateway config with one backend per sim handle (sim-a, sim-b, ...),
 * all serving `model`. `extra` is appended verbatim (YAML text); `modelExtra`
 * goes into the model's entry (e.g. "degrade: {level: 1}").
 */
export function gatewayConfig(
  sims,
  { model = "Qwen3-1.7B", aliases = ["qwen3-1.7b"], workers = 1, kind = "vllm", extra = "", modelExtra = "" } = {},
) {
  const names = "abcdefghijklmnopqrstuvwxyz";
  const backends = sims
    .map((s, i) => `  - {name: sim-${names[i]}, url: "${s.url}", kind: ${kind}, models: [${model}]}`)
    .join("\n");
  return [
    "listen: 127.0.0.1:0",
    `workers: ${workers}`,
    "backends:",
    backends,
    "models:",
    `  - {name: ${model}, aliases: [${aliases.join(", ")}]${modelExtra ? `, ${modelExtra}` : ""}}`,
    extra,
  ]
    .filter((l) => l !== "")
    .join("\n") + "\n";
}

/**
 * Starts `n` sims and a gateway in front of them. Returns {sims, gw, stop()};
 * stop() stops the gateway first, then the sims. If any start fails, the ones
 * already started are stopped before the error is thrown.
 */
export async function startStack({ n = 2, simOptions = {}, gatewayOptions = {} } = {}) {
  const started = await Promise.allSettled(Array.from({ length: n }, () => startSim(simOptions)));
  const sims = started.filter((r) => r.status === "fulfilled").map((r) => r.value);
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await Promise.all(sims.map((s) => s.stop()));
    throw failed.reason;
  }
  let gw;
  try {
    gw = await startGateway(gatewayConfig(sims, gatewayOptions));
  } catch (e) {
    await Promise.all(sims.map((s) => s.stop()));
    throw e;
  }
  const stop = async () => {
    await gw.stop();
    await Promise.all(sims.map((s) => s.stop()));
  };
  return { sims, gw, stop };
}

/**
 * fetch() + JSON. Returns {status, headers, text, json} (json is undefined when
 * the body is not JSON). A plain object body is sent as JSON.
 */
export async function fetchJson(url, { method, body, headers = {}, signal } = {}) {
  const init = { method: method || (body === undefined ? "GET" : "POST"), headers: { ...headers }, signal };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    if (!Object.keys(init.headers).some((k) => k.toLowerCase() === "content-type")) {
      init.headers["content-type"] = "application/json";
    }
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Reads a text/event-stream body and yields one event per blank-line-separated
 * block: {event, data, json} where data is the joined `data:` lines, and json is
 * the parsed data (undefined for "[DONE]" or non-JSON).
 */
export async function* readSSE(response) {
  const decoder = new TextDecoder();
  let buf = "";
  const reader = response.body.getReader();
  const parseBlock = (block) => {
    let event;
    const data = [];
    for (const raw of block.split("\n")) {
      const line = raw.replace(/\r$/, "");
      if (!line || line.startsWith(":")) continue;
      const idx = line.indexOf(":");
      const field = idx < 0 ? line : line.slice(0, idx);
      let value = idx < 0 ? "" : line.slice(idx + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") event = value;
    }
    if (data.length === 0 && event === undefined) return null;
    const d = data.join("\n");
    let json;
    if (d !== "[DONE]") {
      try {
        json = JSON.parse(d);
      } catch {
        json = undefined;
      }
    }
    return { event, data: d, json };
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let sep;
      while ((sep = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, sep);
        buf = buf.slice(sep + 2);
        const ev = parseBlock(block);
        if (ev) yield ev;
      }
    }
    buf += decoder.decode();
    if (buf.trim()) {
      const ev = parseBlock(buf);
      if (ev) yield ev;
    }
  } finally {
    reader.releaseLock();
  }
}

/** POSTs a JSON body and collects the whole SSE stream: {status, headers, events}. */
export async function postSSE(url, body, { headers = {} } = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", ...headers },
    body: JSON.stringify(body),
  });
  if (!res.ok || !(res.headers.get("content-type") || "").includes("text/event-stream")) {
    const text = await res.text();
    return { status: res.status, headers: res.headers, events: [], text };
  }
  const events = [];
  for await (const ev of readSSE(res)) events.push(ev);
  return { status: res.status, headers: res.headers, events };
}

/** A port free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Sends one inline command to 127.0.0.1:port and resolves with the first reply line (or null). */
export function redisCommand(port, line, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    let data = "";
    const done = (v) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    sock.on("connect", () => sock.write(line + "\r\n"));
    sock.on("data", (d) => {
      data += d.toString();
      if (data.includes("\r\n")) done(data.split("\r\n")[0]);
    });
    sock.on("error", () => done(null));
  });
}

/**
 * Starts a real redis-server on a free loopback port (no persistence) and
 * resolves once it answers PING. The handle's restart() brings it back on the
 * same port after a kill.
 */
export async function startRedis({ args = [] } = {}) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const h = await spawnRedis(port, args);
    if (h) return h;
  }
  throw new Error("redis-server did not start (is it installed? make deps installs it)");
}

async function spawnRedis(port, args) {
  const proc = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning", ...args],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  proc.stderr.resume();
  let exitInfo = null;
  const exited = new Promise((res) => proc.once("exit", (code, signal) => res((exitInfo = { code, signal }))));
  proc.once("error", () => {});
  const handle = {
    name: `redis(:${port})`,
    proc,
    pid: proc.pid,
    port,
    url: `redis://127.0.0.1:${port}`,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    async stop() {
      if (!exitInfo && proc.pid) {
        try {
          process.kill(proc.pid, "SIGKILL");
        } catch {
          /* gone */
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000).unref())]);
      }
      live.delete(handle);
    },
    async restart() {
      await handle.stop();
      const again = await spawnRedis(port, args);
      if (!again) throw new Error(`redis-server did not restart on ${port}`);
      return again;
    },
  };
  if (proc.pid) live.add(handle);
  for (let i = 0; i < 200; i++) {
    if (exitInfo) break;
    if ((await redisCommand(port, "PING", 200)) === "+PONG") return handle;
    await new Promise((r) => setTimeout(r, 25));
  }
  await handle.stop();
  return null;
}

// redis-cli's output (stdout, trailing newline removed) for one command on the node at `port`.
export function redisCli(port, ...args) {
  return new Promise((resolve, reject) =>
    execFile("redis-cli", ["-p", String(port), ...args], { timeout: 60000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout.replace(/\n$/, "")),
    ),
  );
}

/**
 * A real three-master Redis Cluster on free loopback ports: three
 * cluster-enabled redis-servers (each in its own temporary directory) joined
 * by `redis-cli --cluster create`; resolves once every node reports
 * cluster_state:ok and knows the other two. seeds: "127.0.0.1:port" each.
 */
export async function startRedisCluster() {
  const dirs = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), "llmgate-cluster-")));
  const nodes = [];
  for (const dir of dirs)
    nodes.push(
      await startRedis({
        args: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", dir, "--cluster-node-timeout", "2000"],
      }),
    );
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const out = await redisCli(
      nodes[0].port,
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    );
    if (!out.includes("All 16384 slots covered")) throw new Error(`redis-cli --cluster create: ${out}`);
    await eventually(
      async () => {
        for (const n of nodes) {
          const info = await redisCli(n.port, "CLUSTER", "INFO");
          if (!info.includes("cluster_state:ok") || !info.includes("cluster_known_nodes:3")) return false;
        }
        return true;
      },
      { timeoutMs: 30000, everyMs: 100, what: "the cluster settled" },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes, seeds: nodes.map((n) => `127.0.0.1:${n.port}`), stop };
}

// Sum of every sample of `name` whose labels include all of `labels`.
export async function metric(url, name, labels = {}) {
  const { text } = await fetchJson(`${url}/metrics`);
  return metricIn(text, name, labels);
}

// The same, in a Prometheus text exposition already fetched.
export function metricIn(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === String(v))) sum += Number(m[3]);
  }
  return sum;
}

// Polls `probe` (bounded) until it returns something truthy.
export async function eventually(probe, { timeoutMs = 5000, everyMs = 50, what = "condition" } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
