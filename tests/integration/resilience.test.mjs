// Resilience end to end: breakers, health checks, retries and their budget,
// failover when a backend dies, hangs or slows down, per-backend
// max_in_flight with its queue, balancing strategies, scraped load, and the
// client's own deadline. Real gateway and simulator processes on loopback
// ports chosen at run time; every load loop is bounded in count and time.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import {
  startSim,
  startGateway,
  gatewayConfig,
  spawnLlmgate,
  fetchJson,
  readSSE,
  stopAll,
  metric,
  eventually,
} from "../lib/procs.mjs";

after(stopAll);

const chat = (extra = {}) => ({
  model: "Qwen3-1.7B",
  messages: [{ role: "user", content: "你是谁?" }],
  max_tokens: 8,
  ...extra,
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const post = (gw, body = chat(), headers = {}) =>
  fetchJson(`${gw.url}/v1/chat/completions`, { body, headers });

// A streamed request read to its end: {status, backend, events, error}.
async function stream(gw, body = chat({ stream: true })) {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!(res.headers.get("content-type") || "").includes("text/event-stream"))
    return { status: res.status, backend: res.headers.get("x-llmgate-backend"), events: [], text: await res.text() };
  const events = [];
  for await (const e of readSSE(res)) events.push(e);
  return {
    status: res.status,
    backend: res.headers.get("x-llmgate-backend"),
    events,
    error: events.find((e) => e.json?.error),
  };
}

// A simulator on a fixed port (to bring a killed one back where it was).
function simOnPort(port, args = []) {
  return spawnLlmgate(
    ["sim", "--host", "127.0.0.1", "--port", String(port), "--model", "Qwen3-1.7B", "--profile", "instant", ...args],
    { name: `sim(:${port})` },
  );
}

// A plain HTTP backend under the test's control: `metrics` is served on
// /metrics, completions get a small JSON answer, or (hangAfterHead) a stream
// head and then nothing (a whole answer: nothing at all).
function fakeBackend({ metrics = "", hangAfterHead = false, status = 200 } = {}) {
  const state = { metrics, completions: 0, open: new Set() };
  const server = http.createServer((req, res) => {
    state.open.add(res);
    res.on("close", () => state.open.delete(res));
    if (req.method === "GET") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(req.url === "/metrics" ? state.metrics : "ok");
      return;
    }
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      state.completions++;
      if (hangAfterHead) {
        if (!JSON.parse(body).stream) return; // a whole answer: no head either
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.flushHeaders();
        return; // never a first event
      }
      res.writeHead(status, { "content-type": "application/json" });
      if (status !== 200) {
        res.end(JSON.stringify({ error: { message: "bad", type: "BadRequestError", param: null, code: status } }));
        return;
      }
      res.end(
        JSON.stringify({
          id: "x",
          object: "chat.completion",
          created: 1,
          model: "Qwen3-1.7B",
          choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }),
      );
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(
        Object.assign(state, {
          url: `http://127.0.0.1:${server.address().port}`,
          close: () => {
            for (const r of state.open) r.destroy();
            server.close();
          },
        }),
      ),
    ),
  );
}

const quietHealth = "health: {enabled: false}";

