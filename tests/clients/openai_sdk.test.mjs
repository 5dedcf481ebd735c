// The real `openai` npm SDK against llmgate in front of two `llmgate sim` backends.
// Run: node --test tests/clients/   (needs build/llmgate or $LLMGATE_BIN)

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startStack, stopAll } from "../lib/procs.mjs";

const MODEL = "Qwen3-1.7B";
const BACKENDS = ["sim-a", "sim-b"];
const MESSAGES = [{ role: "user", content: "你是谁?" }];
// Error replies are local to the gateway: they must come back at once.
const QUICK = { timeout: 5000 };

after(stopAll); // whatever a failed suite left running

describe("openai SDK through llmgate", { timeout: 120000 }, () => {
  let stack;
  let client;

  before(async () => {
    stack = await startStack({ n: 2 });
    client = new OpenAI({ baseURL: `${stack.gw.url}/v1`, apiKey: "EMPTY", maxRetries: 0, timeout: 30000 });
  });
  after(() => stack?.stop());

  it("non-streaming chat completion returns content and reasoning_content", async () => {
    const { data, response } = await client.chat.completions
      .create({
        model: MODEL,
        messages: MESSAGES,
        temperature: 0.5,
        enable_thinking: true,
        return_reasoning: true,
      })
      .withResponse();
    assert.equal(response.status, 200);
    assert.ok(BACKENDS.includes(response.headers.get("x-llmgate-backend")), `x-llmgate-backend: ${response.headers.get("x-llmgate-backend")}`);
    assert.equal(data.object, "chat.completion");
    assert.equal(data.choices.length, 1);
    const msg = data.choices[0].message;
    assert.equal(msg.role, "assistant");
    assert.equal(typeof msg.content, "string");
    assert.ok(msg.content.length > 0, "content is empty");
    assert.ok(!msg.content.includes("<think>") && !msg.content.includes("</think>"), `think tag in content: ${msg.content}`);
    assert.equal(typeof msg.reasoning_content, "string", "reasoning_content missing");
    assert.ok(msg.reasoning_content.length > 0, "reasoning_content is empty");
    assert.ok(!msg.reasoning_content.includes("<think>"), "think tag in reasoning_content");
    assert.ok(data.usage && data.usage.completion_tokens > 0, `usage: ${JSON.stringify(data.usage)}`);
  });

  it("thinking defaults to on and reasoning is returned by default", async () => {
    const data = await client.chat.completions.create({ model: MODEL, messages: MESSAGES });
    const msg = data.choices[0].message;
    assert.ok(msg.content.length > 0);
    assert.ok(!msg.content.includes("<think>"));
    assert.ok(typeof msg.reasoning_content === "string" && msg.reasoning_content.length > 0, "no reasoning_content by default");
  });

  it("enable_thinking: false at the top level gives no reasoning", async () => {
    const data = await client.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      enable_thinking: false,
    });
    const msg = data.choices[0].message;
    assert.ok(msg.content.length > 0, "content is empty");
    assert.ok(!msg.content.includes("<think>") && !msg.content.includes("</think>"), `think tag in content: ${msg.content}`);
    assert.ok(msg.reasoning_content == null || msg.reasoning_content === "", `reasoning_content: ${JSON.stringify(msg.reasoning_content)}`);
  });

  it("return_reasoning: false strips reasoning but keeps content clean", async () => {
    const data = await client.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      enable_thinking: true,
      return_reasoning: false,
    });
    const msg = data.choices[0].message;
    assert.ok(msg.content.length > 0, "content is empty");
    assert.ok(!msg.content.includes("<think>") && !msg.content.includes("</think>"), `think tag in content: ${msg.content}`);
    assert.ok(!("reasoning_content" in msg) || msg.reasoning_content == null, `reasoning_content present: ${JSON.stringify(msg.reasoning_content)}`);
    assert.ok(!("reasoning" in msg) || msg.reasoning == null, "reasoning present");
  });

  it("streaming chat completion with include_usage", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({
        model: MODEL,
        messages: MESSAGES,
        stream: true,
        stream_options: { include_usage: true },
        enable_thinking: true,
        return_reasoning: true,
      })
      .withResponse();
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") || "", /text\/event-stream/);
    assert.ok(BACKENDS.includes(response.headers.get("x-llmgate-backend")));
    let content = "";
    let reasoning = "";
    let chunks = 0;
    let contentChunks = 0;
    let reasoningChunks = 0;
    let usage = null;
    let finish = null;
    let usageSeenBeforeFinish = false;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, "chat.completion.chunk");
      if (chunk.usage) {
        usage = chunk.usage;
        if (!finish) usageSeenBeforeFinish = true;
        assert.deepEqual(chunk.choices, [], "usage chunk has choices");
        continue;
      }
      const choice = chunk.choices[0];
      if (!choice) continue;
      const d = choice.delta || {};
      if (typeof d.content === "string" && d.content.length) {
        content += d.content;
        contentChunks++;
      }
      if (typeof d.reasoning_content === "string" && d.reasoning_content.length) {
        reasoning += d.reasoning_content;
        reasoningChunks++;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    assert.ok(chunks > 2, `only ${chunks} chunks`);
    assert.ok(contentChunks > 1, `only ${contentChunks} content chunks`);
    assert.ok(reasoningChunks > 1, `only ${reasoningChunks} reasoning chunks`);
    assert.ok(content.length > 0);
    assert.ok(!content.includes("<think>") && !content.includes("</think>"), `think tag in streamed content: ${content}`);
    assert.ok(!reasoning.includes("<think>") && !reasoning.includes("</think>"), "think tag in streamed reasoning");
    assert.ok(["stop", "length"].includes(finish), `finish_reason ${finish}`);
    assert.ok(usage, "no usage chunk");
    assert.ok(!usageSeenBeforeFinish, "usage chunk came before finish_reason");
    assert.ok(usage.completion_tokens > 0 && usage.prompt_tokens > 0, JSON.stringify(usage));
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  });

  it("streaming and non-streaming give the same text (deterministic sim)", async () => {
    const body = { model: MODEL, messages: [{ role: "user", content: "determinism check" }], enable_thinking: true };
    const full = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    let content = "";
    let reasoning = "";
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta || {};
      content += d.content || "";
      reasoning += d.reasoning_content || "";
    }
    assert.equal(content.trim(), full.choices[0].message.content.trim());
    assert.equal(reasoning.trim(), (full.choices[0].message.reasoning_content || "").trim());
  });

  it("streaming with enable_thinking: false has no reasoning deltas", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      stream: true,
      enable_thinking: false,
    });
    let content = "";
    let reasoning = "";
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta || {};
      content += d.content || "";
      reasoning += d.reasoning_content || "";
    }
    assert.ok(content.length > 0);
    assert.ok(!content.includes("<think>") && !content.includes("</think>"));
    assert.equal(reasoning, "");
  });

  it("streaming with return_reasoning: false has no reasoning deltas", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      stream: true,
      enable_thinking: true,
      return_reasoning: false,
    });
    let content = "";
    let reasoningSeen = false;
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta || {};
      content += d.content || "";
      if (d.reasoning_content != null || d.reasoning != null) reasoningSeen = true;
    }
    assert.ok(content.length > 0);
    assert.ok(!content.includes("<think>") && !content.includes("</think>"));
    assert.equal(reasoningSeen, false, "reasoning delta present with return_reasoning: false");
  });

  it("an alias resolves to the model", async () => {
    const data = await client.chat.completions.create({ model: "qwen3-1.7b", messages: MESSAGES, max_tokens: 32 });
    assert.equal(data.object, "chat.completion");
    assert.ok(data.choices.length === 1);
  });

  it("/v1/models lists Qwen3-1.7B", async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes(MODEL), `models: ${ids.join(", ")}`);
  });

  it("reasoning is sent as reasoning_content only (no `reasoning` field by default)", async () => {
    const data = await client.chat.completions.create({ model: MODEL, messages: MESSAGES });
    assert.ok(!("reasoning" in data.choices[0].message), "unexpected `reasoning` field");
  });

  it("an unknown model is a 404 NotFoundError with code model_not_found", async () => {
    await assert.rejects(
      client.chat.completions.create({ model: "no-such-model", messages: MESSAGES }, QUICK),
      (err) => {
        assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.status, 404);
        assert.equal(err.code, "model_not_found");
        assert.equal(typeof err.error?.message, "string");
        return true;
      },
    );
  });

  it("an unknown model is a 404 for streaming requests too", async () => {
    await assert.rejects(
      client.chat.completions.create({ model: "no-such-model", messages: MESSAGES, stream: true }, QUICK),
      (err) => err instanceof OpenAI.NotFoundError && err.code === "model_not_found",
    );
  });

  it("completions.create works (non-streaming)", async () => {
    const { data, response } = await client.completions
      .create({ model: MODEL, prompt: "Once upon a time", max_tokens: 16 })
      .withResponse();
    assert.ok(BACKENDS.includes(response.headers.get("x-llmgate-backend")));
    assert.equal(data.object, "text_completion");
    assert.equal(typeof data.choices[0].text, "string");
    assert.ok(data.choices[0].text.length > 0);
    assert.ok(data.usage && data.usage.completion_tokens > 0 && data.usage.completion_tokens <= 16, JSON.stringify(data.usage));
  });

  it("completions.create works (streaming)", async () => {
    const stream = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 16, stream: true });
    let text = "";
    let n = 0;
    for await (const chunk of stream) {
      n++;
      text += chunk.choices[0]?.text || "";
    }
    assert.ok(n > 1, `only ${n} chunks`);
    assert.ok(text.length > 0);
  });

  it("max_tokens bounds the output and gives finish_reason length", async () => {
    const data = await client.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      max_tokens: 4,
      enable_thinking: false,
    });
    assert.equal(data.choices[0].finish_reason, "length");
    assert.ok(data.usage.completion_tokens <= 4, JSON.stringify(data.usage));
  });
});

