// The simulator itself: vLLM/DCGM metrics, thinking switches, reasoning
// parser fields, fault injection at start and at run time.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startSim, fetchJson, readSSE, stopAll } from "../lib/procs.mjs";

after(stopAll);

const chat = (extra = {}) => ({ model: "Qwen3-1.7B", messages: [{ role: "user", content: "hello" }], ...extra });

test("answers deterministically, with inline <think> unless thinking is switched off", async () => {
  const sim = await startSim();
  const a = await fetchJson(`${sim.url}/v1/chat/completions`, { body: chat() });
  const b = await fetchJson(`${sim.url}/v1/chat/completions`, { body: chat() });
  assert.equal(a.json.choices[0].message.content, b.json.choices[0].message.content);
  assert.match(a.json.choices[0].message.content, /^<think>\n[\s\S]*<\/think>\n\n\S/);
  const off = await fetchJson(`${sim.url}/v1/chat/completions`, { body: chat({ chat_template_kwargs: { enable_thinking: false } }) });
  assert.doesNotMatch(off.json.choices[0].message.content, /<think>/);
  const soft = await fetchJson(`${sim.url}/v1/chat/completions`, {
    body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "hello /no_think" }] },
  });
  assert.doesNotMatch(soft.json.choices[0].message.content, /<think>/);
  // vLLM ignores a top-level enable_thinking; so does the simulator (llmgate maps it).
  const top = await fetchJson(`${sim.url}/v1/chat/completions`, { body: chat({ enable_thinking: false }) });
  assert.match(top.json.choices[0].message.content, /<think>/);
  const other = await fetchJson(`${sim.url}/v1/chat/completions`, {
    body: { model: "Qwen3-1.7B", messages: [{ role: "user", content: "something else" }] },
  });
  assert.notEqual(other.json.choices[0].message.content, a.json.choices[0].message.content);
  const wrong = await fetchJson(`${sim.url}/v1/chat/completions`, { body: chat({ model: "Qwen3-0.6B" }) });
  assert.equal(wrong.status, 404);
  await sim.stop();
});

test("--reasoning-parser sends thinking in the named field, streamed and not", async () => {
  const sim = await startSim({ args: ["--reasoning-parser", "--reasoning-field", "reasoning"] });
  const r = await fetchJson(`${sim.url}/v1/chat/completions`, { body: chat() });
  const msg = r.json.choices[0].message;
  assert.ok(msg.reasoning.length > 0);
  assert.doesNotMatch(msg.content, /think>/);
  const res = await fetch(`${sim.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(chat({ stream: true, stream_options: { include_usage: true } })),
  });
  let reasoning = "";
  let usage;
  for await (const e of readSSE(res)) {
    if (e.json?.choices?.length) reasoning += e.json.choices[0].delta.reasoning ?? "";
    if (e.json?.usage) usage = e.json.usage;
  }
  assert.equal(reasoning, msg.reasoning);
  assert.equal(usage.completion_tokens, r.json.usage.completion_tokens);
  await sim.stop();
});

test("exposes vLLM, DCGM and its own metrics; counts running requests under load", async () => {
  const sim = await startSim({ profile: "default" });
  const inflight = Array.from({ length: 4 }, () => fetchJson(`${sim.url}/v1/chat/completions`, { body: chat() }));
  await new Promise((r) => setTimeout(r, 150));
  const during = (await fetchJson(`${sim.url}/metrics`)).text;
  const running = Number(/vllm:num_requests_running\{model_name="Qwen3-1.7B"\} (\S+)/.exec(during)[1]);
  assert.equal(running, 4);
  assert.match(during, /vllm:kv_cache_usage_perc\{model_name="Qwen3-1.7B"\} 0\.\d+/);
  assert.match(during, /DCGM_FI_DEV_GPU_UTIL\{gpu="0",modelName="NVIDIA L4"\} [1-9]/);
  assert.match(during, /DCGM_FI_DEV_FB_USED\{gpu="0",modelName="NVIDIA L4"\} \d+/);
  await Promise.all(inflight);
  const doneText = (await fetchJson(`${sim.url}/metrics`)).text;
  assert.match(doneText, /llmgate_sim_requests_total\{outcome="completed"\} 4/);
  assert.match(doneText, /vllm:num_requests_running\{model_name="Qwen3-1.7B"\} 0/);
  assert.match(doneText, /vllm:generation_tokens_total\{model_name="Qwen3-1.7B"\} [1-9]/);
  await sim.stop();
});

test("faults: error rate, refused connections and GPU temperature, set at run time", async () => {
  const sim = await startSim({ args: ["--gpu-temp", "91"] });
  assert.match((await fetchJson(`${sim.url}/metrics`)).text, /DCGM_FI_DEV_GPU_TEMP\{gpu="0",modelName="NVIDIA L4"\} 91/);
  const set = await fetchJson(`${sim.url}/sim/faults`, { body: { error_rate: 1, error_status: 503 } });
  assert.equal(set.json.error_rate, 1);
  const failed = await fetchJson(`${sim.url}/v1/chat/completions`, { body: chat() });
  assert.equal(failed.status, 503);
  assert.equal(failed.json.error.code, "simulated_fault");
  assert.match((await fetchJson(`${sim.url}/metrics`)).text, /llmgate_sim_requests_total\{outcome="failed"\} 1/);
  const bad = await fetchJson(`${sim.url}/sim/faults`, { body: { no_such_fault: 1 } });
  assert.equal(bad.status, 400);
  await fetchJson(`${sim.url}/sim/faults`, { body: { error_rate: 0, refuse: true, refuse_for_ms: 600 } });
  await assert.rejects(fetch(`${sim.url}/v1/models`), "connections are refused");
  let back = false;
  for (let i = 0; i < 40 && !back; i++) {
    await new Promise((r) => setTimeout(r, 100));
    back = await fetch(`${sim.url}/v1/models`).then((r) => r.ok, () => false);
  }
  assert.ok(back, "listening again after refuse_for_ms");
  await sim.stop();
});

test("SIGTERM with hundreds of streams open: the simulator unwinds them and exits 0", async () => {
  // It once crashed here: coroutines left for the event loop's destructor ran
  // their clean-up against members already destroyed.
  const sim = await startSim({ profile: "slow" });
  const controller = new AbortController();
  const streams = await Promise.all(
    Array.from({ length: 300 }, () =>
      fetch(`${sim.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chat({ stream: true, max_tokens: 100, ignore_eos: true })),
        signal: controller.signal,
      }),
    ),
  );
  // Every stream has started (its first event read) before the signal.
  await Promise.all(streams.map((r) => r.body.getReader().read()));
  const info = await sim.stop();
  controller.abort();
  assert.deepEqual(info, { code: 0, signal: null });
});
