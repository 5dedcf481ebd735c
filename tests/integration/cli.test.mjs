// The command line: `check` (every problem with its line, --probe) and the
// embedded default of `serve` with no config.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLMGATE_BIN, startSim, spawnLlmgate, fetchJson, stopAll } from "../lib/procs.mjs";

after(stopAll);

// Every config file goes in one temp dir, removed at the end.
const configDir = mkdtempSync(join(tmpdir(), "llmgate-cli-"));
after(() => rmSync(configDir, { recursive: true, force: true }));

function writeConfig(text) {
  const dir = mkdtempSync(join(configDir, "c-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, text);
  return file;
}

function check(file, args = [], env = {}) {
  return spawnSync(LLMGATE_BIN, ["check", "-c", file, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 30000,
  });
}

test("check accepts a valid config and prints every problem of a bad one with its line", () => {
  const good = writeConfig(`listen: 127.0.0.1:8080
backends:
  - {name: a, url: "http://127.0.0.1:8001", kind: vllm, models: [Qwen3-1.7B], api_key: "\${KEY:-none}"}
models:
  - {name: Qwen3-1.7B, aliases: [qwen3-1.7b]}
`);
  const ok = check(good);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /config OK/);

  const bad = writeConfig(`listen: 127.0.0.1:8080
workerz: 2
upstream:
  connect_timeout: 5
backends:
  - name: a
    url: "http://127.0.0.1:8001"
    kind: tgi
    models: [Qwen3-1.7B]
    api_key: \${LLMGATE_TEST_UNSET_VAR}
`);
  const r = check(bad);
  assert.notEqual(r.status, 0);
  const lines = r.stderr.trim().split("\n");
  assert.match(r.stderr, /:2:\d+: workerz: unknown key/);
  assert.match(r.stderr, /:4:\d+: upstream\.connect_timeout: expected a duration/);
  assert.match(r.stderr, /:8:\d+: backends\[0\]\.kind: unknown kind 'tgi'/);
  assert.match(r.stderr, /:10:\d+: backends\[0\]\.api_key: environment variable LLMGATE_TEST_UNSET_VAR is not set/);
  assert.match(lines.at(-1), /4 problem\(s\)/);
});

test("check --probe reports what each backend answers", async () => {
  const sim = await startSim();
  const file = writeConfig(`backends:
  - {name: live, url: "${sim.url}", kind: vllm, models: [Qwen3-1.7B]}
  - {name: wrong-model, url: "${sim.url}", kind: vllm, models: [Qwen3-0.6B]}
`);
  const r = check(file, ["--probe"]);
  assert.notEqual(r.status, 0);
  assert.match(r.stdout, /ok {3}live: .* serves Qwen3-1\.7B/);
  assert.match(r.stdout, /ok {3}live: metrics .*exposes vllm: metrics/);
  assert.match(r.stdout, /FAIL wrong-model: .* does not serve Qwen3-0\.6B \(it serves: Qwen3-1\.7B\)/);
  await sim.stop();
  const dead = writeConfig(`backends:
  - {name: gone, url: "http://127.0.0.1:1", kind: vllm, models: [Qwen3-1.7B]}
`);
  const d = check(dead, ["--probe"]);
  assert.notEqual(d.status, 0);
  assert.match(d.stdout, /FAIL gone: .*does not answer/);
});

test("serve with no config: the built-in simulator answers when nothing listens on :8000", async (t) => {
  const probe = await fetch("http://127.0.0.1:8000/v1/models").then(() => true, () => false);
  if (probe) {
    t.skip("something answers on 127.0.0.1:8000; the default would use it");
    return;
  }
  const gw = await spawnLlmgate(["serve", "--listen", "127.0.0.1:0"], { name: "default-gateway" });
  assert.match(gw.output().stderr, /built-in simulator serves Qwen3-1\.7B \(2 instances\) and Qwen3-0\.6B/);
  const r = await fetchJson(`${gw.url}/v1/chat/completions`, {
    body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "hi" }], max_tokens: 8 },
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("x-llmgate-backend"), /^sim-qwen3-1\.7b-[ab]$/);
  const small = await fetchJson(`${gw.url}/v1/chat/completions`, {
    body: { model: "Qwen3-0.6B", messages: [{ role: "user", content: "hi" }], max_tokens: 8 },
  });
  assert.equal(small.headers.get("x-llmgate-backend"), "sim-qwen3-0.6b");
  const models = await fetchJson(`${gw.url}/v1/models`);
  assert.deepEqual(models.json.data.map((m) => m.id), ["Qwen3-1.7B", "Qwen3-0.6B"]);
  await gw.stop();
});

test("CORS: configured origins get headers and preflight; others do not", async () => {
  const sim = await startSim();
  const file = writeConfig(`listen: 127.0.0.1:0
cors: {allow_origins: ["https://app.example.com"]}
backends:
  - {name: a, url: "${sim.url}", kind: vllm, models: [Qwen3-1.7B]}
`);
  const gw = await spawnLlmgate(["serve", "-c", file], { name: "cors-gateway" });
  const pre = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "OPTIONS",
    headers: {
      origin: "https://app.example.com",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example.com");
  assert.match(pre.headers.get("access-control-allow-methods"), /POST/);
  assert.match(pre.headers.get("access-control-allow-headers"), /authorization/);
  const r = await fetch(`${gw.url}/v1/models`, { headers: { origin: "https://app.example.com" } });
  assert.equal(r.headers.get("access-control-allow-origin"), "https://app.example.com");
  const other = await fetch(`${gw.url}/v1/models`, { headers: { origin: "https://evil.example.com" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const otherPre = await fetch(`${gw.url}/v1/models`, {
    method: "OPTIONS",
    headers: { origin: "https://evil.example.com", "access-control-request-method": "GET" },
  });
  assert.equal(otherPre.status, 403);
  await gw.stop();
  await sim.stop();
});

test("every example config in deploy/examples passes check", async () => {
  const { readdirSync } = await import("node:fs");
  const { REPO_ROOT } = await import("../lib/procs.mjs");
  const dir = join(REPO_ROOT, "deploy", "examples");
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  assert.ok(files.length > 0);
  for (const f of files) {
    const r = check(join(dir, f));
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
  }
});
