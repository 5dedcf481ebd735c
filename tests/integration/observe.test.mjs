// What a gateway tells its operators: one JSON access-log line per API
// request on stdout, and requests counted by outcome with token and
// time-per-token histograms on /metrics.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  startSim,
  startGateway,
  startRedis,
  stopAll,
  fetchJson,
  metric,
  eventually,
  gatewayConfig,
  REPO_ROOT,
} from "../lib/procs.mjs";

after(stopAll);

test("access log: one JSON line per request with who, what, how it ended and why", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `keys: [{key: sk-secret-one, name: team-one}]
limits:
  rules:
    - {name: per-key, key: api_key, algorithm: fixed_window, limit: 2/hour}`,
    }),
  );
  const ask = (stream) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-secret-one", "x-request-id": `req-${stream}` },
      body: JSON.stringify({ model: "qwen3-1.7b", messages: [{ role: "user", content: "hi" }], max_tokens: 20, stream }),
    }).then((r) => r.text());
  await ask(true);
  await ask(false);
  await ask(false); // refused: 2/hour
  await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
  const lines = await eventually(
    () => {
      const found = gw
        .output()
        .stdout.split("\n")
        .filter((l) => l.startsWith("{") && l.endsWith("}")) // whole lines only (one may be arriving)
        .map((l) => JSON.parse(l));
      return found.length >= 4 ? found : null;
    },
    { what: "four access-log lines" },
  );
  const [streamed, whole, refused, invalid] = lines;
  assert.equal(invalid.status, 400);
  assert.equal(invalid.outcome, "rejected", "a bad request is rejected, not a failure of the service");
  assert.equal(streamed.request_id, "req-true");
  assert.equal(streamed.key, "team-one");
  assert.ok(!gw.output().stdout.includes("sk-secret-one"), "the key itself is never logged");
  assert.equal(streamed.client, "127.0.0.1");
  assert.equal(streamed.model, "Qwen3-1.7B");
  assert.equal(streamed.served_model, "Qwen3-1.7B");
  assert.equal(streamed.backend, "sim-a");
  assert.equal(streamed.status, 200);
  assert.equal(streamed.outcome, "ok");
  assert.equal(streamed.level, 0);
  assert.ok(streamed.ttft_ms > 0 && streamed.ttft_ms <= streamed.duration_ms);
  assert.ok(streamed.completion_tokens > 0 && streamed.prompt_tokens > 0);
  assert.match(streamed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(whole.ttft_ms, undefined, "a whole answer has no first streamed event");
  assert.equal(refused.status, 429);
  assert.equal(refused.outcome, "rate_limited");
  assert.equal(refused.rule, "per-key");
  assert.equal(refused.model, "-", "refused before its body was read (the rule needs no body)");

  // The same on /metrics: by outcome, tokens and time per output token as histograms.
  assert.equal(await metric(gw.url, "llmgate_requests_total", { model: "Qwen3-1.7B", outcome: "ok" }), 2);
  assert.equal(await metric(gw.url, "llmgate_requests_total", { model: "-", outcome: "rate_limited" }), 1);
  assert.equal(await metric(gw.url, "llmgate_request_completion_tokens_count", { model: "Qwen3-1.7B" }), 2);
  assert.equal(await metric(gw.url, "llmgate_time_per_output_token_seconds_count", { model: "Qwen3-1.7B" }), 1);
  await gw.stop();
  await sim.stop();
});

test("access_log: off writes nothing; a file receives the lines", async () => {
  const sim = await startSim();
  const ask = (gw) =>
    fetchJson(`${gw.url}/v1/chat/completions`, { body: { model: "qwen3-1.7b", messages: [{ role: "user", content: "hi" }] } });
  const dir = mkdtempSync(join(tmpdir(), "llmgate-access-"));
  const file = join(dir, "access.log");
  const logged = await startGateway(gatewayConfig([sim], { extra: `access_log: ${file}` }));
  await ask(logged);
  await ask(logged);
  const lines = await eventually(
    () => {
      const text = existsSync(file) ? readFileSync(file, "utf8") : "";
      const whole = text.split("\n").filter((l) => l.endsWith("}"));
      return whole.length >= 2 ? whole : null;
    },
    { what: "two lines in the file" },
  );
  assert.equal(JSON.parse(lines[0]).status, 200);
  assert.equal(JSON.parse(lines[0]).key, undefined, "an anonymous caller has no key name; its address is in client");
  assert.ok(!logged.output().stdout.includes('"request_id"'), "to the file, not stdout");
  await logged.stop();

  const quiet = await startGateway(gatewayConfig([sim], { extra: "access_log: off" }));
  await ask(quiet);
  await ask(quiet); // the first one's line, if any, is written by now
  await quiet.stop();
  assert.ok(!quiet.output().stdout.includes('"request_id"'));
  rmSync(dir, { recursive: true, force: true });
  await sim.stop();
});

