// The gateway in front of real `llmgate sim` processes (and, where exact
// bytes matter, a fixed-bytes backend written here): routing, streaming,
// reasoning, keep-alive, cancellation, errors.
import { test, after, describe } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { spawn } from "node:child_process";
import {
  startSim,
  startGateway,
  startStack,
  gatewayConfig,
  fetchJson,
  readSSE,
  stopAll,
} from "../lib/procs.mjs";

after(stopAll);

const chat = (extra = {}) => ({
  model: "Qwen3-1.7B",
  messages: [{ role: "user", content: "你是谁?" }],
  ...extra,
});

async function metric(url, name, labels = "") {
  const { text } = await fetchJson(`${url}/metrics`);
  const line = text.split("\n").find((l) => l.startsWith(name + (labels ? `{${labels}}` : " ")) || l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(" ").pop()) : 0;
}

async function streamEvents(url, body, headers = {}) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const events = [];
  for await (const e of readSSE(res)) events.push(e);
  return { res, events };
}

// A backend that answers every chat completion with fixed SSE bytes, cut into
// fixed pieces, so the gateway's relay can be compared byte for byte.
function fixedBackend(pieces, { status = 200, contentType = "text/event-stream" } = {}) {
  const seen = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", async () => {
      // Health checks and metric scrapes (GET) come too; only completions are recorded.
      if (req.method === "POST") seen.push({ url: req.url, headers: req.headers, body });
      res.writeHead(status, { "content-type": contentType });
      for (const p of pieces) {
        res.write(p);
        await new Promise((r) => setTimeout(r, 5));
      }
      res.end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() }),
    ),
  );
}

function rawRequest(port, text, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    let data = "";
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ data, timedOut: true });
    }, timeoutMs);
    sock.on("connect", () => sock.write(text));
    sock.on("data", (d) => (data += d.toString("latin1")));
    sock.on("close", () => {
      clearTimeout(timer);
      resolve({ data, closed: true });
    });
    sock.on("error", reject);
  });
}

