// The degradation ladder, the admin API and limits that change while the
// gateway runs, end to end: real gateways and simulators on loopback ports
// chosen at run time; what the backend receives is read back from the
// simulator (GET /sim/requests).
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, symlinkSync, renameSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSim, startGateway, spawnLlmgate, stopAll, fetchJson, metric, eventually } from "../lib/procs.mjs";

after(stopAll);

const TOKEN = "admin-secret";
const STATIC = "服务繁忙，请稍后再试";

function ladderConfig(big, small, extra = "") {
  return `listen: 127.0.0.1:0
workers: 2
health: {enabled: false}
backends:
  - {name: big, url: "${big.url}", kind: vllm, models: [Qwen3-1.7B]}
  - {name: small, url: "${small.url}", kind: vllm, models: [Qwen3-0.6B]}
models:
  - {name: Qwen3-1.7B, fallback: Qwen3-0.6B}
  - {name: Qwen3-0.6B}
tiers:
  - {name: free, degrade_from: 1}
  - {name: gold, degrade_from: 3}
default_tier: free
keys:
  - {key: gold-key, name: team-gold, tier: gold}
admin: {listen: "127.0.0.1:0", token: ${TOKEN}}
${extra}
`;
}

const admin = (gw, method, path, body, token = TOKEN) =>
  fetchJson(`${gw.adminUrl}${path}`, {
    method,
    body,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });

const setLevel = async (gw, level) => {
  const r = await admin(gw, "PUT", "/admin/models/Qwen3-1.7B/level", { level });
  assert.equal(r.status, 200, r.text);
};

