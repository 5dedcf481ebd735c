// Rate limits through the real gateway: the seed's 30/minute per client IP,
// OpenAI's rate-limit headers, 429 answers, concurrency slots that never
// leak, keys and tiers, trusted proxies, shadow mode, token costs.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, startGateway, gatewayConfig, fetchJson, readSSE, stopAll } from "../lib/procs.mjs";

after(stopAll);

const chat = (extra = {}) => ({ model: "Qwen3-1.7B", messages: [{ role: "user", content: "hi" }], max_tokens: 8, ...extra });

async function metric(url, name, labels) {
  const { text } = await fetchJson(`${url}/metrics`);
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(" ").pop()) : 0;
}

test("the seed's 30/minute per client IP: 30 pass with OpenAI's headers, the 31st gets 429", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: per-ip, key: client_ip, algorithm: sliding_window, limit: 30/minute}`,
    }),
  );
  let last;
  for (let i = 0; i < 30; i++) {
    last = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() });
    assert.equal(last.status, 200, `request ${i + 1}`);
  }
  assert.equal(last.headers.get("x-ratelimit-limit-requests"), "30");
  assert.equal(last.headers.get("x-ratelimit-remaining-requests"), "0");
  assert.match(last.headers.get("x-ratelimit-reset-requests"), /^\d+(\.\d+)?s$|^\d+m\d+s$/);
  const refused = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() });
  assert.equal(refused.status, 429);
  assert.equal((await fetchJson(`${gw.url}/chat?query=hi`)).status, 429, "the seed's /chat is limited too");
  assert.equal(refused.json.error.code, "rate_limit_exceeded");
  assert.equal(refused.json.error.type, "requests");
  assert.match(refused.json.error.message, /rule 'per-ip' \(30\/minute, sliding_window\)/);
  const retry = Number(refused.headers.get("retry-after"));
  assert.ok(retry >= 1 && retry <= 120, `Retry-After ${retry}`);
  assert.ok(Number(refused.headers.get("retry-after-ms")) > 0);
  assert.equal(refused.headers.get("x-ratelimit-remaining-requests"), "0");
  assert.equal(await metric(gw.url, "llmgate_ratelimit_refusals_total", 'rule="per-ip"'), 2);
  assert.equal(await metric(gw.url, "llmgate_ratelimit_tracked_keys", 'rule="per-ip"'), 1);
  // Refusals never reach the backend.
  assert.equal(await metric(sim.url, "llmgate_sim_requests_total", 'outcome="completed"'), 30);
  await gw.stop();
  await sim.stop();
});

test("concurrency slots are released on completion, error and client disconnect", async () => {
  const sim = await startSim({ profile: "default" });
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: parallel, key: client_ip, algorithm: concurrency, limit: 1}`,
    }),
  );
  // One long stream holds the only slot.
  const ctl = new AbortController();
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(chat({ stream: true, max_tokens: 400 })),
    signal: ctl.signal,
  });
  const reader = res.body.getReader();
  await reader.read();
  const busy = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() });
  assert.equal(busy.status, 429);
  assert.match(busy.json.error.message, /1 in flight/);
  ctl.abort(); // the client leaves: its slot must come back
  let ok = false;
  for (let i = 0; i < 40 && !ok; i++) {
    await new Promise((r) => setTimeout(r, 50));
    ok = (await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() })).status === 200;
  }
  assert.ok(ok, "the slot came back after the disconnect");
  // Errors give the slot back too: an invalid backend answer, then a normal request.
  await fetchJson(`${sim.url}/sim/faults`, { body: { error_rate: 1 } });
  // (A request not answered before: the response cache would answer a repeat when the backend fails.)
  assert.equal((await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat({ max_tokens: 9 }) })).status, 500);
  await fetchJson(`${sim.url}/sim/faults`, { body: { error_rate: 0 } });
  for (let i = 0; i < 3; i++) assert.equal((await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() })).status, 200);
  await gw.stop();
  await sim.stop();
});