// The same reasoning contract when the backends split thinking themselves
// (vLLM with a reasoning parser sends `reasoning`; SGLang `reasoning_content`).
for (const field of ["reasoning", "reasoning_content"]) {
  describe(`openai SDK through llmgate, backends with --reasoning-parser --reasoning-field ${field}`, { timeout: 120000 }, () => {
    let stack;
    let client;

    before(async () => {
      stack = await startStack({
        n: 2,
        simOptions: { args: ["--reasoning-parser", "--reasoning-field", field] },
      });
      client = new OpenAI({ baseURL: `${stack.gw.url}/v1`, apiKey: "EMPTY", maxRetries: 0, timeout: 30000 });
    });
    after(() => stack?.stop());

    it("non-streaming: reasoning_content and clean content", async () => {
      const data = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, enable_thinking: true, return_reasoning: true });
      const msg = data.choices[0].message;
      assert.ok(msg.content.length > 0);
      assert.ok(!msg.content.includes("<think>") && !msg.content.includes("</think>"));
      assert.ok(typeof msg.reasoning_content === "string" && msg.reasoning_content.length > 0, JSON.stringify(msg));
      assert.ok(!("reasoning" in msg), "unexpected `reasoning` field");
    });

    it("streaming: reasoning_content deltas and clean content", async () => {
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: MESSAGES,
        stream: true,
        stream_options: { include_usage: true },
      });
      let content = "";
      let reasoning = "";
      let usage = null;
      let otherField = false;
      for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        const d = chunk.choices[0]?.delta || {};
        content += d.content || "";
        reasoning += d.reasoning_content || "";
        if ("reasoning" in d) otherField = true;
      }
      assert.ok(content.length > 0);
      assert.ok(reasoning.length > 0);
      assert.ok(!content.includes("<think>") && !content.includes("</think>"));
      assert.equal(otherField, false, "unexpected `reasoning` delta field");
      assert.ok(usage && usage.completion_tokens > 0);
    });

    it("enable_thinking: false gives no reasoning", async () => {
      const data = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, enable_thinking: false });
      const msg = data.choices[0].message;
      assert.ok(msg.content.length > 0);
      assert.ok(msg.reasoning_content == null || msg.reasoning_content === "", JSON.stringify(msg.reasoning_content));
    });

    it("return_reasoning: false removes reasoning (non-streaming and streaming)", async () => {
      const data = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, return_reasoning: false });
      const msg = data.choices[0].message;
      assert.ok(msg.content.length > 0);
      assert.ok(msg.reasoning_content == null && msg.reasoning == null, JSON.stringify(msg));
      const stream = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, return_reasoning: false, stream: true });
      let seen = false;
      let content = "";
      for await (const chunk of stream) {
        const d = chunk.choices[0]?.delta || {};
        content += d.content || "";
        if (d.reasoning_content != null || d.reasoning != null) seen = true;
      }
      assert.ok(content.length > 0);
      assert.equal(seen, false);
    });
  });
}