// promtool (Debian's prometheus package) on what llmgate exports and on the shipped alert rules.
function promtool(args, input) {
  return new Promise((resolve) => {
    const p = spawn("promtool", args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("error", (e) => resolve({ code: -1, out: `promtool: ${e.message} (make deps installs the prometheus package)` }));
    p.on("close", (code) => resolve({ code, out }));
    p.stdin.end(input ?? "");
  });
}

test("promtool accepts /metrics and the alert rules, which name only metrics llmgate exports", async () => {
  const redis = await startRedis();
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  store: redis
  rules:
    - {name: per-ip, key: client_ip, algorithm: fixed_window, limit: 3/hour}
redis: {url: "${redis.url}", timeout: 2s}
scrape: {interval: 100ms, timeout: 80ms}
admin: {listen: "127.0.0.1:0", token: t}`,
      modelExtra: "degrade: {level: auto}",
    }).replace(`kind: vllm, models: [Qwen3-1.7B]}`, `kind: vllm, models: [Qwen3-1.7B], gpu_metrics_url: "${sim.url}/metrics"}`),
  );
  for (let i = 0; i < 4; i++)
    await fetchJson(`${gw.url}/v1/chat/completions`, {
      body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "hi" }], stream: i === 0 },
    });
  await eventually(async () => (await metric(gw.url, "llmgate_backend_gpu_temperature_celsius")) > 0, {
    what: "the GPU scraped",
  });
  const { text } = await fetchJson(`${gw.url}/metrics`);
  const lint = await promtool(["check", "metrics"], text);
  assert.equal(lint.code, 0, lint.out);
  assert.equal(lint.out.trim(), "", "no lint problems");

  const rulesFile = join(REPO_ROOT, "deploy", "prometheus", "alerts.yml");
  const rules = await promtool(["check", "rules", rulesFile]);
  assert.equal(rules.code, 0, rules.out);
  assert.match(rules.out, /SUCCESS: \d+ rules found/);
  const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
  const named = new Set(
    [...readFileSync(rulesFile, "utf8").matchAll(/\bllmgate_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, "")),
  );
  assert.ok(named.size >= 10);
  for (const name of named) assert.ok(exported.has(name), `alerts.yml names ${name}, which llmgate does not export`);
  // The Grafana dashboard: every panel's query is valid PromQL (promtool checks
  // it as a recording rule) and names only metrics llmgate exports.
  const dashboard = JSON.parse(readFileSync(join(REPO_ROOT, "deploy", "grafana", "llmgate.json"), "utf8"));
  assert.ok(dashboard.panels.length >= 12);
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr.replaceAll("$__rate_interval", "5m")));
  const tmp = mkdtempSync(join(tmpdir(), "llmgate-dash-"));
  const asRules = join(tmp, "dashboard-rules.yml");
  writeFileSync(
    asRules,
    "groups:\n  - name: dashboard\n    rules:\n" +
      exprs.map((e, i) => `      - record: dashboard:q${i}\n        expr: ${JSON.stringify(e)}\n`).join(""),
  );
  const checked = await promtool(["check", "rules", asRules]);
  rmSync(tmp, { recursive: true, force: true });
  assert.equal(checked.code, 0, checked.out);
  for (const e of exprs)
    for (const [m] of e.matchAll(/\bllmgate_[a-z_]+/g))
      assert.ok(exported.has(m.replace(/_(bucket|count|sum)$/, "")), `the dashboard queries ${m}, which llmgate does not export`);
  // Each alert has its entry in OPERATIONS.md.
  const ops = readFileSync(join(REPO_ROOT, "docs", "OPERATIONS.md"), "utf8");
  for (const [, alert] of readFileSync(rulesFile, "utf8").matchAll(/- alert: (\S+)/g))
    assert.ok(ops.includes(alert), `docs/OPERATIONS.md says nothing of ${alert}`);
  await gw.stop();
  await sim.stop();
  await redis.stop();
});

test("GET /dashboard draws the panels from the gateway's own metrics in headless Chromium", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `access_log: off
scrape: {interval: 100ms, timeout: 80ms}
limits:
  rules:
    - {name: per-ip, key: client_ip, algorithm: fixed_window, limit: 8/hour}`,
    }).replace(`kind: vllm, models: [Qwen3-1.7B]}`, `kind: vllm, models: [Qwen3-1.7B], gpu_metrics_url: "${sim.url}/metrics"}`),
  );
  for (let i = 0; i < 10; i++)
    await fetchJson(`${gw.url}/v1/chat/completions`, {
      body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: `hi ${i}` }], stream: i % 2 === 0 },
    });
  await eventually(async () => (await metric(gw.url, "llmgate_backend_gpu_memory_used_bytes")) > 0, { what: "the GPU scraped" });
  const page = await fetch(`${gw.url}/dashboard`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(page.headers.get("content-type"), /^text\/html/);
  assert.ok(!/<script[^>]+src=|<link[^>]+href=|@import|https?:\/\//.test(html.replace(/https?:\/\/[^"'\s]*w3\.org[^"'\s]*/g, "")),
    "self-contained: no outside scripts, styles or fonts");

  // Chromium runs the page's polling in virtual time (a few polls), then prints the DOM.
  const dom = await new Promise((resolve, reject) => {
    const p = spawn("chromium", ["--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=7000", "--dump-dom", `${gw.url}/dashboard`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("error", (e) => reject(new Error(`chromium: ${e.message} (make deps installs it)`)));
    p.on("close", () => resolve(out));
    setTimeout(() => p.kill("SIGKILL"), 60000).unref();
  });
  const totals = /id="totals" data-polls="(\d+)" data-requests="(\d+)"/.exec(dom);
  assert.ok(totals, "the page ran");
  assert.ok(Number(totals[1]) >= 2, "it polled more than once");
  assert.equal(Number(totals[2]), await metric(gw.url, "llmgate_requests_total"), "it shows the gateway's request count");
  const panels = [...dom.matchAll(/data-id="(\w+)" data-points="(\d+)"/g)];
  assert.ok(panels.length >= 12, `${panels.length} panels`);
  for (const [, id, points] of panels) assert.ok(Number(points) > 0, `panel ${id} drew points`);
  const value = (series) => Number(new RegExp(`data-series="${series}" data-value="([^"]+)"`).exec(dom)?.[1]);
  assert.ok(value("p99") > 0, "latency quantiles from the histograms");
  const gib = Number(/data-id="gpu_mem"[\s\S]*?data-series="sim-a" data-value="([^"]+)"/.exec(dom)?.[1]);
  assert.ok(gib > 0, "GPU memory from the scraped DCGM figures");
  await gw.stop();
  await sim.stop();
});

test("metrics_listener: admin serves /metrics and /dashboard only on the admin listener", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], { extra: `metrics_listener: admin\nadmin: {listen: "127.0.0.1:0", token: secret}` }),
  );
  assert.equal((await fetchJson(`${gw.url}/metrics`)).status, 404);
  assert.equal((await fetchJson(`${gw.url}/dashboard`)).status, 404);
  const m = await fetchJson(`${gw.adminUrl}/metrics`);
  assert.equal(m.status, 200, "no token needed: the admin listener is the private one");
  assert.match(m.text, /# TYPE llmgate_requests_total counter/);
  assert.equal((await fetchJson(`${gw.adminUrl}/dashboard`)).status, 200);
  assert.equal((await fetchJson(`${gw.adminUrl}/admin/status`)).status, 401, "the admin API still wants its token");
  await gw.stop();
  await sim.stop();
});