test("keys name callers and tiers pick rules; X-Forwarded-For only from trusted proxies", async () => {
  const sim = await startSim();
  const cfg = gatewayConfig([sim], {
    extra: `tiers:
  - {name: free, degrade_from: 1}
  - {name: gold, degrade_from: 3}
default_tier: free
keys:
  - {key: "\${TEAM_A_KEY}", name: team-a, tier: gold}
trusted_proxies: [127.0.0.1]
limits:
  rules:
    - {name: free-per-key, key: api_key, algorithm: fixed_window, limit: 2/minute, tiers: [free]}
    - {name: watch, key: global, algorithm: fixed_window, limit: 1/minute, mode: shadow}`,
  });
  const gw = await startGateway(cfg, { env: { TEAM_A_KEY: "sk-team-a-secret" } });
  const post = (headers) => fetchJson(`${gw.url}/v1/chat/completions`, { body: chat(), headers });
  // Anonymous callers are keyed by address: behind the trusted proxy, X-Forwarded-For is that address.
  assert.equal((await post({ "x-forwarded-for": "203.0.113.1" })).status, 200);
  assert.equal((await post({ "x-forwarded-for": "203.0.113.1", authorization: "Bearer EMPTY" })).status, 200);
  assert.equal((await post({ "x-forwarded-for": "203.0.113.1", authorization: "Bearer sk-made-up" })).status, 429);
  assert.equal((await post({ "x-forwarded-for": "203.0.113.2" })).status, 200);
  // The gold key is not limited by the free rule.
  for (let i = 0; i < 4; i++) assert.equal((await post({ authorization: "Bearer sk-team-a-secret" })).status, 200);
  // The shadow rule refused nothing but counted.
  assert.ok((await metric(gw.url, "llmgate_ratelimit_shadow_refusals_total", 'rule="watch"')) >= 5);
  // Keys never appear in metrics.
  assert.doesNotMatch((await fetchJson(`${gw.url}/metrics`)).text, /sk-team-a-secret/);
  await gw.stop();

  // Without trusted proxies, X-Forwarded-For is ignored: every "address" is the same caller.
  const untrusted = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: per-ip, key: client_ip, algorithm: fixed_window, limit: 1/minute}`,
    }),
  );
  const p2 = (xff) => fetchJson(`${untrusted.url}/v1/chat/completions`, { body: chat(), headers: { "x-forwarded-for": xff } });
  assert.equal((await p2("198.51.100.1")).status, 200);
  assert.equal((await p2("198.51.100.2")).status, 429);
  await untrusted.stop();
  await sim.stop();
});

test("auth.mode required: unknown keys get 401 and never reach a backend", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `auth: {mode: required}
keys:
  - {key: sk-good, name: good}`,
    }),
  );
  const bad = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat(), headers: { authorization: "Bearer sk-bad" } });
  assert.equal(bad.status, 401);
  assert.equal(bad.json.error.code, "invalid_api_key");
  assert.equal((await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() })).status, 401);
  const good = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat(), headers: { authorization: "Bearer sk-good" } });
  assert.equal(good.status, 200);
  // The seed's GET /chat goes through the same check.
  assert.equal((await fetchJson(`${gw.url}/chat?query=hi`)).status, 401);
  assert.equal((await fetchJson(`${gw.url}/chat?query=hi`, { headers: { authorization: "Bearer sk-good" } })).status, 200);
  assert.equal(await metric(sim.url, "llmgate_sim_requests_total", 'outcome="completed"'), 2);
  await gw.stop();
  await sim.stop();
});

test("token costs: estimated up front, a request that can never fit is told so, usage settles the rest", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: tpm, key: client_ip, algorithm: token_bucket, limit: 300/minute, cost: tokens}`,
    }),
  );
  const huge = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat({ max_tokens: 1000 }) });
  assert.equal(huge.status, 429);
  assert.equal(huge.json.error.type, "tokens");
  assert.match(huge.json.error.message, /can never pass/);
  assert.equal(huge.headers.get("retry-after"), null);
  // max_tokens 100 reserves about 100 + the prompt; the simulator uses far fewer, and the difference comes back.
  const first = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat({ max_tokens: 100 }) });
  assert.equal(first.status, 200);
  const reserved = 300 - Number(first.headers.get("x-ratelimit-remaining-tokens"));
  assert.ok(reserved >= 100, `reserved ${reserved}`);
  const second = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat({ max_tokens: 100 }) });
  const used = first.json.usage.prompt_tokens + first.json.usage.completion_tokens;
  assert.ok(used < reserved);
  // After settling the first request, the second one found more left than a reservation-only count would give.
  assert.ok(Number(second.headers.get("x-ratelimit-remaining-tokens")) > 300 - 2 * reserved);
  await gw.stop();
  await sim.stop();
});

