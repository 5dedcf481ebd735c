// What a gateway tells its operators: one JSON access-log line per API
// request on stdout, and requests counted by outcome with token and
// time-per-token histograms on /metrics.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, startGateway, stopAll, fetchJson, metric, eventually, gatewayConfig } from "../lib/procs.mjs";

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
  const lines = await eventually(
    () => {
      const found = gw
        .output()
        .stdout.split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l));
      return found.length >= 3 ? found : null;
    },
    { what: "three access-log lines" },
  );
  const [streamed, whole, refused] = lines;
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

  // The same on /metrics: by outcome, tokens and time per output token as histograms.
  assert.equal(await metric(gw.url, "llmgate_requests_total", { model: "Qwen3-1.7B", outcome: "ok" }), 2);
  assert.equal(await metric(gw.url, "llmgate_requests_total", { model: "Qwen3-1.7B", outcome: "rate_limited" }), 1);
  assert.equal(await metric(gw.url, "llmgate_request_completion_tokens_count", { model: "Qwen3-1.7B" }), 2);
  assert.equal(await metric(gw.url, "llmgate_time_per_output_token_seconds_count", { model: "Qwen3-1.7B" }), 1);
  await gw.stop();
  await sim.stop();
});

test("access_log: off writes nothing; a file receives the lines", async () => {
  const sim = await startSim();
  const quiet = await startGateway(gatewayConfig([sim], { extra: "access_log: off" }));
  await fetchJson(`${quiet.url}/v1/chat/completions`, { body: { model: "qwen3-1.7b", messages: [{ role: "user", content: "hi" }] } });
  assert.ok(!quiet.output().stdout.includes('"request_id"'));
  await quiet.stop();
  await sim.stop();
});
