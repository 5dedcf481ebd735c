// An Express proxy as a peer: express-rate-limit (fixed window, in memory,
// keyed on the client address) in front of a keep-alive forward to the model
// server with Node's own http client. WORKERS processes through node:cluster.
// Environment: UPSTREAM (http://127.0.0.1:PORT), PORT, WORKERS, LIMIT
// (requests per window), WINDOW_MS.
import cluster from "node:cluster";
import http from "node:http";
import express from "express";
import { rateLimit } from "express-rate-limit";

const workers = Number(process.env.WORKERS || 1);
if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const upstream = new URL(process.env.UPSTREAM);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const app = express();
  app.use(
    rateLimit({
      windowMs: Number(process.env.WINDOW_MS || 1000),
      limit: Number(process.env.LIMIT || 1e9),
      standardHeaders: false,
      legacyHeaders: false,
      message: { error: { message: "Rate limit exceeded", type: "rate_limit_exceeded", code: "rate_limit_exceeded" } },
    }),
  );
  app.use(express.raw({ type: "*/*", limit: "8mb" }));
  app.post("/v1/chat/completions", (req, res) => {
    const up = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: "/v1/chat/completions",
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": req.body.length },
      },
      (r) => {
        res.status(r.statusCode);
        if (r.headers["content-type"]) res.set("content-type", r.headers["content-type"]);
        r.pipe(res);
      },
    );
    up.on("error", () => res.status(502).json({ error: { message: "upstream failed", type: "upstream_error" } }));
    up.end(req.body);
  });
  const server = app.listen(Number(process.env.PORT), "127.0.0.1", () => {
    if (!cluster.isWorker || cluster.worker.id === 1) console.log(`express listening on 127.0.0.1:${server.address().port}`);
  });
  server.keepAliveTimeout = 65000;
}