test("rules that need no body decide first: over the limit even a malformed body gets 429; a bad request under it is refunded", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: per-ip, key: client_ip, algorithm: fixed_window, limit: 2/hour}`,
    }),
  );
  const url = `${gw.url}/v1/chat/completions`;
  // Under the limit, bad requests are told what is wrong, count nothing and show no count.
  for (let i = 0; i < 3; i++) {
    const bad = await fetchJson(url, { body: '{"model": "Qwen3-1.7B", "messages": [' });
    assert.equal(bad.status, 400, `malformed body ${i + 1}`);
    assert.equal(bad.json.error.code, "invalid_json");
    assert.equal(bad.headers.get("x-ratelimit-remaining-requests"), null);
  }
  const unknown = await fetchJson(url, { body: chat({ model: "no-such-model" }) });
  assert.equal(unknown.status, 404);
  const invalid = await fetchJson(url, { body: chat({ max_tokens: 0 }) });
  assert.equal(invalid.status, 400);
  // So the two the rule allows are both still there.
  const first = await fetchJson(url, { body: chat() });
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("x-ratelimit-remaining-requests"), "1");
  assert.equal((await fetchJson(url, { body: chat() })).status, 200);
  // Over it, the rule answers before the body is read.
  const over = await fetchJson(url, { body: '{"model": "Qwen3-1.7B", "messages": [' });
  assert.equal(over.status, 429);
  assert.equal(over.json.error.code, "rate_limit_exceeded");
  assert.equal(over.headers.get("x-ratelimit-remaining-requests"), "0");
  assert.equal(await metric(gw.url, "llmgate_requests_total", 'model="-",status="429",outcome="rate_limited"'), 1);
  assert.equal(await metric(sim.url, "llmgate_sim_requests_total", 'outcome="completed"'), 2);
  await gw.stop();
  await sim.stop();
});

test("a rule keyed by model or costed in tokens reads the body first: a bad request is told so even over the limit", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: per-model, key: [client_ip, model], algorithm: fixed_window, limit: 1/hour}`,
    }),
  );
  const url = `${gw.url}/v1/chat/completions`;
  assert.equal((await fetchJson(url, { body: chat() })).status, 200);
  assert.equal((await fetchJson(url, { body: chat() })).status, 429);
  const bad = await fetchJson(url, { body: '{"model": "Qwen3-1.7B", "messages": [' });
  assert.equal(bad.status, 400, "the body decides which key counts, so it is read first");
  await gw.stop();
  await sim.stop();
});

test("bad rules are config errors with their line", async () => {
  const { spawnSync } = await import("node:child_process");
  const { writeFileSync, mkdtempSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const { LLMGATE_BIN } = await import("../lib/procs.mjs");
  const dir = mkdtempSync(join(tmpdir(), "llmgate-rules-"));
  const file = join(dir, "c.yaml");
  writeFileSync(
    file,
    `backends:
  - {name: a, url: "http://127.0.0.1:9", models: [Qwen3-1.7B]}
limits:
  rules:
    - {name: a, algorithm: leaky_bucketz, limit: 5/second}
    - {name: b, algorithm: fixed_window, limit: 0/minute}
    - {name: c, algorithm: token_bucket, limit: 5/second, burst: 0}
    - {name: d, algorithm: fixed_window, limit: 5/second, tiers: [platinum]}
`,
  );
  const r = spawnSync(LLMGATE_BIN, ["check", "-c", file], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /:5:\d+: limits\.rules\[0\]\.algorithm: unknown algorithm 'leaky_bucketz'/);
  assert.match(r.stderr, /:6:\d+: limits\.rules\[1\]\.limit: expected COUNT\/PERIOD/);
  assert.match(r.stderr, /:7:\d+: limits\.rules\[2\]\.burst: must be between 1/);
  assert.match(r.stderr, /limits\.rules\[3\]\.tiers: unknown tier 'platinum'/);
  rmSync(dir, { recursive: true, force: true });
});

test("on_limit: queue — requests wait their turn in order, up to max_wait, instead of a 429", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: paced, key: client_ip, algorithm: token_bucket, limit: 4/second, burst: 1, on_limit: queue, max_wait: 3s}`,
    }),
  );
  const started = Date.now();
  const order = [];
  const requests = [];
  for (let i = 0; i < 5; i++) {
    requests.push(
      fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() }).then((r) => {
        order.push(i);
        return r;
      }),
    );
    await new Promise((r) => setTimeout(r, 15)); // arrive in order
  }
  const results = await Promise.all(requests);
  for (const r of results) assert.equal(r.status, 200);
  assert.deepEqual(order, [0, 1, 2, 3, 4], "served first come, first served");
  // 1 at once, then one every 250 ms: about a second for five.
  assert.ok(Date.now() - started >= 900, `took ${Date.now() - started} ms`);
  await gw.stop();

  const short = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: paced, key: client_ip, algorithm: token_bucket, limit: 1/second, burst: 1, on_limit: queue, max_wait: 300ms}`,
    }),
  );
  const burst = await Promise.all([0, 1, 2].map(() => fetchJson(`${short.url}/v1/chat/completions`, { body: chat() })));
  const statuses = burst.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 429, 429], "a wait past max_wait is refused at once");
  await short.stop();
  await sim.stop();
});