describe("proxying to two simulators", async () => {
  const stack = await startStack({ n: 2 });
  const gw = stack.gw.url;
  after(() => stack.stop());

  test("non-streamed chat: reasoning split out of <think>, headers say who answered", async () => {
    const r = await fetchJson(`${gw}/v1/chat/completions`, { body: chat() });
    assert.equal(r.status, 200);
    const msg = r.json.choices[0].message;
    assert.ok(msg.content.length > 0);
    assert.ok(!msg.content.includes("<think>") && !msg.content.includes("</think>"));
    assert.ok(msg.reasoning_content && msg.reasoning_content.length > 0);
    assert.match(r.headers.get("x-llmgate-backend"), /^sim-[ab]$/);
    assert.equal(r.headers.get("x-llmgate-degraded"), "L0");
    assert.ok(r.headers.get("x-request-id"));
    assert.ok(r.json.usage.completion_tokens > 0);
  });

  test("round robin spreads requests over both backends", async () => {
    const seen = new Set();
    for (let i = 0; i < 4; i++) {
      const r = await fetchJson(`${gw}/v1/chat/completions`, { body: chat() });
      seen.add(r.headers.get("x-llmgate-backend"));
    }
    assert.deepEqual([...seen].sort(), ["sim-a", "sim-b"]);
  });

  test("aliases resolve to the canonical model", async () => {
    const r = await fetchJson(`${gw}/v1/chat/completions`, { body: chat({ model: "qwen3-1.7b" }) });
    assert.equal(r.status, 200);
    assert.equal(r.json.model, "Qwen3-1.7B");
  });

  test("streamed chat: reasoning deltas, then content, usage chunk, [DONE]", async () => {
    const { res, events } = await streamEvents(gw, chat({ stream: true, stream_options: { include_usage: true } }));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^text\/event-stream/);
    assert.equal(events.at(-1).data, "[DONE]");
    const deltas = events.filter((e) => e.json?.choices?.length).map((e) => e.json.choices[0].delta);
    const reasoning = deltas.map((d) => d.reasoning_content ?? "").join("");
    const content = deltas.map((d) => d.content ?? "").join("");
    assert.ok(reasoning.length > 0, "reasoning streamed");
    assert.ok(content.length > 0 && !content.includes("<think>") && !content.includes("</think>"));
    const usage = events.find((e) => e.json?.usage);
    assert.ok(usage.json.usage.completion_tokens > 0);
    // The same prompt without a stream gives the same text (the simulator is deterministic).
    const whole = await fetchJson(`${gw}/v1/chat/completions`, { body: chat() });
    assert.equal(content, whole.json.choices[0].message.content);
    assert.equal(reasoning, whole.json.choices[0].message.reasoning_content);
  });

  test("return_reasoning=false strips reasoning, streamed and not", async () => {
    const r = await fetchJson(`${gw}/v1/chat/completions`, { body: chat({ return_reasoning: false }) });
    assert.equal(r.json.choices[0].message.reasoning_content, undefined);
    assert.ok(!r.json.choices[0].message.content.includes("<think>"));
    const { events } = await streamEvents(gw, chat({ stream: true, return_reasoning: false }));
    for (const e of events) {
      const d = e.json?.choices?.[0]?.delta;
      if (d) assert.equal(d.reasoning_content, undefined);
    }
  });

  test("enable_thinking=false at the top level reaches the backend as chat_template_kwargs", async () => {
    const r = await fetchJson(`${gw}/v1/chat/completions`, { body: chat({ enable_thinking: false }) });
    assert.equal(r.status, 200);
    assert.equal(r.json.choices[0].message.reasoning_content, undefined);
    const r2 = await fetchJson(`${gw}/v1/chat/completions`, {
      body: chat({ chat_template_kwargs: { enable_thinking: false } }),
    });
    assert.equal(r2.json.choices[0].message.reasoning_content, undefined);
  });

  test("/v1/completions, streamed and not", async () => {
    const r = await fetchJson(`${gw}/v1/completions`, { body: { model: "Qwen3-1.7B", prompt: "Once", max_tokens: 5 } });
    assert.equal(r.status, 200);
    assert.equal(r.json.object, "text_completion");
    assert.equal(r.json.usage.completion_tokens, 5);
    const res = await fetch(`${gw}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "Qwen3-1.7B", prompt: "Once", max_tokens: 5, stream: true }),
    });
    const texts = [];
    for await (const e of readSSE(res)) if (e.json?.choices?.length) texts.push(e.json.choices[0].text);
    assert.equal(texts.join(""), r.json.choices[0].text);
  });

  test("tool calls pass through untouched, streamed and not", async () => {
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } }];
    const r = await fetchJson(`${gw}/v1/chat/completions`, {
      body: chat({ tools, tool_choice: "required", enable_thinking: false }),
    });
    assert.equal(r.json.choices[0].finish_reason, "tool_calls");
    const call = r.json.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, "get_weather");
    assert.deepEqual(JSON.parse(call.function.arguments), { query: "llmgate" });
    const { events } = await streamEvents(gw, chat({ tools, tool_choice: "required", stream: true, enable_thinking: false }));
    const deltas = events.flatMap((e) => e.json?.choices?.[0]?.delta?.tool_calls ?? []);
    assert.equal(deltas[0].function.name, "get_weather");
    assert.equal(deltas.map((d) => d.function.arguments).join(""), call.function.arguments);
  });

  test("keep-alive: sequential requests reuse upstream connections", async () => {
    const before =
      (await metric(gw, "llmgate_upstream_connections_opened_total", 'backend="sim-a"')) +
      (await metric(gw, "llmgate_upstream_connections_opened_total", 'backend="sim-b"'));
    for (let i = 0; i < 10; i++) {
      const r = await fetchJson(`${gw}/v1/chat/completions`, { body: chat() });
      assert.equal(r.status, 200);
    }
    const afterCount =
      (await metric(gw, "llmgate_upstream_connections_opened_total", 'backend="sim-a"')) +
      (await metric(gw, "llmgate_upstream_connections_opened_total", 'backend="sim-b"'));
    assert.ok(afterCount - before <= 2, `opened ${afterCount - before} new upstream connections for 10 requests`);
    assert.ok(afterCount >= 1);
  });

  test("bad requests get OpenAI-shaped 4xx and never reach a backend", async () => {
    const simTotal = async () => {
      let n = 0;
      for (const s of stack.sims)
        for (const o of ["completed", "aborted", "failed"])
          n += await metric(s.url, "llmgate_sim_requests_total", `outcome="${o}"`);
      return n;
    };
    const before = await simTotal();
    const cases = [
      ["{not json", 400, "invalid_json"],
      [JSON.stringify({ model: "Qwen3-1.7B", messages: [] }), 400, "empty_array"],
      [JSON.stringify({ model: "Qwen3-1.7B" }), 400, "missing_required_parameter"],
      [JSON.stringify(chat({ max_tokens: 0 })), 400, "invalid_value"],
      [JSON.stringify(chat({ max_tokens: "many" })), 400, "invalid_type"],
      [JSON.stringify(chat({ n: 1000 })), 400, "invalid_value"],
      [JSON.stringify(chat({ stream: "yes" })), 400, "invalid_type"],
      [JSON.stringify({ model: 5, messages: [{ role: "user", content: "x" }] }), 400, "invalid_type"],
      [JSON.stringify(chat({ model: "gpt-4" })), 404, "model_not_found"],
    ];
    for (const [body, status, code] of cases) {
      const r = await fetchJson(`${gw}/v1/chat/completions`, { body });
      assert.equal(r.status, status, body);
      assert.equal(r.json.error.code, code, body);
      assert.equal(typeof r.json.error.message, "string");
      assert.ok("param" in r.json.error && "type" in r.json.error);
    }
    const bad = await fetchJson(`${gw}/v1/nope`);
    assert.equal(bad.status, 404);
    assert.equal(bad.json.error.type, "invalid_request_error");
    // Other methods: 404 on an unknown path, 405 on a known one — and the
    // gateway lives on (g++ 12 once freed these replies twice).
    for (let i = 0; i < 3; i++) {
      assert.equal((await fetchJson(`${gw}/v1/nope`, { method: "POST", body: "{}" })).status, 404);
      assert.equal((await fetchJson(`${gw}/healthz`, { method: "DELETE" })).status, 405);
    }
    assert.equal((await fetchJson(`${gw}/healthz`)).status, 200);
    assert.equal(await simTotal(), before, "no bad request reached a simulator");
  });

  test("health, readiness, models, metrics", async () => {
    assert.equal((await fetchJson(`${gw}/healthz`)).status, 200);
    assert.equal((await fetchJson(`${gw}/readyz`)).status, 200);
    const models = await fetchJson(`${gw}/v1/models`);
    assert.deepEqual(models.json.data.map((m) => m.id), ["Qwen3-1.7B"]);
    const m = await fetchJson(`${gw}/metrics`);
    assert.match(m.headers.get("content-type"), /^text\/plain/);
    assert.match(m.text, /# TYPE llmgate_requests_total counter/);
    assert.match(m.text, /llmgate_requests_total\{model="Qwen3-1.7B",status="200",outcome="ok"\} \d+/);
    assert.match(m.text, /llmgate_request_duration_seconds_bucket\{model="Qwen3-1.7B",le="\+Inf"\} \d+/);
  });

  test("the seed's GET /chat?query= answers {result}", async () => {
    const r = await fetchJson(`${gw}/chat?query=${encodeURIComponent("你是谁?")}`);
    assert.equal(r.status, 200);
    assert.equal(typeof r.json.result, "string");
    assert.ok(r.json.result.length > 0 && !r.json.result.includes("<think>"));
    const missing = await fetchJson(`${gw}/chat`);
    assert.equal(missing.status, 400);
  });
});

describe("relay fidelity", async () => {
  test("SSE is relayed byte for byte when no rewrite applies (reasoning already as reasoning_content), even cut mid-event", async () => {
    const events = [
      { id: "c1", object: "chat.completion.chunk", created: 1, model: "Qwen3-1.7B", choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] },
      { id: "c1", object: "chat.completion.chunk", created: 1, model: "Qwen3-1.7B", choices: [{ index: 0, delta: { reasoning_content: "先想一想" }, finish_reason: null }] },
      { id: "c1", object: "chat.completion.chunk", created: 1, model: "Qwen3-1.7B", choices: [{ index: 0, delta: { content: "你好" }, finish_reason: null }] },
      { id: "c1", object: "chat.completion.chunk", created: 1, model: "Qwen3-1.7B", choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: "t1", type: "function", function: { name: "f", arguments: "{\"a\"" } }] }, finish_reason: null }] },
      { id: "c1", object: "chat.completion.chunk", created: 1, model: "Qwen3-1.7B", choices: [{ index: 0, delta: { content: " world" }, finish_reason: "stop" }] },
    ];
    const wire = events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n";
    // Cut the bytes at awkward places: inside "data:", inside a UTF-8 character, between the two newlines.
    const buf = Buffer.from(wire);
    const cuts = [3, 57, 200, 201, buf.indexOf("\n\n") + 1, buf.length - 3].sort((a, b) => a - b);
    const pieces = [];
    let at = 0;
    for (const c of cuts) {
      pieces.push(buf.subarray(at, c));
      at = c;
    }
    pieces.push(buf.subarray(at));
    const backend = await fixedBackend(pieces);
    const gw = await startGateway(gatewayConfig([backend]));
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-client-secret" },
      body: JSON.stringify(chat({ stream: true })),
    });
    assert.equal(await res.text(), wire);
    // The client's key never reaches the backend (no backend api_key configured: no Authorization at all).
    assert.equal(backend.seen[0].headers.authorization, undefined);
    assert.equal(JSON.parse(backend.seen[0].body).model, "Qwen3-1.7B");
    await gw.stop();
    backend.close();
  });

  test("a backend api_key replaces the client's key upstream", async () => {
    const backend = await fixedBackend(['{"ok":true}'], { contentType: "application/json" });
    const cfg = gatewayConfig([backend]).replace("kind: vllm", 'kind: vllm, api_key: "${BACKEND_KEY}"');
    const gw = await startGateway(cfg, { env: { BACKEND_KEY: "sk-backend" } });
    const r = await fetchJson(`${gw.url}/v1/chat/completions`, {
      body: chat(),
      headers: { authorization: "Bearer sk-client-secret" },
    });
    assert.equal(r.status, 200);
    assert.equal(backend.seen[0].headers.authorization, "Bearer sk-backend");
    await gw.stop();
    backend.close();
  });

  test("a pooled connection the backend closed is retried on a new one, whether or not it was checked", async () => {
    // The backend (raw HTTP over net, to control the close exactly) answers
    // and closes the connection 10 ms later, keep-alive promised. The gateway
    // checks a pooled connection before reuse only when it has been idle for
    // 500 ms or more; a younger one is used unchecked, fails, and the
    // exchange tries once more on a new connection. Both must answer.
    const answer = JSON.stringify({ id: "x", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }] });
    let posts = 0;
    let open = 0;
    const server = net.createServer((sock) => {
      ++open;
      sock.on("close", () => --open);
      let data = "";
      sock.on("data", (d) => {
        data += d.toString("latin1");
        const end = data.indexOf("\r\n\r\n");
        if (end < 0) return;
        const length = Number((/content-length: *(\d+)/i.exec(data.slice(0, end)) || [0, 0])[1]);
        if (data.length < end + 4 + length) return;
        if (data.startsWith("POST")) ++posts;
        data = "";
        sock.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${answer.length}\r\n\r\n${answer}`);
        setTimeout(() => sock.destroy(), 10);
      });
      sock.on("error", () => {});
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const gw = await startGateway(gatewayConfig([{ url: `http://127.0.0.1:${server.address().port}` }]));
    try {
      for (const idleMs of [0, 50, 50, 700, 50]) {
        await new Promise((r) => setTimeout(r, idleMs + 30)); // the connection of the last answer is closed by now
        const r = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() });
        assert.equal(r.status, 200, `after ${idleMs} ms: ${r.text}`);
        assert.equal(r.json.choices[0].message.content, "ok");
      }
      assert.equal(posts, 5);
    } finally {
      await gw.stop();
      server.close();
    }
  });

  test("a backend's own error status and body pass through", async () => {
    const body = JSON.stringify({ error: { message: "too long", type: "BadRequestError", param: null, code: 400 } });
    const backend = await fixedBackend([body], { status: 400, contentType: "application/json" });
    const gw = await startGateway(gatewayConfig([backend]));
    const r = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat({ stream: true }) });
    assert.equal(r.status, 400);
    assert.equal(r.text, body);
    await gw.stop();
    backend.close();
  });
});