describe("circuit breaker", () => {
  test("opens after failure_threshold failures, answers 503 while open, probes after recovery_timeout, closes or reopens", async () => {
    const sim = await startSim({ args: ["--error-rate", "1", "--error-status", "500"] });
    const gw = await startGateway(
      gatewayConfig([sim], {
        extra: `${quietHealth}
retry: {max_attempts: 1}
breaker: {failure_threshold: 3, recovery_timeout: 1s}`,
      }),
    );
    for (let i = 0; i < 3; i++) assert.equal((await post(gw)).status, 500, "the backend's own 500 passes through");
    const open = await post(gw);
    assert.equal(open.status, 503);
    assert.equal(open.json.error.code, "no_backend_available");
    assert.ok(Number(open.headers.get("retry-after")) >= 1);
    assert.equal(await metric(gw.url, "llmgate_backend_breaker_state", { backend: "sim-a" }), 2);
    assert.equal(await metric(sim.url, "llmgate_sim_requests_total", { outcome: "failed" }), 3, "nothing reached the backend while open");

    // Half-open after 1 s: the probe fails (still broken), the breaker opens again.
    await sleep(1100);
    assert.equal((await post(gw)).status, 500);
    assert.equal((await post(gw)).status, 503);
    assert.equal(await metric(gw.url, "llmgate_breaker_transitions_total", { backend: "sim-a", state: "open" }), 2);

    // Repaired: the next probe succeeds and closes it.
    await fetchJson(`${sim.url}/sim/faults`, { body: { error_rate: 0 } });
    await sleep(1100);
    assert.equal((await post(gw)).status, 200);
    assert.equal(await metric(gw.url, "llmgate_backend_breaker_state", { backend: "sim-a" }), 0);
    assert.equal((await post(gw)).status, 200);
    assert.equal(await metric(gw.url, "llmgate_breaker_transitions_total", { backend: "sim-a", state: "closed" }), 1);
  });

  test("a backend's 4xx is the client's fault: the breaker stays closed", async () => {
    const backend = await fakeBackend({ status: 400 });
    const gw = await startGateway(gatewayConfig([backend], { extra: `${quietHealth}\nbreaker: {failure_threshold: 2}` }));
    for (let i = 0; i < 4; i++) assert.equal((await post(gw)).status, 400);
    assert.equal(backend.completions, 4);
    assert.equal(await metric(gw.url, "llmgate_backend_breaker_state", { backend: "sim-a" }), 0);
    backend.close();
  });
});

