// limits.store: redis — limits that hold for a fleet of replicas sharing one
// real redis-server, and what happens when Redis dies and comes back.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import {
  startSim,
  startGateway,
  startRedis,
  startRedisCluster,
  stopAll,
  fetchJson,
  redisCommand,
  redisCli,
  metric,
  eventually,
} from "../lib/procs.mjs";

after(stopAll);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// rules: one YAML rule or several; redis: a handle (its url) or the settings that find it (`cluster: [...]`).
function config(sim, redis, rules, extra = "") {
  const where = typeof redis === "string" ? redis : `url: "${redis.url}"`;
  return `listen: 127.0.0.1:0
workers: 2
health: {enabled: false}
backends:
  - {name: sim, url: "${sim.url}", models: [Qwen3-1.7B]}
limits:
  store: redis
  rules:
${[rules].flat().map((r) => `    - ${r}`).join("\n")}
redis: {${where}, timeout: 2s${extra}}
`;
}

const body = JSON.stringify({ model: "Qwen3-1.7B", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });

// `n` requests at once, spread over the gateways, all from one client address.
async function burst(gateways, n) {
  const statuses = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      fetch(`${gateways[i % gateways.length].url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      }).then(
        async (r) => {
          await r.arrayBuffer();
          return r.status;
        },
        () => 0,
      ),
    ),
  );
  const count = (s) => statuses.filter((x) => x === s).length;
  return { ok: count(200), limited: count(429), other: statuses.filter((x) => x !== 200 && x !== 429) };
}

// Each admits exactly 30 of a burst (fixed_window over an hour, so a burst cannot straddle a window edge).
const exactness = [
  ["sliding_log", "{name: per-ip, key: client_ip, algorithm: sliding_log, limit: 30/minute}"],
  ["gcra", "{name: per-ip, key: client_ip, algorithm: gcra, limit: 30/hour, burst: 30}"],
  ["fixed_window", "{name: per-ip, key: client_ip, algorithm: fixed_window, limit: 30/hour}"],
  ["token_bucket", "{name: per-ip, key: client_ip, algorithm: token_bucket, limit: 1/minute, burst: 30}"],
];

describe("three replicas, one Redis", () => {
  for (const [name, rule] of exactness) {
    test(`${name}: 2,000 concurrent requests across the fleet admit exactly 30`, async () => {
      const redis = await startRedis();
      const sim = await startSim();
      const gateways = await Promise.all([0, 1, 2].map(() => startGateway(config(sim, redis, rule))));
      // Windows begin on the clock's hour: a burst that would straddle one (a slow sanitizer build took
      // 3.6 s at 14:00:00) waits for the next window instead.
      const left = 3600000 - (Date.now() % 3600000);
      if (name === "fixed_window" && left < 30000) await new Promise((r) => setTimeout(r, left + 1000));
      const r = await burst(gateways, 2000);
      assert.deepEqual(r.other, [], "every request got 200 or 429");
      assert.equal(r.ok, 30);
      assert.equal(r.limited, 1970);
      let decided = 0;
      for (const g of gateways) decided += await metric(g.url, "llmgate_redis_decisions_total", { outcome: "redis" });
      assert.equal(decided, 2000, "every decision was Redis's, none a fallback");
      await Promise.all(gateways.map((g) => g.stop()));
      await sim.stop();
      await redis.stop();
    });
  }
});

describe("three replicas, a three-master Redis Cluster", () => {
  let cluster, sim;
  before(async () => {
    cluster = await startRedisCluster();
    sim = await startSim();
  });
  after(async () => {
    await sim?.stop();
    await cluster?.stop();
  });

  for (const [name, rule] of exactness) {
    test(`${name} beside global rules in another slot: exactly 30 of 2,000, the refused requests' reservations taken back`, async () => {
      const prefix = `t-${name}:`;
      const cfg = config(
        sim,
        `cluster: [${cluster.seeds.map((s) => `"${s}"`).join(", ")}]`,
        [
          rule,
          "{name: global, key: global, algorithm: fixed_window, limit: 5000/hour}",
          "{name: in-flight, key: global, algorithm: concurrency, limit: 5000}",
        ],
        `, key_prefix: "${prefix}"`,
      );
      // The per-ip state ({127.0.0.1}) and the global ones ({*}) live in different slots.
      const slot = (key) => redisCli(cluster.nodes[0].port, "CLUSTER", "KEYSLOT", key);
      assert.notEqual(await slot(`${prefix}{127.0.0.1}:per-ip`), await slot(`${prefix}{*}:global`));
      const gateways = await Promise.all([0, 1, 2].map(() => startGateway(cfg)));
      const r = await burst(gateways, 2000);
      assert.deepEqual(r.other, [], "every request got 200 or 429");
      assert.equal(r.ok, 30);
      let decided = 0,
        rollbacks = 0;
      for (const g of gateways) {
        decided += await metric(g.url, "llmgate_redis_decisions_total", { outcome: "redis" });
        rollbacks += await metric(g.url, "llmgate_redis_rollbacks_total");
      }
      assert.equal(decided, 2000, "every decision was the cluster's");
      assert.equal(rollbacks, 1970, "each refused request's global reservation was taken back");
      // The global window (on whichever master owns its slot) counts the 30 admitted only, and no lease is left.
      const sum = (pattern, per) =>
        `local n = 0 for _, k in ipairs(redis.call('KEYS', '${pattern}')) do n = n + ${per} end return n`;
      const tally = async (pattern, per) => {
        let n = 0;
        for (const node of cluster.nodes) n += Number(await redisCli(node.port, "EVAL", sum(pattern, per), "0"));
        return n;
      };
      // (The take-backs and releases are sent behind the answers: bounded polling.)
      const windows = `${prefix}{*}:global:fixed_window`; // a hash: window number → count
      const counted = "(function() local s = 0 for _, v in ipairs(redis.call('HVALS', k)) do s = s + tonumber(v) end return s end)()";
      await eventually(async () => (await tally(windows, counted)) === 30, {
        what: "the global window counting only the 30 admitted",
      });
      await eventually(async () => (await tally(`${prefix}{*}:in-flight:*`, "redis.call('ZCARD', k)")) === 0, {
        what: "every lease released",
      });
      await Promise.all(gateways.map((g) => g.stop()));
    });
  }
});

