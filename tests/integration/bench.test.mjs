// `llmgate bench`, the LLM load generator: counts, token timings and goodput
// against the simulator, directly and through a gateway that refuses some;
// the JSON summary; progress lines off a terminal; bad options; a server that
// never answers.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLMGATE_BIN, startSim, startGateway, gatewayConfig, fetchJson, stopAll } from "../lib/procs.mjs";

after(stopAll);

const dir = mkdtempSync(join(tmpdir(), "llmgate-bench-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// Runs `llmgate bench ARGS` to its end (bounded); its exit code, output and JSON summary.
function bench(args, { timeoutMs = 60000 } = {}) {
  const json = join(dir, `run-${Math.random().toString(36).slice(2)}.json`);
  return new Promise((resolve, reject) => {
    const p = spawn(LLMGATE_BIN, ["bench", ...args, "--json", json], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`llmgate bench ${args.join(" ")} did not end in ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    p.on("close", (code) => {
      clearTimeout(timer);
      let summary = null;
      try {
        summary = JSON.parse(readFileSync(json, "utf8"));
      } catch {}
      resolve({ code, stdout, stderr, summary });
    });
  });
}

test("closed loop by count: every request, every token and its timings are counted", async () => {
  const sim = await startSim();
  const run = await bench([sim.url, "--users", "4", "--requests", "40", "--output-tokens", "20", "--prompt-tokens", "64..128"]);
  assert.equal(run.code, 0, run.stderr);
  const s = run.summary;
  assert.equal(s.requests.sent, 40);
  assert.equal(s.requests.ok, 40);
  assert.equal(s.requests.errors, 0);
  assert.equal(s.throughput.output_tokens, 40 * 20, "ignore_eos: exactly max_tokens each, as the usage says");
  assert.ok(s.throughput.prompt_tokens >= 40 * 64 && s.throughput.prompt_tokens <= 40 * 128);
  assert.equal(s.ttft_ms.count, 40);
  assert.equal(s.itl_ms.count, 40 * 19, "one gap between each two of a stream's 20 tokens");
  assert.equal(s.goodput.met, 40, "the instant simulator meets a 2 s first-token SLO");
  assert.ok(s.ttft_ms.p50 <= s.e2e_ms.p50 && s.e2e_ms.p50 <= s.e2e_ms.max);
  assert.match(run.stdout, /sent 40 {2}ok 40 {2}429 0/);
  assert.match(run.stdout, /TTFT .*\n {2}ITL .*\n {2}E2E /);
  // What the server received: the lengths asked for, streamed with usage, thinking off.
  const { json } = await fetchJson(`${sim.url}/sim/requests`);
  const last = json.at(-1);
  assert.equal(last.max_tokens, 20);
  assert.equal(last.ignore_eos, true);
  assert.equal(last.stream_options.include_usage, true);
  assert.equal(last.chat_template_kwargs.enable_thinking, false);
  await sim.stop();
});

test("through a gateway that refuses: 429s counted apart from errors, goodput only of answers", async () => {
  const sim = await startSim();
  const gw = await startGateway(
    gatewayConfig([sim], {
      extra: `limits:
  rules:
    - {name: few, key: global, algorithm: sliding_log, limit: 25/hour}`,
    }),
  );
  const run = await bench([gw.url, "-u", "5", "-n", "60", "--output-tokens", "8", "--no-stream"]);
  assert.equal(run.code, 0, run.stderr);
  const s = run.summary;
  assert.equal(s.requests.sent, 60);
  assert.equal(s.requests.ok, 25);
  assert.equal(s.requests.rate_limited, 35);
  assert.equal(s.requests.errors, 0);
  assert.equal(s.throughput.output_tokens, 25 * 8);
  assert.equal(s.itl_ms.count, 0, "whole answers have no gaps between tokens");
  assert.equal(s.goodput.met, 25);
  assert.ok(Math.abs(s.goodput.output_tokens_per_s * s.seconds - 25 * 8) < 1e-6, "useful tokens: the answers' within the SLO");
  assert.equal(s.goodput.share_of_sent, 25 / 60);
  await gw.stop();
  await sim.stop();
});

test("open loop by time sends at about the rate asked, and writes plain progress lines off a terminal", async () => {
  const sim = await startSim();
  const run = await bench([`${sim.url}/v1`, "--rate", "40", "--duration", "6s", "--output-tokens", "4"]);
  assert.equal(run.code, 0, run.stderr);
  const s = run.summary;
  // Poisson arrivals at 40/s for 6 s: 240 expected; far outside 150..330 only if the rate is wrong.
  assert.ok(s.requests.sent > 150 && s.requests.sent < 330, `sent ${s.requests.sent}`);
  assert.equal(s.requests.ok, s.requests.sent);
  assert.match(s.mode, /open loop, 40 req\/s/);
  assert.ok(!run.stderr.includes("\r"), "no bar redrawn in place when stderr is not a terminal");
  assert.match(run.stderr, /^ *\d+\.\ds {2}sent \d+ {2}done \d+/m, "a plain progress line");
  await sim.stop();
});

test("--warmup leaves out the answers of its first seconds", async () => {
  const sim = await startSim();
  const run = await bench([sim.url, "-u", "2", "-d", "3s", "--warmup", "1.5", "--output-tokens", "3"]);
  assert.equal(run.code, 0, run.stderr);
  const { text } = await fetchJson(`${sim.url}/metrics`);
  const generated = Number(text.match(/^vllm:generation_tokens_total\{[^}]*\} (\d+)/m)[1]);
  const counted = run.summary.throughput.output_tokens;
  assert.equal(counted, run.summary.requests.ok * 3);
  assert.ok(counted > 0 && counted < generated * 0.8, `counted ${counted} of ${generated} tokens generated`);
  assert.ok(run.summary.seconds < 3, "timed from the end of the warm-up (from the start it would be 3 s or more)");
  await sim.stop();
});

test("--steady counts the requests sent in the window, per second of it, answered in the drain too", async () => {
  // A slow simulator: a request takes seconds, so many are in flight when sending stops.
  const sim = await startSim({ profile: "default" });
  const run = await bench([sim.url, "-u", "8", "-d", "4s", "--warmup", "1", "--steady", "--output-tokens", "40", "--drain", "30"], { timeoutMs: 60000 });
  assert.equal(run.code, 0, run.stderr);
  const s = run.summary;
  assert.ok(Math.abs(s.seconds - 3) < 1e-6, `the window: 4 s − 1 s of warm-up, not to the last answer (${s.seconds})`);
  assert.ok(s.requests.sent > 0);
  assert.equal(s.requests.ok, s.requests.sent, "every request sent in the window was answered (the drain waited)");
  assert.equal(s.requests.unfinished, 0);
  assert.equal(s.throughput.output_tokens, s.requests.ok * 40);
  const { text } = await fetchJson(`${sim.url}/metrics`);
  const generated = Number(text.match(/^vllm:generation_tokens_total\{[^}]*\} (\d+)/m)[1]);
  assert.ok(generated > s.throughput.output_tokens, `the warm-up's requests are not counted (${s.throughput.output_tokens} of ${generated} tokens)`);
  await sim.stop();
});

test("a server that never answers: requests are cut after the drain and counted as unfinished", async () => {
  const sim = await startSim({ args: ["--hang"] });
  const started = Date.now();
  const run = await bench([sim.url, "-u", "3", "-n", "3", "--drain", "0.5"], { timeoutMs: 20000 });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.summary.requests.unfinished, 3);
  assert.equal(run.summary.requests.ok, 0);
  assert.ok(Date.now() - started < 15000);
  await sim.stop();
});

test("bad options are refused with the reason; an unreachable server gives errors, not a hang", async () => {
  for (const [args, reason] of [
    [["-n", "5"], /either --users .* or --rate/],
    [["-u", "2", "-r", "5", "-n", "5"], /either --users/],
    [["-u", "2"], /--duration or --requests/],
    [["-u", "2", "-n", "5", "--prompt-tokens", "0"], /length '0'/],
    [["-u", "2", "-n", "5", "--output-tokens", "9..3"], /length '9..3'/],
    [["-u", "2", "-d", "soon"], /--duration 'soon'/],
    [["-u", "2", "-d", "2s", "--warmup", "2"], /--warmup must be shorter/],
    [["-u", "2", "-n", "5", "--steady"], /--steady needs --duration/],
    [["https://example.com", "-u", "2", "-n", "5"], /plain http:\/\/ URL/],
  ]) {
    const run = await bench(args);
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, reason);
  }
  const sim = await startSim();
  const port = new URL(sim.url).port;
  await sim.stop(); // nothing listens there now
  const run = await bench([`http://127.0.0.1:${port}`, "-u", "2", "-n", "6"]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.summary.requests.errors, 6);
  assert.equal(run.summary.requests.ok, 0);
});