describe("failover", () => {
  test("kill one of two simulators under load: nothing that had not started streaming fails; the dead one is tried at most failure_threshold (+ in flight) times; it rejoins after it recovers", async () => {
    const a = await startSim({ args: ["--latency-ms", "20"] });
    const b = await startSim({ args: ["--latency-ms", "20"] });
    const threshold = 3;
    const loops = 6;
    const gw = await startGateway(
      gatewayConfig([a, b], {
        workers: 2,
        extra: `${quietHealth}
breaker: {failure_threshold: ${threshold}, recovery_timeout: 1s}`,
      }),
    );
    const failures = [];
    let sent = 0;
    let interrupted = 0;
    let stopLoad = false;
    const loop = async () => {
      for (let i = 0; i < 400 && !stopLoad; i++) {
        sent++;
        const r = await stream(gw);
        if (r.status !== 200) failures.push(`${r.status} ${r.text}`);
        else if (r.error) interrupted++; // started streaming, then the backend died: allowed
        else if (r.events.at(-1)?.data !== "[DONE]") failures.push("stream without [DONE]");
      }
    };
    const running = Array.from({ length: loops }, loop);
    await sleep(400);
    assert.ok((await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a", result: "ok" })) > 0, "sim-a served before the kill");
    const port = a.port;
    a.proc.kill("SIGKILL");
    await a.exited;
    await sleep(600);
    await eventually(async () => (await metric(gw.url, "llmgate_breaker_transitions_total", { backend: "sim-a", state: "open" })) >= 1, {
      what: "sim-a's breaker opened",
    });
    // Every exchange with sim-a after the kill failed; the breaker stopped them after `threshold`
    // (plus those already in flight when it died).
    const failedOnA =
      (await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a" })) -
      (await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a", result: "ok" }));
    assert.ok(failedOnA >= 1, "the kill was noticed");
    assert.ok(failedOnA <= threshold + loops, `dead backend tried ${failedOnA} times (threshold ${threshold}, ${loops} in flight)`);
    const okOnA = await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a", result: "ok" });

    // Back on the same port: after recovery_timeout a probe succeeds and it takes traffic again.
    const a2 = await simOnPort(port, ["--latency-ms", "20"]);
    await eventually(async () => (await metric(a2.url, "llmgate_sim_requests_total", { outcome: "completed" })) >= 3, {
      timeoutMs: 5000,
      what: "sim-a serving again",
    });
    stopLoad = true;
    await Promise.all(running);
    assert.deepEqual(failures, [], `failed requests out of ${sent}`);
    assert.ok(interrupted <= loops, `${interrupted} streams cut by the kill`);
    assert.equal(await metric(gw.url, "llmgate_backend_breaker_state", { backend: "sim-a" }), 0);
    assert.ok((await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a", result: "ok" })) > okOnA);
    await a2.stop();
  });

  test("a hanging backend: first-token timeout, then the other backend answers (streamed and not)", async () => {
    const hung = await startSim({ args: ["--hang"] });
    const headOnly = await fakeBackend({ hangAfterHead: true }); // sends a stream head, never an event
    const good = await startSim();
    const gw = await startGateway(
      gatewayConfig([hung, headOnly, good], {
        extra: `${quietHealth}
upstream: {first_token_timeout: 300ms}
breaker: {failure_threshold: 100}
retry: {max_attempts: 3, budget_min_per_second: 100}`,
      }),
    );
    for (let i = 0; i < 3; i++) {
      const r = await post(gw);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-llmgate-backend"), "sim-c");
      const s = await stream(gw);
      assert.equal(s.status, 200);
      assert.equal(s.backend, "sim-c");
      assert.equal(s.error, undefined);
      assert.equal(s.events.at(-1).data, "[DONE]");
    }
    assert.ok((await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a", result: "timeout" })) >= 1);
    assert.ok((await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-b", result: "timeout" })) >= 1);
    assert.ok((await metric(gw.url, "llmgate_retries_total", { reason: "timeout" })) >= 2);
    headOnly.close();
  });

  test("with one backend a timeout is not retried on it: 504 after one first_token_timeout", async () => {
    const hung = await startSim({ args: ["--hang"] });
    const gw = await startGateway(gatewayConfig([hung], { extra: `${quietHealth}\nupstream: {first_token_timeout: 200ms}` }));
    const r = await post(gw);
    assert.equal(r.status, 504);
    assert.equal(r.json.error.code, "upstream_timeout");
    assert.equal(await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a" }), 1);
    assert.equal(await metric(gw.url, "llmgate_retries_total"), 0, "no retry counted: there was nowhere to go");
    assert.equal(await metric(gw.url, "llmgate_retries_refused_total"), 0, "no budget spent on it");
  });

  test("a slow backend: least_outstanding sends most requests to the fast one", async () => {
    const slow = await startSim({ args: ["--latency-ms", "300"] });
    const fast = await startSim();
    const gw = await startGateway(
      gatewayConfig([slow, fast], { extra: quietHealth }).replace(
        "aliases: [qwen3-1.7b]}",
        "aliases: [qwen3-1.7b], balance: least_outstanding}",
      ),
    );
    const count = { "sim-a": 0, "sim-b": 0 };
    const loop = async () => {
      for (let i = 0; i < 10; i++) {
        const r = await post(gw);
        assert.equal(r.status, 200);
        count[r.headers.get("x-llmgate-backend")]++;
      }
    };
    await Promise.all(Array.from({ length: 6 }, loop));
    assert.ok(count["sim-b"] > 2 * count["sim-a"], `fast ${count["sim-b"]} vs slow ${count["sim-a"]}`);
  });
});

describe("overload", () => {
  test("max_in_flight + queue at 3x capacity: the backend never holds more, the queue never more than its max, the rest get 503 at once", async () => {
    const sim = await startSim({ args: ["--latency-ms", "1500"] });
    const gw = await startGateway(
      gatewayConfig([sim], { workers: 2, extra: quietHealth }).replace(
        "kind: vllm,",
        "kind: vllm, max_in_flight: 4, queue: {max: 4, timeout: 10s},",
      ),
    );
    const results = await Promise.all(Array.from({ length: 12 }, () => post(gw)));
    const ok = results.filter((r) => r.status === 200);
    const busy = results.filter((r) => r.status === 503);
    assert.equal(ok.length + busy.length, 12, results.map((r) => r.status).join(","));
    assert.equal(busy.length, 4);
    for (const r of busy) {
      assert.equal(r.json.error.code, "service_busy");
      assert.equal(r.json.error.type, "service_unavailable");
      assert.ok(Number(r.headers.get("retry-after")) >= 1);
    }
    assert.equal(await metric(sim.url, "llmgate_sim_peak_open_requests"), 4, "the backend held max_in_flight at most");
    assert.equal(await metric(gw.url, "llmgate_backend_in_flight_peak", { backend: "sim-a" }), 4);
    assert.equal(await metric(gw.url, "llmgate_backend_queue_peak", { backend: "sim-a" }), 4);
    assert.equal(await metric(gw.url, "llmgate_backend_queued_total", { backend: "sim-a" }), 4);
    assert.equal(await metric(gw.url, "llmgate_busy_rejections_total", { model: "Qwen3-1.7B" }), 4);
    assert.equal(await metric(gw.url, "llmgate_backend_in_flight", { backend: "sim-a" }), 0, "every slot came back");
    assert.equal(await metric(sim.url, "llmgate_sim_requests_total", { outcome: "completed" }), 8);
  });

  test("a request waiting in line gets 503 at the queue timeout", async () => {
    const sim = await startSim({ args: ["--latency-ms", "1500"] });
    const gw = await startGateway(
      gatewayConfig([sim], { extra: quietHealth }).replace(
        "kind: vllm,",
        "kind: vllm, max_in_flight: 1, queue: {max: 1, timeout: 300ms},",
      ),
    );
    const first = post(gw);
    await eventually(async () => (await metric(gw.url, "llmgate_backend_in_flight", { backend: "sim-a" })) === 1, {
      what: "the first request holds the slot",
    });
    const waited = await post(gw);
    assert.equal(waited.status, 503);
    assert.equal(waited.json.error.code, "service_busy");
    assert.match(waited.json.error.message, /queue timeout/);
    assert.equal((await first).status, 200);
    assert.equal(await metric(gw.url, "llmgate_backend_in_flight", { backend: "sim-a" }), 0);
  });

  test("a client that gives up while in line leaves it at once", async () => {
    const sim = await startSim({ args: ["--latency-ms", "20000"] });
    const gw = await startGateway(
      gatewayConfig([sim], { extra: quietHealth }).replace(
        "kind: vllm,",
        "kind: vllm, max_in_flight: 1, queue: {max: 1, timeout: 30s},",
      ),
    );
    const holder = new AbortController();
    const first = fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat()),
      signal: holder.signal,
    }).catch(() => "aborted");
    await eventually(async () => (await metric(gw.url, "llmgate_backend_in_flight", { backend: "sim-a" })) === 1, {
      what: "the first request holds the slot",
    });
    const ac = new AbortController();
    const leaving = fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat()),
      signal: ac.signal,
    }).catch(() => "aborted");
    await eventually(async () => (await metric(gw.url, "llmgate_backend_queue_length", { backend: "sim-a" })) === 1, {
      what: "the second request waits in line",
    });
    ac.abort();
    assert.equal(await leaving, "aborted");
    // Neither the 30 s queue timeout nor the 20 s answer can empty the line within this wait: only the departure can.
    await eventually(async () => (await metric(gw.url, "llmgate_backend_queue_length", { backend: "sim-a" })) === 0, {
      timeoutMs: 5000,
      what: "the line emptied",
    });
    assert.equal(await metric(gw.url, "llmgate_backend_in_flight", { backend: "sim-a" }), 1, "the holder still runs");
    holder.abort();
    assert.equal(await first, "aborted");
    await eventually(async () => (await metric(gw.url, "llmgate_backend_in_flight", { backend: "sim-a" })) === 0, {
      what: "the slot came back",
    });
  });
});

describe("retry budget", () => {
  test("with every backend failing, retries stay within budget_ratio of the requests", async () => {
    const a = await startSim({ args: ["--error-rate", "1", "--error-status", "502"] });
    const b = await startSim({ args: ["--error-rate", "1", "--error-status", "503"] });
    const gw = await startGateway(
      gatewayConfig([a, b], {
        extra: `${quietHealth}
breaker: {enabled: false}
retry: {max_attempts: 3, backoff: 1ms, budget_ratio: 0.2, budget_min_per_second: 0, budget_window: 60s}`,
      }),
    );
    const n = 50;
    for (let i = 0; i < n; i++) {
      const r = await post(gw);
      assert.ok(r.status === 502 || r.status === 503, `status ${r.status}`);
    }
    const retries = await metric(gw.url, "llmgate_retries_total");
    const attempts =
      (await metric(a.url, "llmgate_sim_requests_total", { outcome: "failed" })) +
      (await metric(b.url, "llmgate_sim_requests_total", { outcome: "failed" }));
    assert.ok(retries <= 0.2 * n, `${retries} retries for ${n} requests`);
    assert.ok(retries >= 0.2 * n - 2, `the budget was used (${retries})`);
    assert.equal(attempts, n + retries, "every retry reached a backend, nothing else did");
    assert.ok((await metric(gw.url, "llmgate_retries_refused_total")) > 0);
  });
});

describe("health checks", () => {
  test("a backend failing its checks is taken out before any request fails on it, and rejoins after it passes again", async () => {
    const a = await startSim();
    const b = await startSim();
    const gw = await startGateway(
      gatewayConfig([a, b], {
        // A sanitized gateway (make tsan) answers checks several times slower.
        extra: `health: {interval: 100ms, timeout: ${process.env.LLMGATE_SANITIZED ? "1s" : "200ms"}, unhealthy_threshold: 2, healthy_threshold: 2}`,
      }),
    );
    assert.equal((await post(gw)).status, 200);
    await fetchJson(`${a.url}/sim/faults`, { body: { refuse: true, refuse_for_ms: 4000 } });
    await eventually(async () => (await metric(gw.url, "llmgate_backend_healthy", { backend: "sim-a" })) === 0, {
      what: "sim-a unhealthy",
    });
    const failedBefore =
      (await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a" })) -
      (await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a", result: "ok" }));
    for (let i = 0; i < 6; i++) {
      const r = await post(gw);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-llmgate-backend"), "sim-b");
    }
    const failedAfter =
      (await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a" })) -
      (await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a", result: "ok" }));
    assert.equal(failedAfter, failedBefore, "no request was sent to the unhealthy backend");
    await eventually(async () => (await metric(gw.url, "llmgate_backend_healthy", { backend: "sim-a" })) === 1, {
      timeoutMs: 10000,
      what: "sim-a healthy again",
    });
    const seen = new Set();
    for (let i = 0; i < 4; i++) seen.add((await post(gw)).headers.get("x-llmgate-backend"));
    assert.ok(seen.has("sim-a"), "sim-a takes traffic again");
    assert.ok((await metric(gw.url, "llmgate_health_checks_total", { backend: "sim-a", result: "fail" })) >= 2);
  });

  test("every backend down: 503 no_backend_available with Retry-After, never a hang", async () => {
    const a = await startSim();
    const gw = await startGateway(
      gatewayConfig([a], { extra: "health: {interval: 100ms, timeout: 200ms, unhealthy_threshold: 1}" }),
    );
    await fetchJson(`${a.url}/sim/faults`, { body: { refuse: true } });
    await eventually(async () => (await metric(gw.url, "llmgate_backend_healthy", { backend: "sim-a" })) === 0, {
      what: "sim-a unhealthy",
    });
    const r = await post(gw);
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, "no_backend_available");
    assert.ok(Number(r.headers.get("retry-after")) >= 1);
  });
});

describe("balancing and scraped load", () => {
  test("least_busy follows the engines' own queues scraped from metrics_url", async () => {
    const a = await fakeBackend({ metrics: 'vllm:num_requests_waiting{model_name="Qwen3-1.7B"} 7\nvllm:kv_cache_usage_perc{model_name="Qwen3-1.7B"} 0.9\n' });
    const b = await fakeBackend({ metrics: 'vllm:num_requests_waiting{model_name="Qwen3-1.7B"} 0\nvllm:kv_cache_usage_perc{model_name="Qwen3-1.7B"} 0.2\n' });
    const gw = await startGateway(
      gatewayConfig([a, b], { extra: `${quietHealth}\nscrape: {interval: 100ms}` }).replace(
        "aliases: [qwen3-1.7b]}",
        "aliases: [qwen3-1.7b], balance: least_busy}",
      ),
    );
    await eventually(async () => (await metric(gw.url, "llmgate_backend_engine_waiting_requests", { backend: "sim-a" })) === 7, {
      what: "sim-a scraped",
    });
    await eventually(async () => (await metric(gw.url, "llmgate_backend_kv_cache_usage_ratio", { backend: "sim-b" })) === 0.2, {
      what: "sim-b scraped",
    });
    for (let i = 0; i < 5; i++) assert.equal((await post(gw)).headers.get("x-llmgate-backend"), "sim-b");
    // The queues turn around.
    a.metrics = 'vllm:num_requests_waiting{model_name="Qwen3-1.7B"} 0\n';
    b.metrics = 'vllm:num_requests_waiting{model_name="Qwen3-1.7B"} 12\n';
    await eventually(async () => (await metric(gw.url, "llmgate_backend_engine_waiting_requests", { backend: "sim-b" })) === 12, {
      what: "sim-b rescraped",
    });
    for (let i = 0; i < 5; i++) assert.equal((await post(gw)).headers.get("x-llmgate-backend"), "sim-a");
    a.close();
    b.close();
  });

  test("GPU figures are scraped from gpu_metrics_url and re-exported", async () => {
    const sim = await startSim({ args: ["--gpu-temp", "91"] });
    const gw = await startGateway(
      gatewayConfig([sim], { extra: `${quietHealth}\nscrape: {interval: 100ms}` }).replace(
        "kind: vllm,",
        `kind: vllm, gpu_metrics_url: "${sim.url}/metrics",`,
      ),
    );
    await eventually(async () => (await metric(gw.url, "llmgate_backend_gpu_temperature_celsius", { backend: "sim-a" })) === 91, {
      what: "GPU temperature scraped",
    });
    assert.ok((await metric(gw.url, "llmgate_backend_scrapes_total", { backend: "sim-a", target: "gpu", result: "ok" })) >= 1);
  });

  test("weighted splits by weight; prefix_affinity keeps a prompt on one backend", async () => {
    const sims = await Promise.all([startSim(), startSim(), startSim()]);
    const weighted = await startGateway(
      gatewayConfig(sims.slice(0, 2), { extra: quietHealth })
        .replace("kind: vllm,", "kind: vllm, weight: 3,")
        .replace("aliases: [qwen3-1.7b]}", "aliases: [qwen3-1.7b], balance: weighted}"),
    );
    const count = {};
    for (let i = 0; i < 40; i++) {
      const b = (await post(weighted)).headers.get("x-llmgate-backend");
      count[b] = (count[b] || 0) + 1;
    }
    assert.deepEqual(count, { "sim-a": 30, "sim-b": 10 });

    const affinity = await startGateway(
      gatewayConfig(sims, { extra: quietHealth }).replace(
        "aliases: [qwen3-1.7b]}",
        "aliases: [qwen3-1.7b], balance: prefix_affinity}",
      ),
    );
    const owners = new Map();
    for (let p = 0; p < 8; p++) {
      for (let i = 0; i < 3; i++) {
        const body = chat({
          messages: [
            // A system prompt longer than the 512 bytes hashed, as real ones are.
            { role: "system", content: `You are assistant number ${p}. ` + "Answer briefly and politely. ".repeat(24) },
            { role: "user", content: `question ${i}` },
          ],
        });
        const b = (await post(affinity, body)).headers.get("x-llmgate-backend");
        if (!owners.has(p)) owners.set(p, new Set());
        owners.get(p).add(b);
      }
    }
    for (const [p, set] of owners) assert.equal(set.size, 1, `prompt ${p} went to ${[...set]}`);
    assert.ok(new Set([...owners.values()].map((s) => [...s][0])).size >= 2, "prompts spread over backends");
  });
});

describe("the client's deadline", () => {
  // Without the client's deadline these would wait for the 10-minute first_token_timeout: the test's own timeout catches that.
  test("x-request-timeout and x-stainless-timeout cap the wait; a malformed x-request-timeout is a 400", { timeout: 30000 }, async () => {
    const hung = await startSim({ args: ["--hang"] });
    const gw = await startGateway(
      gatewayConfig([hung], { extra: `${quietHealth}\nupstream: {first_token_timeout: 10m}\nbreaker: {failure_threshold: 1}` }),
    );
    const r = await post(gw, chat(), { "x-request-timeout": "0.3" });
    assert.equal(r.status, 504);
    assert.match(r.json.error.message, /own deadline \(x-request-timeout/);
    const s = await post(gw, chat(), { "x-stainless-timeout": "1" });
    assert.equal(s.status, 504);
    assert.match(s.json.error.message, /deadline/);
    // The client's deadline is not the backend's fault: with failure_threshold 1 the breaker is still closed.
    assert.equal(await metric(gw.url, "llmgate_backend_breaker_state", { backend: "sim-a" }), 0);
    assert.equal(await metric(gw.url, "llmgate_upstream_requests_total", { backend: "sim-a", result: "client_deadline" }), 2);
    assert.equal(await metric(gw.url, "llmgate_retries_total"), 0);
    const bad = await post(gw, chat(), { "x-request-timeout": "soon" });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, "x-request-timeout");
  });
});
