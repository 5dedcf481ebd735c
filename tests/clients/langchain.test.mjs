// The seed's LangChain calls (ChatOpenAI, streaming, callbacks) with the real
// @langchain/openai package against llmgate in front of two `llmgate sim`s.
// Run: node --test tests/clients/   (needs build/llmgate or $LLMGATE_BIN)

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { startStack, stopAll } from "../lib/procs.mjs";

// --- js-tiktoken ranks without the network -----------------------------------
// @langchain/core counts tokens with js-tiktoken/lite and fetches the BPE ranks
// from https://tiktoken.pages.dev/js/<encoding>.json at run time (retrying for
// minutes when that host is unreachable, as it is here). Answer those URLs from
// the ranks shipped in the js-tiktoken copy that @langchain/core itself resolves,
// and pass every other request through.
const TIKTOKEN_PREFIX = "https://tiktoken.pages.dev/js/";
const requireHere = createRequire(import.meta.url);
const coreTiktokenPath = requireHere.resolve("@langchain/core/utils/tiktoken");
const requireFromCore = createRequire(coreTiktokenPath);
const tiktokenShimHits = [];

const realFetch = globalThis.fetch;
globalThis.fetch = async function fetchWithLocalTiktokenRanks(input, init) {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input?.url;
  if (typeof url === "string" && url.startsWith(TIKTOKEN_PREFIX)) {
    const encoding = url.slice(TIKTOKEN_PREFIX.length).replace(/\.json(?:\?.*)?$/, "");
    if (!/^[a-z0-9_]+$/.test(encoding)) return new Response("bad encoding", { status: 404 });
    let ranks;
    try {
      ranks = requireFromCore(`js-tiktoken/ranks/${encoding}`);
    } catch {
      return new Response(`unknown encoding ${encoding}`, { status: 404 });
    }
    tiktokenShimHits.push(encoding);
    return new Response(JSON.stringify(ranks.default ?? ranks), {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  }
  return realFetch(input, init);
};

// Import LangChain only after the shim is in place.
const { ChatOpenAI } = await import("@langchain/openai");
const { getEncoding } = await import("@langchain/core/utils/tiktoken");

after(stopAll); // whatever a failed suite left running

const MODEL = "Qwen3-1.7B";
const QUESTION = "你是谁?";

function textOf(message) {
  if (typeof message.content === "string") return message.content;
  return message.content.map((p) => (typeof p === "string" ? p : p.text || "")).join("");
}

describe("LangChain ChatOpenAI through llmgate", { timeout: 120000 }, () => {
  let stack;
  let baseURL;

  const makeChat = (extra = {}) =>
    new ChatOpenAI({
      model: MODEL,
      temperature: 0.5,
      apiKey: "EMPTY",
      streaming: true,
      maxRetries: 0,
      configuration: { baseURL },
      modelKwargs: { enable_thinking: true, return_reasoning: true },
      ...extra,
    });

  before(async () => {
    stack = await startStack({ n: 2 });
    baseURL = `${stack.gw.url}/v1`;
  });
  after(() => stack?.stop());

  it("the tiktoken ranks shim serves js-tiktoken's shipped ranks offline", async () => {
    const enc = await getEncoding("cl100k_base");
    assert.deepEqual(enc.encode("hello world"), [15339, 1917]);
    assert.ok(tiktokenShimHits.includes("cl100k_base"));
  });

  it("invoke() with streaming: true returns clean content", async () => {
    const chat = makeChat();
    const res = await chat.invoke(QUESTION);
    const content = textOf(res);
    assert.ok(content.length > 0, "empty content");
    assert.ok(!content.includes("<think>") && !content.includes("</think>"), `think tag in content: ${content}`);
  });

  it("handleLLMNewToken receives several tokens that add up to the content", async () => {
    const tokens = [];
    const chat = makeChat({
      callbacks: [
        {
          handleLLMNewToken(token) {
            tokens.push(token);
          },
        },
      ],
    });
    const res = await chat.invoke(QUESTION);
    const content = textOf(res);
    const nonEmpty = tokens.filter((t) => t.length > 0);
    assert.ok(nonEmpty.length > 1, `only ${nonEmpty.length} non-empty tokens`);
    assert.equal(tokens.join(""), content);
    assert.ok(!content.includes("<think>"));
  });

  it("callbacks passed at call time work too", async () => {
    const tokens = [];
    const chat = makeChat();
    const res = await chat.invoke(QUESTION, {
      callbacks: [{ handleLLMNewToken: (t) => tokens.push(t) }],
    });
    assert.ok(tokens.filter(Boolean).length > 1);
    assert.equal(tokens.join(""), textOf(res));
  });

  it(".stream() yields several chunks of clean content", async () => {
    const chat = makeChat();
    const stream = await chat.stream(QUESTION);
    let content = "";
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      content += textOf(chunk);
    }
    assert.ok(chunks > 1, `only ${chunks} chunks`);
    assert.ok(content.length > 0);
    assert.ok(!content.includes("<think>") && !content.includes("</think>"), `think tag in content: ${content}`);
  });

  it("stream and invoke agree on the text (deterministic sim)", async () => {
    const chat = makeChat();
    const res = await chat.invoke("same prompt twice");
    let streamed = "";
    for await (const chunk of await chat.stream("same prompt twice")) streamed += textOf(chunk);
    assert.equal(streamed.trim(), textOf(res).trim());
  });

  it("non-streaming invoke returns content, and reasoning_content in the raw response", async () => {
    const chat = makeChat({ streaming: false, __includeRawResponse: true });
    const res = await chat.invoke(QUESTION);
    const content = textOf(res);
    assert.ok(content.length > 0);
    assert.ok(!content.includes("<think>"));
    const raw = res.additional_kwargs.__raw_response;
    assert.ok(raw, "no raw response");
    const reasoning = raw.choices[0].message.reasoning_content;
    assert.ok(typeof reasoning === "string" && reasoning.length > 0, `reasoning_content: ${JSON.stringify(reasoning)}`);
  });

  it("enable_thinking: false through modelKwargs gives content and no reasoning", async () => {
    const chat = makeChat({
      streaming: false,
      __includeRawResponse: true,
      modelKwargs: { enable_thinking: false },
    });
    const res = await chat.invoke(QUESTION);
    assert.ok(textOf(res).length > 0);
    const msg = res.additional_kwargs.__raw_response.choices[0].message;
    assert.ok(msg.reasoning_content == null || msg.reasoning_content === "", JSON.stringify(msg.reasoning_content));
  });

  it("usage metadata is reported on a streamed invoke", async () => {
    const chat = makeChat({ streamUsage: true });
    const res = await chat.invoke(QUESTION);
    assert.ok(res.usage_metadata, "no usage_metadata");
    assert.ok(res.usage_metadata.output_tokens > 0, JSON.stringify(res.usage_metadata));
    assert.ok(res.usage_metadata.input_tokens > 0, JSON.stringify(res.usage_metadata));
  });
});

describe("LangChain streaming at the ladder's L1 (the backend asked without streaming)", { timeout: 120000 }, () => {
  let stack;
  before(async () => {
    stack = await startStack({ n: 1, gatewayOptions: { modelExtra: "degrade: {level: 1}" } });
  });
  after(() => stack?.stop());

  it("handleLLMNewToken still receives the content, and usage is reported", async () => {
    const tokens = [];
    const chat = new ChatOpenAI({
      model: MODEL,
      apiKey: "EMPTY",
      streaming: true,
      streamUsage: true,
      maxRetries: 0,
      configuration: { baseURL: `${stack.gw.url}/v1` },
      modelKwargs: { enable_thinking: true },
      callbacks: [{ handleLLMNewToken: (t) => tokens.push(t) }],
    });
    const res = await chat.invoke(QUESTION);
    const content = textOf(res);
    assert.ok(content.length > 0);
    assert.equal(tokens.join(""), content, "the callbacks saw the whole content");
    assert.ok(res.usage_metadata?.output_tokens > 0, JSON.stringify(res.usage_metadata));
    const received = await (await fetch(`${stack.sims[0].url}/sim/requests`)).json();
    assert.equal(received.at(-1).stream, false, "the backend was asked without streaming");
  });
});