// One chat request; the SSE events (data lines) when streamed.
async function chat(gw, { stream = false, key, thinking = true } = {}) {
  const headers = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  const body = {
    model: "Qwen3-1.7B",
    messages: [{ role: "user", content: "你是谁?" }],
    max_tokens: 400,
    stream,
    chat_template_kwargs: { enable_thinking: thinking },
  };
  if (stream) body.stream_options = { include_usage: true };
  const res = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await res.text();
  const out = { status: res.status, headers: res.headers, text, level: res.headers.get("x-llmgate-degraded") };
  if (stream && res.headers.get("content-type")?.startsWith("text/event-stream"))
    out.events = text
      .split("\n\n")
      .filter((e) => e.startsWith("data: "))
      .map((e) => e.slice(6))
      .map((d) => (d === "[DONE]" ? d : JSON.parse(d)));
  else
    try {
      out.json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
  return out;
}

const lastReceived = async (sim) => {
  const r = await fetchJson(`${sim.url}/sim/requests`);
  return r.json.at(-1);
};
const receivedCount = async (sim) => (await fetchJson(`${sim.url}/sim/requests`)).json.length;

describe("the ladder, level by level", () => {
  test("L0..L4: what the backend receives and what the client sees; tiers; release", async () => {
    const big = await startSim({ model: "Qwen3-1.7B" });
    const small = await startSim({ model: "Qwen3-0.6B" });
    const gw = await startGateway(ladderConfig(big, small, `degrade: {static_reply: "${STATIC}"}`));

    // L0: as asked.
    let r = await chat(gw, { stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.level, "L0");
    assert.equal((await lastReceived(big)).stream, true);

    // L1: the backend is asked without streaming; the client still gets the stream's exact sequence.
    await setLevel(gw, 1);
    r = await chat(gw, { stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.level, "L1");
    assert.match(r.headers.get("content-type"), /^text\/event-stream/);
    const sent = await lastReceived(big);
    assert.equal(sent.stream, false);
    assert.equal(sent.stream_options, undefined);
    assert.equal(r.events.length, 4, JSON.stringify(r.events));
    const [first, last, usage, done] = r.events;
    assert.equal(first.object, "chat.completion.chunk");
    assert.equal(first.choices[0].delta.role, "assistant");
    assert.ok(first.choices[0].delta.content.length > 0);
    assert.ok(first.choices[0].delta.reasoning_content.length > 0, "thinking is still on at L1");
    assert.equal(first.choices[0].finish_reason, null);
    assert.ok(last.choices[0].finish_reason);
    assert.deepEqual(usage.choices, []);
    assert.ok(usage.usage.completion_tokens > 0);
    assert.equal(done, "[DONE]");
    r = await chat(gw); // a client that did not ask for a stream is unaffected
    assert.equal(r.level, "L1");
    assert.equal(r.json.object, "chat.completion");

    // L2: thinking off (vLLM's chat_template_kwargs), whatever the client asked.
    await setLevel(gw, 2);
    r = await chat(gw, { thinking: true });
    assert.equal(r.level, "L2");
    assert.equal((await lastReceived(big)).chat_template_kwargs.enable_thinking, false);
    assert.equal(r.json.choices[0].message.reasoning_content ?? "", "");
    // ...but a gold caller (degraded from L3) keeps full service.
    r = await chat(gw, { key: "gold-key", stream: true });
    assert.equal(r.level, "L0");
    assert.equal((await lastReceived(big)).stream, true);

    // L3: the fallback model answers, under its own name.
    await setLevel(gw, 3);
    const bigBefore = await receivedCount(big);
    r = await chat(gw);
    assert.equal(r.level, "L3");
    assert.equal(r.json.model, "Qwen3-0.6B");
    assert.equal(r.headers.get("x-llmgate-backend"), "small");
    assert.equal((await lastReceived(small)).model, "Qwen3-0.6B");
    assert.equal(await receivedCount(big), bigBefore, "the big model was not asked");
    r = await chat(gw, { key: "gold-key" });
    assert.equal(r.level, "L3", "from L3 on, gold is degraded too");

    // L4: the static reply, no backend asked; streamed when asked.
    await setLevel(gw, 4);
    const smallBefore = await receivedCount(small);
    r = await chat(gw);
    assert.equal(r.status, 200);
    assert.equal(r.level, "L4");
    assert.equal(r.json.choices[0].message.content, STATIC);
    assert.equal(r.json.model, "Qwen3-1.7B");
    r = await chat(gw, { stream: true });
    assert.equal(r.events[0].choices[0].delta.content, STATIC);
    assert.equal(r.events.at(-1), "[DONE]");
    assert.equal(await receivedCount(small), smallBefore);
    assert.equal(await receivedCount(big), bigBefore);

    // Released: the triggers (none here) decide: L0.
    assert.equal((await admin(gw, "DELETE", "/admin/models/Qwen3-1.7B/level")).status, 200);
    r = await chat(gw, { stream: true });
    assert.equal(r.level, "L0");
    const status = (await admin(gw, "GET", "/admin/status")).json;
    const m = status.models.find((x) => x.name === "Qwen3-1.7B");
    assert.equal(m.level, 0);
    assert.equal(m.set_by, "triggers");
    assert.equal(await metric(gw.url, "llmgate_degrade_level_changes_total", { model: "Qwen3-1.7B", cause: "admin" }), 5);
    assert.equal(await metric(gw.url, "llmgate_degraded_requests_total", { model: "Qwen3-1.7B", level: "L4" }), 2);
    await gw.stop();
    await big.stop();
    await small.stop();
  });

  test("L4 without a static reply: 503 service busy", async () => {
    const big = await startSim({ model: "Qwen3-1.7B" });
    const small = await startSim({ model: "Qwen3-0.6B" });
    const gw = await startGateway(
      ladderConfig(big, small).replace("  - {name: Qwen3-1.7B, fallback: Qwen3-0.6B}", "  - {name: Qwen3-1.7B, degrade: {level: 4}}"),
    );
    const r = await chat(gw);
    assert.equal(r.status, 503);
    assert.equal(r.level, "L4");
    assert.equal(r.json.error.code, "service_busy");
    assert.ok(r.headers.get("retry-after"));
    await gw.stop();
    await big.stop();
    await small.stop();
  });
});

describe("triggers", () => {
  test("GPU temperature up: the level rises at once; back down: it falls one step per dwell", async () => {
    const big = await startSim({ model: "Qwen3-1.7B" });
    const small = await startSim({ model: "Qwen3-0.6B" });
    const gw = await startGateway(
      ladderConfig(big, small, "degrade: {interval: 100ms, dwell: 600ms, triggers: [{signal: gpu_temp, above: 80, level: 2}]}\nscrape: {interval: 100ms, timeout: 80ms}").replace(
        `kind: vllm, models: [Qwen3-1.7B]}`,
        `kind: vllm, models: [Qwen3-1.7B], gpu_metrics_url: "${big.url}/metrics"}`,
      ),
    );
    const level = async () =>
      (await admin(gw, "GET", "/admin/status")).json.models.find((x) => x.name === "Qwen3-1.7B").level;
    assert.equal((await chat(gw)).level, "L0");
    await fetchJson(`${big.url}/sim/faults`, { body: { gpu_temp: 91 } });
    await eventually(async () => (await level()) === 2, { what: "L2 once the GPU is hot" });
    assert.equal((await chat(gw)).level, "L2");
    await fetchJson(`${big.url}/sim/faults`, { body: { gpu_temp: 45 } });
    await eventually(async () => (await level()) === 0, { what: "back to L0 once cool", timeoutMs: 10000 });
    assert.equal((await chat(gw)).level, "L0");
    // Up in one move (0 → 2), down in two (2 → 1 → 0): three changes in all.
    assert.equal(await metric(gw.url, "llmgate_degrade_level_changes_total", { model: "Qwen3-1.7B", cause: "triggers" }), 3);
    await gw.stop();
    await big.stop();
    await small.stop();
  });
});

describe("the admin API and limits that change while it runs", () => {
  const limited = (sim, limit, extra = "") => `listen: 127.0.0.1:0
workers: 2
health: {enabled: false}
backends:
  - {name: big, url: "${sim.url}", models: [Qwen3-1.7B]}
limits:
  rules:
    - {name: per-ip, key: client_ip, algorithm: fixed_window, limit: ${limit}}
admin: {listen: "127.0.0.1:0", token: ${TOKEN}}
${extra}
`;
  const statuses = async (gw, n) => {
    const out = [];
    for (let i = 0; i < n; i++) out.push((await chat(gw)).status);
    return out;
  };

  test("refused without the token; a limit change applies at once to what is counted", async () => {
    const sim = await startSim();
    const gw = await startGateway(limited(sim, "5/hour"));
    assert.equal((await admin(gw, "GET", "/admin/status", undefined, null)).status, 401);
    assert.equal((await admin(gw, "GET", "/admin/status", undefined, "wrong")).status, 401);
    const refused = await admin(gw, "PUT", "/admin/rules/per-ip/limit", { limit: "1000/hour" }, "wrong");
    assert.equal(refused.status, 401);
    assert.equal(refused.json.error.code, "invalid_admin_token");

    assert.deepEqual(await statuses(gw, 4), [200, 200, 200, 200]);
    assert.equal((await admin(gw, "PUT", "/admin/rules/per-ip/limit", { limit: "3/hour" })).status, 200);
    assert.deepEqual(await statuses(gw, 1), [429], "4 counted against 3");
    assert.equal((await admin(gw, "PUT", "/admin/rules/per-ip/limit", { limit: "12/hour" })).status, 200);
    assert.deepEqual(await statuses(gw, 9), [200, 200, 200, 200, 200, 200, 200, 200, 429], "8 more");
    const status = (await admin(gw, "GET", "/admin/status")).json;
    assert.equal(status.rules[0].limit, "12/hour");
    assert.equal((await admin(gw, "PUT", "/admin/rules/nope/limit", { limit: "1/hour" })).status, 404);
    assert.equal((await admin(gw, "PUT", "/admin/rules/per-ip/limit", { limit: "often" })).status, 400);
    assert.ok(gw.output().stderr.includes("rule per-ip limit set to 3/hour"), "the change is logged");
    await gw.stop();
    await sim.stop();
  });

  test("an empty admin token keeps the API closed", async () => {
    const sim = await startSim();
    const gw = await startGateway(limited(sim, "5/hour").replace(`token: ${TOKEN}`, `token: ""`));
    assert.equal((await admin(gw, "GET", "/admin/status", undefined, "")).status, 403);
    assert.equal((await admin(gw, "GET", "/admin/status")).status, 403);
    await gw.stop();
    await sim.stop();
  });

  test("reload under load: no request fails; a broken file is refused and the old limits stay", async () => {
    const sim = await startSim();
    const gw = await startGateway(limited(sim, "100000/hour"));
    // Bounded load in the background: 400 requests, 8 at a time.
    let sent = 0;
    const failures = [];
    const worker = async () => {
      while (sent < 400) {
        sent++;
        const r = await chat(gw);
        if (r.status !== 200) failures.push(r.status);
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    for (let i = 0; i < 6; i++) {
      writeFileSync(gw.configPath, limited(sim, `${100000 + i}/hour`));
      process.kill(gw.pid, "SIGHUP");
      await new Promise((r) => setTimeout(r, 50));
    }
    await load;
    assert.deepEqual(failures, [], "every request answered 200 while reloading");
    await eventually(async () => (await metric(gw.url, "llmgate_config_reloads_total", { result: "ok" })) >= 6, {
      what: "six reloads",
    });

    // A broken file: refused, logged, counted; the running limits stay.
    writeFileSync(gw.configPath, limited(sim, "5/hour").replace("fixed_window", "fixed_windoww"));
    const r = await admin(gw, "POST", "/admin/reload");
    assert.equal(r.status, 409);
    assert.match(r.json.error.message, /fixed_windoww/);
    assert.equal(await metric(gw.url, "llmgate_config_last_reload_ok"), 0);
    assert.ok((await metric(gw.url, "llmgate_config_reloads_total", { result: "refused" })) >= 1);
    assert.equal((await admin(gw, "GET", "/admin/status")).json.rules[0].limit, "100005/hour");
    // A part that needs a restart: refused too.
    writeFileSync(gw.configPath, limited(sim, "5/hour").replace("workers: 2", "workers: 3"));
    const restart = await admin(gw, "POST", "/admin/reload");
    assert.equal(restart.status, 409);
    assert.match(restart.json.error.message, /workers/);
    assert.deepEqual(await statuses(gw, 3), [200, 200, 200]);
    await gw.stop();
    await sim.stop();
  });

  test("a ConfigMap update (a symlink swapped over the directory) is picked up by itself", async () => {
    const sim = await startSim();
    // The layout the kubelet makes: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>/
    const dir = mkdtempSync(join(tmpdir(), "llmgate-configmap-"));
    const version = (name, text) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "config.yaml"), text);
    };
    version("..v1", limited(sim, "2/hour"));
    symlinkSync("..v1", join(dir, "..data"));
    symlinkSync("..data/config.yaml", join(dir, "config.yaml"));
    const gw = await spawnLlmgate(["serve", "-c", join(dir, "config.yaml")], { name: "gateway" });
    assert.deepEqual(await statuses(gw, 3), [200, 200, 429]);
    version("..v2", limited(sim, "10/hour"));
    symlinkSync("..v2", join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data")); // atomic, as the kubelet does it
    await eventually(async () => (await chat(gw)).status === 200, { what: "the new limit", timeoutMs: 10000 });
    await gw.stop();
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("the response cache", () => {
  const cached = (sim, mode, extra = "") => `listen: 127.0.0.1:0
workers: 2
health: {interval: 100ms, timeout: 100ms, unhealthy_threshold: 1, healthy_threshold: 1}
backends:
  - {name: big, url: "${sim.url}", kind: vllm, models: [Qwen3-1.7B]}
cache: {mode: ${mode}, ttl: 10m}
admin: {listen: "127.0.0.1:0", token: ${TOKEN}}
${extra}
`;
  const ask = (gw, content, { stream = false, temperature = 0.7 } = {}) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "Qwen3-1.7B", messages: [{ role: "user", content }], max_tokens: 50, stream, temperature }),
    }).then(async (r) => ({ status: r.status, cache: r.headers.get("x-llmgate-cache"), type: r.headers.get("content-type"), text: await r.text() }));

  test("every backend down: cached answers for repeated requests, service busy for new ones", async () => {
    const sim = await startSim();
    const gw = await startGateway(cached(sim, "when_down"));
    const first = await ask(gw, "repeat me");
    const firstStream = await ask(gw, "repeat me", { stream: true });
    assert.equal(first.status, 200);
    assert.equal(first.cache, null, "the pool answers while it can");
    assert.ok(firstStream.text.includes("[DONE]"));
    // At L3 (no fallback here: served by the same pool) an answer is kept as made at L3.
    await setLevel(gw, 3);
    assert.equal((await ask(gw, "made at L3")).status, 200);
    assert.equal((await admin(gw, "DELETE", "/admin/models/Qwen3-1.7B/level")).status, 200);

    await sim.stop();
    await eventually(async () => (await admin(gw, "GET", "/admin/status")).json.backends[0].healthy === false, {
      what: "the backend seen down",
    });
    const again = await ask(gw, "repeat me");
    assert.equal(again.status, 200);
    assert.equal(again.cache, "hit");
    assert.equal(again.text, first.text);
    const streamAgain = await ask(gw, "repeat me", { stream: true });
    assert.equal(streamAgain.cache, "hit");
    assert.match(streamAgain.type, /^text\/event-stream/);
    assert.equal(streamAgain.text, firstStream.text, "the whole stream, replayed");
    const fresh = await ask(gw, "never asked before");
    assert.equal(fresh.status, 503);
    assert.equal(JSON.parse(fresh.text).error.code, "no_backend_available");
    const better = await ask(gw, "made at L3");
    assert.equal(better.status, 503, "an answer made at L3 is not served to a request at L0");
    assert.equal(await metric(gw.url, "llmgate_cache_lookups_total", { result: "hit" }), 2);
    await gw.stop();
  });

  test("mode always: a temperature-0 repeat is answered from the cache while the backend is up", async () => {
    const sim = await startSim();
    const gw = await startGateway(cached(sim, "always"));
    const before = await receivedCount(sim);
    const a = await ask(gw, "deterministic", { temperature: 0 });
    const b = await ask(gw, "deterministic", { temperature: 0 });
    assert.equal(a.cache, null);
    assert.equal(b.cache, "hit");
    assert.equal(b.text, a.text);
    await ask(gw, "sampled", { temperature: 0.7 });
    const d = await ask(gw, "sampled", { temperature: 0.7 });
    assert.equal(d.cache, null, "a sampled request is asked again");
    assert.equal((await receivedCount(sim)) - before, 3);
    await gw.stop();
    await sim.stop();
  });
});

describe("load-driven limits", () => {
  test("a hot GPU halves the free tier's limit at once; cooled, it comes back after the dwell", async () => {
    const sim = await startSim();
    const gw = await startGateway(`listen: 127.0.0.1:0
workers: 2
health: {enabled: false}
scrape: {interval: 100ms, timeout: 80ms}
backends:
  - {name: big, url: "${sim.url}", models: [Qwen3-1.7B], gpu_metrics_url: "${sim.url}/metrics"}
tiers: [{name: free, degrade_from: 1}]
default_tier: free
degrade: {interval: 100ms, dwell: 500ms}
limits:
  rules:
    - name: free-tier
      key: client_ip
      algorithm: fixed_window
      limit: 10/hour
      tiers: [free]
      scale: [{signal: gpu_temp, above: 80, factor: 0.5}]
admin: {listen: "127.0.0.1:0", token: ${TOKEN}}
`);
    const rule = async () => (await admin(gw, "GET", "/admin/status")).json.rules[0];
    await eventually(async () => (await rule()).scale === 1, { what: "the rule seen at full scale" });
    await fetchJson(`${sim.url}/sim/faults`, { body: { gpu_temp: 88 } });
    await eventually(async () => (await rule()).limit === "5/hour", { what: "the limit halved" });
    assert.equal(await metric(gw.url, "llmgate_ratelimit_scale", { rule: "free-tier" }), 0.5);
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push((await chat(gw)).status);
    assert.deepEqual(codes, [200, 200, 200, 200, 200, 429]);
    await fetchJson(`${sim.url}/sim/faults`, { body: { gpu_temp: 40 } });
    await eventually(async () => (await rule()).limit === "10/hour", { what: "the limit back", timeoutMs: 10000 });
    assert.equal((await chat(gw)).status, 200, "the five counted stay counted: five more under 10/hour");
    await gw.stop();
    await sim.stop();
  });
});