describe("HTTP/1.0 clients", async () => {
  test("a stream to an HTTP/1.0 client is sent without chunked encoding and ends with the connection", async () => {
    const sim = await startSim();
    const gw = await startGateway(gatewayConfig([sim]));
    const body = JSON.stringify(chat({ stream: true, max_tokens: 6 }));
    const raw = await rawRequest(
      gw.port,
      `POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    assert.ok(raw.closed, "the gateway closed the connection to end the body");
    const [head, payload] = raw.data.split("\r\n\r\n", 2);
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(head, /transfer-encoding/i);
    assert.match(payload, /^data: \{/);
    assert.ok(raw.data.endsWith("data: [DONE]\n\n"));
    await gw.stop();
    await sim.stop();
  });
});

describe("failures", async () => {
  test("unreachable backend → 502; the next backend is tried first", async () => {
    // A port that was free a moment ago: connections are refused.
    const dead = await new Promise((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const port = s.address().port;
        s.close(() => resolve({ url: `http://127.0.0.1:${port}` }));
      });
    });
    const gwDead = await startGateway(gatewayConfig([dead]));
    const r = await fetchJson(`${gwDead.url}/v1/chat/completions`, { body: chat() });
    assert.equal(r.status, 502);
    assert.equal(r.json.error.code, "bad_gateway");
    await gwDead.stop();

    const sim = await startSim();
    const gw = await startGateway(gatewayConfig([dead, sim]));
    for (let i = 0; i < 4; i++) {
      const ok = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("x-llmgate-backend"), "sim-b");
    }
    await gw.stop();
    await sim.stop();
  });

  test("a backend that never answers → 504 after first_token_timeout", async () => {
    const sim = await startSim({ args: ["--hang"] });
    const gw = await startGateway(gatewayConfig([sim], { extra: "upstream: {first_token_timeout: 300ms}" }));
    const r = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() });
    assert.equal(r.status, 504);
    assert.equal(r.json.error.code, "upstream_timeout");
    await gw.stop();
    await sim.stop();
  });

  test("a backend that dies mid-stream → an SSE error event and a clean end", async () => {
    const sim = await startSim({ args: ["--drop-after", "4"] });
    const gw = await startGateway(gatewayConfig([sim]));
    const { res, events } = await streamEvents(gw.url, chat({ stream: true }));
    assert.equal(res.status, 200);
    const err = events.find((e) => e.json?.error);
    assert.ok(err, "an error event was sent");
    assert.equal(err.json.error.code, "stream_interrupted");
    assert.equal(events.at(-1).data, "[DONE]");
    // The gateway still serves after it.
    await fetchJson(`${sim.url}/sim/faults`, { body: { drop_after_tokens: 0 } });
    assert.equal((await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat() })).status, 200);
    await gw.stop();
    await sim.stop();
  });

  test("body over server.max_body_bytes → 413", async () => {
    const sim = await startSim();
    const gw = await startGateway(gatewayConfig([sim], { extra: "server: {max_body_bytes: 1KiB}" }));
    const r = await fetchJson(`${gw.url}/v1/chat/completions`, { body: chat({ messages: [{ role: "user", content: "x".repeat(4096) }] }) });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, "request_too_large");
    const raw = await rawRequest(gw.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(raw.data, /^HTTP\/1\.1 200/);
    await gw.stop();
    await sim.stop();
  });

  test("malformed HTTP gets 400 and a closed connection; the gateway keeps serving", async () => {
    const sim = await startSim();
    const gw = await startGateway(gatewayConfig([sim]));
    const bad = await rawRequest(gw.port, "BLAH\r\n\r\n");
    assert.match(bad.data, /^HTTP\/1\.1 400/);
    const conflicting = await rawRequest(
      gw.port,
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345",
    );
    assert.match(conflicting.data, /^HTTP\/1\.1 400/);
    const huge = await rawRequest(gw.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(70000)}\r\n\r\n`);
    assert.match(huge.data, /^HTTP\/1\.1 431/);
    assert.equal((await fetchJson(`${gw.url}/healthz`)).status, 200);
    await gw.stop();
    await sim.stop();
  });
});

describe("slow clients", async () => {
  test("headers dribbled a byte at a time are cut off at server.header_timeout; others are served meanwhile", async () => {
    const sim = await startSim();
    const gw = await startGateway(gatewayConfig([sim], { extra: "server: {header_timeout: 500ms, idle_timeout: 2s}" }));
    const sock = net.connect(gw.port, "127.0.0.1");
    await new Promise((r) => sock.on("connect", r));
    let closed = false;
    let received = "";
    sock.on("data", (d) => (received += d));
    sock.on("close", () => (closed = true));
    sock.on("error", () => {});
    const head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(200);
    let sent = 0;
    // One byte every 20 ms would take 4+ s; the gateway must close the connection long before.
    while (!closed && sent < head.length) {
      sock.write(head[sent++]);
      await new Promise((r) => setTimeout(r, 20));
      if (sent === 10) assert.equal((await fetchJson(`${gw.url}/healthz`)).status, 200);
    }
    assert.ok(closed, "the slow connection was closed");
    assert.ok(sent < head.length, `closed after ${sent} of ${head.length} bytes`);
    assert.equal(received, "", "no response to a head that never completed");
    sock.destroy();
    await gw.stop();
    await sim.stop();
  });
});

describe("slow clients, streams", async () => {
  test("a stream to a client that stops reading is cut at the write timeout", async () => {
    // ~6 MB of events (40,960 tokens, ignore_eos) against ~4 MB of socket
    // buffers: the gateway's writes fall short, then wait, then time out.
    const sim = await startSim({ profile: "instant" });
    const gw = await startGateway(gatewayConfig([sim], { extra: "server: {idle_timeout: 1s}" }));
    const body = JSON.stringify(chat({ stream: true, max_tokens: 40960, ignore_eos: true }));
    const sock = net.connect(gw.port, "127.0.0.1");
    sock.on("error", () => {});
    await new Promise((r) => sock.on("connect", r));
    sock.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    let received = Buffer.alloc(0);
    await new Promise((r) => sock.once("data", (d) => r((received = Buffer.from(d)))));
    sock.pause(); // and read no more until the gateway gave up
    // The request ends when a write times out. (Whether the simulator sees it
    // cancelled depends on how much of its stream the sockets between it and
    // the gateway had already taken: up to their buffers' autotuned sizes.)
    let inFlight = 1;
    for (let i = 0; i < 100 && inFlight !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      inFlight = await metric(gw.url, "llmgate_requests_in_flight");
    }
    assert.equal(inFlight, 0, "the stream was cut");
    assert.equal(await metric(gw.url, "llmgate_client_disconnects_total"), 1, "as a client gone, not an answer sent");
    assert.equal((await fetchJson(`${gw.url}/healthz`)).status, 200, "others are served");
    // What reached the client is a well-formed start of the stream: whole
    // chunks of whole events, the last perhaps cut. No write skipped bytes.
    const rest = [];
    sock.on("data", (d) => rest.push(d));
    await new Promise((r) => {
      sock.on("close", r);
      sock.resume();
      setTimeout(r, 5000);
    });
    received = Buffer.concat([received, ...rest]);
    let at = received.indexOf("\r\n\r\n") + 4;
    let chunks = 0;
    for (;;) {
      const eol = received.indexOf("\r\n", at);
      if (eol < 0) break; // cut in a chunk's size line
      const size = parseInt(received.subarray(at, eol).toString("latin1"), 16);
      assert.ok(/^[0-9a-f]+$/.test(received.subarray(at, eol).toString("latin1")), `chunk ${chunks}: a size line`);
      const data = received.subarray(eol + 2, eol + 2 + size);
      if (data.length < size) break; // the last chunk, cut
      assert.ok(data.toString().startsWith("data: "), `chunk ${chunks}: events`);
      at = eol + 2 + size + 2;
      ++chunks;
    }
    assert.ok(chunks > 100, `${chunks} whole chunks arrived`);
    sock.destroy();
    await gw.stop();
    await sim.stop();
  });
});

describe("slow clients, rewritten streams", async () => {
  test("a rewritten stream to a client that pauses gets its own events while another stream runs", async () => {
    // Every event is rewritten (the inline thinking becomes reasoning_content),
    // so each piece goes out from the worker's scratch. The paused client's
    // writes fall short and finish later, while the other stream on the same
    // worker fills that scratch with its own events.
    const sim = await startSim({ profile: "instant", args: ["--thinking-tokens", "40000"] });
    const gw = await startGateway(gatewayConfig([sim], { extra: "server: {idle_timeout: 20s}" }));
    const tokens = 40000;
    const body = JSON.stringify(chat({ stream: true, max_tokens: tokens, ignore_eos: true }));
    const sock = net.connect(gw.port, "127.0.0.1");
    sock.on("error", () => {});
    await new Promise((r) => sock.on("connect", r));
    const parts = [];
    const closed = new Promise((r) => sock.on("close", r));
    sock.on("data", (d) => parts.push(d));
    sock.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await new Promise((r) => sock.once("data", r));
    sock.pause();
    const other = streamEvents(gw.url, JSON.parse(body));
    await new Promise((r) => setTimeout(r, 1500));
    sock.resume();
    await closed;
    const { events: otherEvents } = await other;

    // The paused client's bytes: the head, then chunks of whole events.
    const raw = Buffer.concat(parts);
    let at = raw.indexOf("\r\n\r\n") + 4;
    const chunks = [];
    for (;;) {
      const eol = raw.indexOf("\r\n", at);
      assert.ok(eol > 0, "the chunked body ends with its last chunk");
      const size = parseInt(raw.subarray(at, eol).toString("latin1"), 16);
      if (size === 0) break;
      chunks.push(raw.subarray(eol + 2, eol + 2 + size));
      assert.equal(raw.subarray(eol + 2 + size, eol + 4 + size).toString(), "\r\n", `chunk ${chunks.length} ends as its size says`);
      at = eol + 4 + size;
    }
    const events = Buffer.concat(chunks).toString().split("\n\n").filter((e) => e !== "");
    assert.equal(events.at(-1), "data: [DONE]");
    const mine = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, "")));
    const ids = new Set(mine.map((c) => c.id));
    assert.equal(ids.size, 1, "one stream's chunks only");
    const otherIds = new Set(otherEvents.filter((e) => e.data !== "[DONE]").map((e) => JSON.parse(e.data).id));
    assert.equal(otherIds.size, 1);
    assert.notDeepEqual([...ids], [...otherIds], "two streams");
    const reasoning = mine.filter((c) => c.choices[0]?.delta?.reasoning_content).length;
    assert.ok(reasoning >= tokens - 2, `${reasoning} reasoning events of ${tokens} tokens`);
    assert.ok(!mine.some((c) => (c.choices[0]?.delta?.content ?? "").includes("<think>")), "every event rewritten");
    sock.destroy();
    await gw.stop();
    await sim.stop();
  });
});

describe("slow clients, whole answers", async () => {
  test("a whole answer the client's socket cannot take at once arrives whole", async () => {
    // A 6 MB answer (a fixed backend's) to a client with a 4 KiB receive
    // buffer (set before connecting, which Node cannot do: a Python client)
    // that waits before reading: more than the sockets' buffers hold, so the
    // gateway's first write falls short and the rest goes asynchronously.
    // Every byte must arrive, once. (The buffer grows before the client
    // reads: a 4 KiB window would take minutes to carry it.)
    const content = "x".repeat(6_000_000);
    const answer = JSON.stringify({
      id: "chatcmpl-big",
      object: "chat.completion",
      created: 1,
      model: "Qwen3-1.7B",
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "length" }],
      usage: { prompt_tokens: 5, completion_tokens: 1_500_000, total_tokens: 1_500_005 },
    });
    const backend = await fixedBackend([answer], { contentType: "application/json" });
    const gw = await startGateway(gatewayConfig([backend]));
    const client = `
import json, socket, sys, time
body = sys.argv[2].encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n"
          b"Content-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
time.sleep(1.0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
data = bytearray()
while True:
    chunk = s.recv(1 << 20)
    if not chunk:
        break
    data += chunk
head, _, rest = bytes(data).partition(b"\\r\\n\\r\\n")
length = int([l.split(b":")[1] for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length:")][0])
message = json.loads(rest)["choices"][0]["message"]
print(json.dumps({"length": length, "received": len(rest), "content": len(message["content"])}))
`;
    // Not spawnSync: the backend answers from this process's event loop.
    const py = spawn("python3", ["-c", client, String(gw.port), JSON.stringify(chat())], { timeout: 60000 });
    let stdout = "";
    let stderr = "";
    py.stdout.on("data", (d) => (stdout += d));
    py.stderr.on("data", (d) => (stderr += d));
    const status = await new Promise((resolve) => py.on("close", resolve));
    assert.equal(status, 0, stderr);
    const r = JSON.parse(stdout);
    assert.equal(r.received, r.length, "every byte arrived, once");
    assert.equal(r.content, content.length);
    assert.equal(await metric(gw.url, "llmgate_requests_in_flight"), 0);
    await gw.stop();
    backend.close();
  });
});

describe("cancellation and drain", async () => {
  test("a client that disconnects cancels its upstream request (simulator counts it aborted)", async () => {
    const sim = await startSim({ profile: "default" });
    const gw = await startGateway(gatewayConfig([sim]));
    const aborted = () => metric(sim.url, "llmgate_sim_requests_total", 'outcome="aborted"');
    assert.equal(await aborted(), 0);
    // Streamed: read the first event, then go away.
    const ctl = new AbortController();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat({ stream: true })),
      signal: ctl.signal,
    });
    const reader = res.body.getReader();
    await reader.read();
    ctl.abort();
    // Not streamed: give up while the simulator is still generating.
    const ctl2 = new AbortController();
    const pending = fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat()),
      signal: ctl2.signal,
    }).catch(() => null);
    await new Promise((r) => setTimeout(r, 200));
    ctl2.abort();
    await pending;
    let n = 0;
    for (let i = 0; i < 50 && n < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      n = await aborted();
    }
    assert.equal(n, 2);
    assert.equal(await metric(sim.url, "llmgate_sim_requests_total", 'outcome="completed"'), 0);
    assert.equal(await metric(gw.url, "llmgate_client_disconnects_total"), 2);
    assert.equal(await metric(gw.url, "llmgate_requests_in_flight"), 0);
    await gw.stop();
    await sim.stop();
  });

  test("SIGTERM drains: a stream in flight finishes, then the gateway exits 0", async () => {
    const sim = await startSim({ profile: "default" });
    const gw = await startGateway(gatewayConfig([sim]));
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat({ stream: true })),
    });
    const events = [];
    const it = readSSE(res);
    events.push((await it.next()).value);
    process.kill(gw.pid, "SIGTERM");
    for await (const e of it) events.push(e);
    assert.equal(events.at(-1).data, "[DONE]");
    assert.ok(!events.some((e) => e.json?.error));
    const exit = await gw.exited;
    assert.equal(exit.code, 0);
    await assert.rejects(fetch(`${gw.url}/healthz`));
    await sim.stop();
  });
});