test("token rules settle streamed answers too: usage is asked of the backend and not shown to a client that did not ask", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: tpm, key: client_ip, algorithm: token_bucket, limit: 2000/minute, cost: tokens}`,
    }),
  );
  const stream = async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat({ stream: true, max_tokens: 500 })),
    });
    const events = [];
    for await (const e of readSSE(res)) events.push(e);
    return { res, events };
  };
  const first = await stream();
  assert.ok(!first.events.some((e) => e.json?.usage), "no usage chunk for a client that did not ask");
  assert.equal(first.events.at(-1).data, "[DONE]");
  const reservedAfterFirst = 2000 - Number(first.res.headers.get("x-ratelimit-remaining-tokens"));
  assert.ok(reservedAfterFirst >= 500);
  // The first stream used far fewer than 500 tokens; the refund shows in the next request's headers.
  const second = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat({ max_tokens: 10 }) });
  const remaining = Number(second.headers.get("x-ratelimit-remaining-tokens"));
  // Unsettled, remaining would be below 2000 - reservedAfterFirst; settled, most of the 500 came back.
  assert.ok(remaining > 2000 - reservedAfterFirst + 200, `remaining ${remaining} after a settled stream`);
  await gw.stop();
  await sim.stop();
});

test("a stream without usage is counted event by event to settle token rules", async () => {
  const http = await import("node:http");
  const chunk = (delta, finish = null) =>
    `data: ${JSON.stringify({ id: "x", object: "chat.completion.chunk", created: 1, model: "Qwen3-1.7B", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      // No usage anywhere, even though the gateway asks for it.
      res.end(chunk({ role: "assistant", content: "" }) + chunk({ content: "one" }) + chunk({ content: " two" }) +
        chunk({ content: " three" }) + chunk({ content: "" }, "stop") + "data: [DONE]\n\n");
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const backend = { url: `http://127.0.0.1:${server.address().port}` };
  const gw = await startGateway(
    gatewayConfig([backend], {
      extra: `limits:
  rules:
    - {name: tpm, key: client_ip, algorithm: token_bucket, limit: 1000/minute, cost: tokens}`,
    }),
  );
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(chat({ stream: true, max_tokens: 600 })),
  });
  const reserved = 1000 - Number(res.headers.get("x-ratelimit-remaining-tokens"));
  for await (const _ of readSSE(res));
  const prompt = reserved - 600;
  const next = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat({ stream: true, max_tokens: 10 }) });
  // Settled to prompt + 3 content events, not the 600 reserved: the next one finds about 1000 - prompt - 3 - (prompt + 10).
  const remaining = Number(next.headers.get("x-ratelimit-remaining-tokens"));
  assert.ok(remaining >= 1000 - prompt - 3 - (prompt + 10) - 1 && remaining <= 1000 - prompt - 3 - (prompt + 10) + 5, `remaining ${remaining}, prompt ${prompt}`);
  await gw.stop();
  server.close();
});

test("a concurrency slot comes back when the backend times out", async () => {
  const sim = await startSim({ args: ["--hang"] });
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `upstream: {first_token_timeout: 200ms}
breaker: {enabled: false}
limits:
  rules:
    - {name: parallel, key: global, algorithm: concurrency, limit: 1}`,
    }),
  );
  for (let i = 0; i < 3; i++) {
    const r = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() });
    assert.equal(r.status, 504, `attempt ${i + 1} must time out, not be refused for a leaked slot`);
  }
  await gw.stop();
  await sim.stop();
});
