// A TCP proxy in front of a real backend that can turn into a broken one, for
// fault tests and the soak: llmgate talks to it as to any backend.
//
// Modes (set with proxy.setMode(m); connections open at the switch are cut,
// as when a backend restarts, so every later exchange sees the new mode):
//   pass     forward bytes both ways to the target
//   hang     accept, read what is sent, never answer
//   garbage  answer each connection with one of several broken responses:
//            random bytes, a response head cut off, a Content-Length longer
//            than the body, an event stream of invalid JSON, a status line
//            of nonsense
//   refuse   stop listening (connections are refused); back with any other mode
import net from "node:net";
import { randomBytes } from "node:crypto";

const GARBAGE = [
  () => randomBytes(512),
  () => Buffer.from("HTTP/1.1 200 OK\r\nContent-Type: applic"),
  () => Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"id":"x","choices":['),
  () =>
    Buffer.from(
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "15\r\ndata: {not json at all\r\n" +
        "zz\r\n",
    ),
  () => Buffer.from("SPDY/9 999 WHAT\r\n\r\n"),
  () => Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: -7\r\n\r\n"),
];

export async function startFaultProxy(targetPort, { host = "127.0.0.1" } = {}) {
  let mode = "pass";
  let garbageTurn = 0;
  const open = new Set();
  const counts = { connections: 0, pass: 0, hang: 0, garbage: 0 };

  const onConnection = (client) => {
    counts.connections++;
    counts[mode] = (counts[mode] || 0) + 1;
    open.add(client);
    client.on("error", () => {});
    client.on("close", () => open.delete(client));
    if (mode === "hang") {
      client.resume(); // read and drop, answer nothing
      return;
    }
    if (mode === "garbage") {
      const make = GARBAGE[garbageTurn++ % GARBAGE.length];
      client.once("data", () => {
        client.end(make());
      });
      return;
    }
    const upstream = net.connect({ port: targetPort, host });
    open.add(upstream);
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => {
      open.delete(upstream);
      client.destroy();
    });
    client.on("close", () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  };

  let server = net.createServer(onConnection);
  await new Promise((r) => server.listen(0, host, r));
  const port = server.address().port;

  const cutAll = () => {
    for (const s of open) s.destroy();
    open.clear();
  };

  return {
    port,
    url: `http://${host}:${port}`,
    counts,
    get mode() {
      return mode;
    },
    async setMode(next) {
      if (next === mode) return;
      cutAll();
      if (next === "refuse") {
        await new Promise((r) => server.close(r));
      } else if (mode === "refuse") {
        server = net.createServer(onConnection);
        await new Promise((r, reject) => {
          server.once("error", reject);
          server.listen(port, host, r);
        });
      }
      mode = next;
    },
    async stop() {
      cutAll();
      if (mode !== "refuse") await new Promise((r) => server.close(r));
      mode = "refuse";
    },
  };
}