describe("concurrency across replicas", () => {
  test("leases: the fleet holds at most the limit in flight, and each ending request frees its lease", async () => {
    const redis = await startRedis();
    const sim = await startSim({ args: ["--latency-ms", "600"] });
    const rule = "{name: parallel, key: global, algorithm: concurrency, limit: 3}";
    const gateways = await Promise.all([0, 1].map(() => startGateway(config(sim, redis, rule))));
    const leases = `EVAL "local n = 0 for _, k in ipairs(redis.call('KEYS', 'llmgate:{*}:parallel:*')) do n = n + redis.call('ZCARD', k) end return n" 0`;
    for (let round = 0; round < 2; round++) {
      const r = await burst(gateways, 10);
      assert.deepEqual(r.other, []);
      assert.equal(r.ok, 3, `round ${round}: three in flight at once`);
      assert.equal(r.limited, 7);
      // Each ending request removes its lease (long before the 30 s it would take to expire).
      for (let i = 0; i < 100 && (await redisCommand(redis.port, leases)) !== ":0"; i++) await sleep(20);
      assert.equal(await redisCommand(redis.port, leases), ":0");
    }
    await Promise.all(gateways.map((g) => g.stop()));
    await sim.stop();
    await redis.stop();
  });
});

describe("when Redis fails", () => {
  test("killed under load: every request is still answered by the local fallback; restarted: global again", async () => {
    let redis = await startRedis();
    const sim = await startSim();
    const rule = "{name: per-ip, key: client_ip, algorithm: fixed_window, limit: 100000/hour}";
    const extra = ", on_failure: local, heartbeat: 200ms";
    const gateways = await Promise.all(
      [0, 1].map(() => startGateway(config(sim, redis, rule).replace("timeout: 2s", `timeout: 500ms${extra}`))),
    );
    // Both replicas see each other through their heartbeats.
    for (let i = 0; i < 50 && (await metric(gateways[0].url, "llmgate_redis_replicas")) !== 2; i++) await sleep(50);
    assert.equal(await metric(gateways[0].url, "llmgate_redis_replicas"), 2);
    let stop = false;
    const failures = [];
    let answered = 0;
    const loop = async (g) => {
      for (let i = 0; i < 3000 && !stop; i++) {
        const res = await fetch(`${g.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
        await res.arrayBuffer();
        if (res.status !== 200) failures.push(res.status);
        answered++;
      }
    };
    const running = [loop(gateways[0]), loop(gateways[1]), loop(gateways[0]), loop(gateways[1])];
    await sleep(300);
    redis.proc.kill("SIGKILL");
    await redis.exited;
    await sleep(700);
    const fallback = (await metric(gateways[0].url, "llmgate_redis_decisions_total", { outcome: "local" })) +
      (await metric(gateways[1].url, "llmgate_redis_decisions_total", { outcome: "local" }));
    assert.ok(fallback > 0, "the fallback decided while Redis was down");
    assert.equal(await metric(gateways[0].url, "llmgate_redis_up"), 0);
    redis = await redis.restart();
    const before = await metric(gateways[0].url, "llmgate_redis_decisions_total", { outcome: "redis" });
    for (let i = 0; i < 100 && (await metric(gateways[0].url, "llmgate_redis_decisions_total", { outcome: "redis" })) <= before; i++)
      await sleep(50);
    // Every worker reconnects (each has its own connection, with backoff of at most 2 s).
    for (let i = 0; i < 100; i++) {
      const up = (await metric(gateways[0].url, "llmgate_redis_up")) + (await metric(gateways[1].url, "llmgate_redis_up"));
      if (up === 2) break;
      await sleep(50);
    }
    stop = true;
    await Promise.all(running);
    // Quiet now: a few decisions on each replica settle the up gauge on the last outcome.
    for (const g of gateways)
      for (let i = 0; i < 4; i++) assert.equal((await fetchJson(`${g.url}/v1/chat/completions`, { body: JSON.parse(body) })).status, 200);
    assert.deepEqual(failures, [], `${answered} answered`);
    assert.ok((await metric(gateways[0].url, "llmgate_redis_decisions_total", { outcome: "redis" })) > before, "back to Redis");
    assert.equal(await metric(gateways[0].url, "llmgate_redis_up"), 1);
    assert.equal(await metric(gateways[1].url, "llmgate_redis_up"), 1);
    await Promise.all(gateways.map((g) => g.stop()));
    await sim.stop();
    await redis.stop();
  });

  // A Redis that accepts connections and never answers (a hung server, a
  // black-holed network) must not hold requests: each decision gives up at
  // redis.timeout. Without that the 10-minute test timeout would catch it.
  test("a Redis that never answers: every decision falls back at redis.timeout", { timeout: 60000 }, async () => {
    const sockets = new Set();
    const silent = net.createServer((s) => {
      sockets.add(s);
      s.on("error", () => {});
    });
    await new Promise((r) => silent.listen(0, "127.0.0.1", r));
    const fake = { url: `redis://127.0.0.1:${silent.address().port}` };
    const sim = await startSim();
    const rule = "{name: per-ip, key: client_ip, algorithm: fixed_window, limit: 3/hour}";
    const gw = await startGateway(config(sim, fake, rule).replace("timeout: 2s", "timeout: 50ms, on_failure: local, replicas: 1"));
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await fetchJson(`${gw.url}/v1/chat/completions`, { body: JSON.parse(body) })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429], "the local fallback enforces the limit meanwhile");
    assert.equal(await metric(gw.url, "llmgate_redis_decisions_total", { outcome: "local" }), 6);
    assert.equal(await metric(gw.url, "llmgate_redis_up"), 0);
    await gw.stop();
    await sim.stop();
    for (const s of sockets) s.destroy();
    silent.close();
  });

  test("on_failure: deny answers 503 at once; allow lets everything through", async () => {
    const redis = await startRedis();
    const sim = await startSim();
    const rule = "{name: tiny, key: client_ip, algorithm: fixed_window, limit: 1/hour}";
    const deny = await startGateway(config(sim, redis, rule).replace("timeout: 2s", "timeout: 50ms, on_failure: deny"));
    const allow = await startGateway(config(sim, redis, rule).replace("timeout: 2s", "timeout: 50ms, on_failure: allow"));
    await redis.stop();
    const d = await fetchJson(`${deny.url}/v1/chat/completions`, { body: JSON.parse(body) });
    assert.equal(d.status, 503);
    assert.equal(d.json.error.code, "rate_limiter_unavailable");
    for (let i = 0; i < 3; i++) assert.equal((await fetchJson(`${allow.url}/v1/chat/completions`, { body: JSON.parse(body) })).status, 200);
    await deny.stop();
    await allow.stop();
    await sim.stop();
  });
});