describe("openai SDK meets a rate limit", { timeout: 60000 }, () => {
  it("sees a RateLimitError, and with its retries on succeeds after waiting", async () => {
    // A sliding log, not a fixed window: the three requests below are refused
    // wherever they fall on the clock (a 2 s fixed window let the third one
    // through when a loaded machine spread them across a window's edge).
    const { startSim, startGateway, gatewayConfig } = await import("../lib/procs.mjs");
    const sim = await startSim();
    const gw = await startGateway(
      gatewayConfig([sim], {
        extra: `limits:
  rules:
    - {name: per-ip, key: client_ip, algorithm: sliding_log, limit: 2/3s}`,
      }),
    );
    try {
      const strict = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "EMPTY", maxRetries: 0 });
      await strict.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 4 });
      await strict.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 4 });
      await assert.rejects(
        strict.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 4 }),
        (err) => {
          assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}`);
          assert.equal(err.status, 429);
          assert.equal(err.code, "rate_limit_exceeded");
          assert.ok(Number(err.headers?.get?.("retry-after") ?? err.headers?.["retry-after"]) >= 1);
          return true;
        },
      );
      // The SDK honours Retry-After / retry-after-ms and tries again once the window has passed.
      const patient = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "EMPTY", maxRetries: 3 });
      const started = Date.now();
      const ok = await patient.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 4 });
      assert.equal(ok.object, "chat.completion");
      assert.ok(Date.now() - started < 20000);
    } finally {
      await gw.stop();
      await sim.stop();
    }
  });
});
