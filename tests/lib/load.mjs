// A bounded, mixed load for fault tests and the soak: `clients` loops, each
// sending chat completions one after another — every other one streamed — with
// the API keys shared out among the clients, until stop(). Every request is accounted for:
// the status it got, whether its stream ended with [DONE] or with an error
// event, whether the connection failed, and how long it took.
import { readSSE } from "./procs.mjs";

/**
 * @param {string} url the gateway's base URL
 * @param {{clients?: number, keys?: string[], maxTokens?: number, boundMs?: number, model?: string}} opts
 *   boundMs: a request still running after this is aborted and counted in `overBound`
 */
export function startLoad(url, { clients = 6, keys = [], maxTokens = 24, boundMs = 20000, model = "Qwen3-1.7B" } = {}) {
  const stats = {
    sent: 0,
    answered: 0, // a response head arrived
    byStatus: {},
    streams: 0,
    streamsDone: 0, // ended with [DONE] and no error event
    streamErrors: 0, // ended with an SSE error event (the backend broke off after the stream began)
    bodyErrors: 0, // the connection broke while the body was read
    networkErrors: 0, // no response head at all
    overBound: 0,
    maxMs: 0,
    samples: [], // a few failures, for messages
  };
  let stopping = false;
  let turn = 0;
  const note = (what) => {
    if (stats.samples.length < 20) stats.samples.push(what);
  };

  async function one(stream, key) {
    const started = Date.now();
    const headers = { "content-type": "application/json" };
    if (key) headers.authorization = `Bearer ${key}`;
    const body = {
      model,
      messages: [{ role: "user", content: `fault test ${turn}` }],
      max_tokens: maxTokens,
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    };
    stats.sent++;
    const signal = AbortSignal.timeout(boundMs);
    let res;
    try {
      res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify(body), signal });
    } catch (e) {
      if (signal.aborted) stats.overBound++;
      else stats.networkErrors++;
      note(`no answer: ${e.cause?.code || e.message}`);
      await new Promise((r) => setTimeout(r, 50)); // a gateway gone (SIGTERM) is not asked in a tight loop
      return;
    } finally {
      stats.maxMs = Math.max(stats.maxMs, Date.now() - started);
    }
    stats.answered++;
    stats.byStatus[res.status] = (stats.byStatus[res.status] || 0) + 1;
    try {
      if (stream && res.status === 200) {
        stats.streams++;
        let done = false;
        let error = false;
        for await (const ev of readSSE(res)) {
          if (ev.json?.error) error = true;
          if (ev.data === "[DONE]") done = true;
        }
        if (error) {
          stats.streamErrors++;
          note("stream error event");
        } else if (done) stats.streamsDone++;
        else {
          stats.bodyErrors++;
          note("stream ended without [DONE]");
        }
      } else {
        const text = await res.text();
        if (res.status >= 500 || res.status === 429) note(`${res.status} ${text.slice(0, 200)}`);
      }
    } catch (e) {
      if (signal.aborted) stats.overBound++;
      else stats.bodyErrors++;
      note(`body: ${e.cause?.code || e.message}`);
    } finally {
      stats.maxMs = Math.max(stats.maxMs, Date.now() - started);
    }
  }

  const loops = Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; !stopping; i++) {
      const key = keys.length ? keys[c % keys.length] : undefined; // a client keeps its key: at most ceil(clients / keys) in flight per key
      turn++;
      await one((c + i) % 2 === 0, key);
    }
  });
  return {
    stats,
    /** Stops sending and resolves with the stats once every request has ended. */
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return stats;
    },
  };
}

/** The sum over statuses >= 500 plus broken streams: what the gateway must log as failed. */
export function failuresOf(stats) {
  let n = stats.streamErrors;
  for (const [s, c] of Object.entries(stats.byStatus)) if (Number(s) >= 500) n += c;
  return n;
}
