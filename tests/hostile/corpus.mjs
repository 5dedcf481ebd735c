// The hostile-input corpus: malformed HTTP, slow and truncated clients, broken
// and absurd JSON. Each case is sent on its own connection by
// tests/integration/hostile.test.mjs (against the normal build and, in
// `make test`, the ASan+UBSan build) while a bystander keeps making good
// requests that must all succeed.
//
// A case is {name, send, expect}:
//   send:   a string/Buffer written at once, or async (sock, wait) => {...}
//           that writes over time (wait(ms) sleeps);
//   expect: {status: n | [n...], code?}  a response with that status (and,
//           for JSON error bodies, that error.code);
//           check(response) => true | "what is wrong", for anything else;
//           {closed: true}               the connection is closed without a
//                                        response (or with a 4xx: `orStatus`).
// Every case must end within the test's bound (the gateway runs with 1 s head
// and body timeouts), and every JSON error body must be OpenAI-shaped.

const MODEL = "Qwen3-1.7B";
const CHAT = "/v1/chat/completions";

/** A whole HTTP/1.1 request with a correct Content-Length; the connection closes after it. */
export function post(body, { path = CHAT, headers = {} } = {}) {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8");
  const head =
    `POST ${path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nConnection: close\r\n` +
    Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("") +
    `Content-Length: ${bytes.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), bytes]);
}

const get = (path, extra = "") => `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n${extra}\r\n`;
const chat = (extra = {}) => JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], ...extra });
const withBody = (fields) => post(chat(fields));
const bad = (code, status = 400) => ({ status, code });

export const cases = [
  // ---- the request line and headers ----------------------------------------
  { name: "garbage request line", send: "BLAH\r\n\r\n", expect: bad("bad_http_request") },
  { name: "binary garbage", send: Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]), expect: bad("bad_http_request") },
  { name: "unknown HTTP version", send: "GET /healthz HTTP/7.1\r\nHost: gw\r\n\r\n", expect: bad("bad_http_request") },
  { name: "bare LF line endings", send: "GET /healthz HTTP/1.1\nHost: gw\n\n", expect: bad("bad_http_request") },
  { name: "header without a colon", send: "GET /healthz HTTP/1.1\r\nHost gw\r\n\r\n", expect: bad("bad_http_request") },
  { name: "space before the colon", send: "GET /healthz HTTP/1.1\r\nHost : gw\r\n\r\n", expect: bad("bad_http_request") },
  { name: "NUL in a header value", send: "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: a\0b\r\n\r\n", expect: bad("bad_http_request") },
  { name: "control byte in the target", send: "GET /health\x01z HTTP/1.1\r\nHost: gw\r\n\r\n", expect: bad("bad_http_request") },
  { name: "obsolete header folding", send: "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: a\r\n b\r\n\r\n", expect: { status: [200, 400] } },
  { name: "target longer than the head limit", send: get("/" + "a".repeat(20000)), expect: bad("headers_too_large", 431) },
  { name: "one header over the head limit", send: get("/healthz", `X-Big: ${"b".repeat(20000)}\r\n`), expect: bad("headers_too_large", 431) },
  {
    name: "too many headers",
    send: get("/healthz", Array.from({ length: 150 }, (_, i) => `X-H${i}: v\r\n`).join("")),
    expect: bad("too_many_headers", 431),
  },
  { name: "unknown method", send: "BREW /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", expect: { status: 405 } },
  { name: "wrong method on a completion path", send: get(CHAT), expect: { status: 405 } },
  { name: "unknown path", send: get("/v1/../../etc/passwd"), expect: { status: 404 } },

  // ---- framing: Content-Length and chunked ---------------------------------
  {
    name: "conflicting Content-Length",
    send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345`,
    expect: bad("bad_http_request"),
  },
  { name: "negative Content-Length", send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\n`, expect: bad("bad_http_request") },
  { name: "non-numeric Content-Length", send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Length: ten\r\n\r\n`, expect: bad("bad_http_request") },
  {
    name: "Content-Length past 2^64",
    send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Length: 99999999999999999999999\r\n\r\n`,
    expect: { status: [400, 413] },
  },
  {
    name: "Content-Length of a terabyte: refused before reading",
    send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000000000000\r\n\r\n`,
    expect: bad("request_too_large", 413),
  },
  {
    name: "Content-Length and chunked together (smuggling)",
    send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    expect: bad("bad_http_request"),
  },
  {
    name: "a transfer coding other than chunked",
    send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\nxxxx`,
    expect: { status: [400, 501], closed: true },
  },
  {
    name: "bad chunk size",
    send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n`,
    expect: bad("bad_http_request"),
  },
  {
    name: "chunk size past 2^64",
    send: `POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\nabc\r\n`,
    expect: { status: [400, 413] },
  },
  {
    name: "chunked body over max_body_bytes",
    send: async (sock, wait) => {
      sock.write(`POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const piece = "x".repeat(64 * 1024);
      for (let i = 0; i < 8 && !sock.destroyed; i++) {
        sock.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
        await wait(5);
      }
    },
    expect: { status: 413, code: "request_too_large", orClosed: true },
  },
  {
    name: "chunked body cut off before its last chunk",
    send: async (sock) => {
      sock.end(`POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel`);
    },
    expect: { closed: true, orStatus: [400] },
  },
  {
    name: "two pipelined requests are answered in order",
    send: "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\nGET /v1/nope HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    expect: { status: 200, then: 404 },
  },
  { name: "HTTP/1.0 without a Host", send: "GET /healthz HTTP/1.0\r\n\r\n", expect: { status: 200 } },

  // ---- slow and truncated clients ------------------------------------------
  {
    name: "slowloris: a head dribbled a byte at a time",
    send: async (sock, wait) => {
      const head = `GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: ${"s".repeat(300)}\r\n\r\n`;
      for (let i = 0; i < head.length && !sock.destroyed; i++) {
        sock.write(head[i]);
        await wait(25); // the whole head would take 8 s; header_timeout is 1 s
      }
    },
    expect: { closed: true },
  },
  {
    name: "slow body: 10 of 100 bytes, then silence",
    send: async (sock) => {
      sock.write(`POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n{"model":"`);
    },
    expect: { closed: true, orStatus: [408] },
  },
  {
    name: "truncated body, then the client half-closes",
    send: async (sock) => {
      sock.end(`POST ${CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n{"model":"`);
    },
    expect: { closed: true, orStatus: [400] },
  },
  { name: "a connection that never sends anything", send: "", expect: { closed: true } },
  {
    name: "a head cut off by a reset",
    send: async (sock) => {
      sock.write("POST /v1/chat/completions HTTP/1.1\r\nHost: g");
      sock.resetAndDestroy();
    },
    expect: { reset: true },
  },

  // ---- the JSON body ---------------------------------------------------------
  { name: "empty body", send: post(""), expect: bad("invalid_json") },
  { name: "not JSON", send: post("{not json"), expect: bad("invalid_json") },
  { name: "JSON null", send: post("null"), expect: bad("invalid_json") },
  { name: "a JSON array", send: post("[]"), expect: bad("invalid_json") },
  { name: "a JSON string", send: post('"hello"'), expect: bad("invalid_json") },
  { name: "trailing garbage", send: post(chat() + " xyz"), expect: bad("invalid_json") },
  { name: "two documents", send: post(chat() + chat()), expect: bad("invalid_json") },
  { name: "100,000 nested arrays", send: post('{"model":' + "[".repeat(100000) + "]".repeat(100000) + "}"), expect: bad("invalid_json") },
  {
    name: "deeply nested content",
    send: post(`{"model":"${MODEL}","messages":[{"role":"user","content":${'{"a":'.repeat(5000)}1${"}".repeat(5000)}}]}`),
    expect: bad("invalid_json"),
  },
  {
    name: "invalid UTF-8 inside a string",
    send: post(Buffer.concat([Buffer.from(`{"model":"${MODEL}","messages":[{"role":"user","content":"`), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')])),
    expect: bad("invalid_json"),
  },
  {
    name: "overlong UTF-8 encoding of '/'",
    send: post(Buffer.concat([Buffer.from(`{"model":"${MODEL}","messages":[{"role":"user","content":"`), Buffer.from([0xc0, 0xaf]), Buffer.from('"}]}')])),
    expect: bad("invalid_json"),
  },
  { name: "a lone UTF-16 surrogate escape", send: post(chat({ messages: [{ role: "user", content: "x" }] }).replace('"x"', '"\\ud800"')), expect: bad("invalid_json") },
  { name: "a byte-order mark before the JSON", send: post(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(chat())])), expect: bad("invalid_json") },
  { name: "a number with a huge exponent", send: post(chat().slice(0, -1) + ',"temperature":1e999999}'), expect: { status: 400 } },
  { name: "a 100,000-digit number", send: post(chat().slice(0, -1) + `,"seed":${"9".repeat(100000)}}`), expect: bad("invalid_value") },
  { name: "a number beyond a double's range in an unknown field", send: post(chat().slice(0, -1) + ',"x_big":{"n":[1.5e400]}}'), expect: bad("invalid_value") },
  { name: "NUL and control characters escaped in content", send: post(chat({ messages: [{ role: "user", content: "a\u0000b\u0001c" }] })), expect: { status: 200 } },

  // ---- wrong types and absurd values -----------------------------------------
  { name: "model missing", send: post(JSON.stringify({ messages: [{ role: "user", content: "x" }] })), expect: bad("missing_required_parameter") },
  { name: "model empty", send: withBody({ model: "" }), expect: bad("invalid_value") },
  { name: "model a number", send: withBody({ model: 5 }), expect: bad("invalid_type") },
  { name: "model 10 KiB long", send: withBody({ model: "m".repeat(10240) }), expect: bad("model_not_found", 404) },
  { name: "messages a string", send: withBody({ messages: "hello" }), expect: bad("invalid_type") },
  { name: "messages empty", send: withBody({ messages: [] }), expect: bad("empty_array") },
  { name: "messages of numbers", send: withBody({ messages: [1, 2] }), expect: bad("invalid_type") },
  { name: "a message without a role", send: withBody({ messages: [{ content: "x" }] }), expect: bad("missing_required_parameter") },
  { name: "an unknown role", send: withBody({ messages: [{ role: "wizard", content: "x" }] }), expect: bad("invalid_value") },
  { name: "content a number", send: withBody({ messages: [{ role: "user", content: 5 }] }), expect: bad("invalid_type") },
  { name: "stream a string", send: withBody({ stream: "yes" }), expect: bad("invalid_type") },
  { name: "stream_options not an object", send: withBody({ stream: true, stream_options: 3 }), expect: bad("invalid_type") },
  { name: "max_tokens negative", send: withBody({ max_tokens: -1 }), expect: bad("invalid_value") },
  { name: "max_tokens zero", send: withBody({ max_tokens: 0 }), expect: bad("invalid_value") },
  { name: "max_tokens 10^12", send: withBody({ max_tokens: 1e12 }), expect: bad("context_length_exceeded") },
  { name: "max_tokens 2e62", send: withBody({ max_tokens: 2e62 }), expect: bad("invalid_type") },
  { name: "max_tokens fractional", send: withBody({ max_tokens: 1.5 }), expect: bad("invalid_type") },
  { name: "max_tokens a string", send: withBody({ max_tokens: "many" }), expect: bad("invalid_type") },
  { name: "max_completion_tokens negative", send: withBody({ max_completion_tokens: -5 }), expect: bad("invalid_value") },
  { name: "n 1000", send: withBody({ n: 1000 }), expect: bad("invalid_value") },
  { name: "n 0", send: withBody({ n: 0 }), expect: bad("invalid_value") },
  { name: "temperature 1e308", send: withBody({ temperature: 1e308 }), expect: bad("invalid_value") },
  { name: "temperature a string", send: withBody({ temperature: "hot" }), expect: bad("invalid_type") },
  { name: "top_p negative", send: withBody({ top_p: -5 }), expect: bad("invalid_value") },
  { name: "tools a string", send: withBody({ tools: "x" }), expect: bad("invalid_type") },
  { name: "enable_thinking a string", send: withBody({ enable_thinking: "no" }), expect: bad("invalid_type") },
  { name: "chat_template_kwargs an array", send: withBody({ chat_template_kwargs: [] }), expect: bad("invalid_type") },
  { name: "unknown fields pass through", send: withBody({ frobnicate: { deep: [1, 2, 3] }, x_custom: true }), expect: { status: 200 } },
  {
    name: "a prompt longer than the context",
    send: withBody({ messages: [{ role: "user", content: "word ".repeat(40000) }] }),
    expect: bad("context_length_exceeded"),
  },
  {
    name: "20,000 tiny messages",
    send: withBody({ messages: Array.from({ length: 20000 }, () => ({ role: "user", content: "x" })) }),
    expect: { status: [200, 400] },
  },
  { name: "a body over max_body_bytes", send: withBody({ messages: [{ role: "user", content: "z".repeat(2 << 20) }] }), expect: bad("request_too_large", 413) },
  { name: "/v1/completions: prompt a number", send: post(JSON.stringify({ model: MODEL, prompt: 5 }), { path: "/v1/completions" }), expect: bad("invalid_type") },
  { name: "/v1/completions: prompt empty array", send: post(JSON.stringify({ model: MODEL, prompt: [] }), { path: "/v1/completions" }), expect: bad("empty_array") },

  // ---- headers the gateway reads ---------------------------------------------
  { name: "x-request-timeout not a duration", send: post(chat(), { headers: { "x-request-timeout": "soon" } }), expect: { status: 400 } },
  { name: "x-request-timeout 1e999", send: post(chat(), { headers: { "x-request-timeout": "1e999" } }), expect: { status: 400 } },
  { name: "x-request-timeout negative", send: post(chat(), { headers: { "x-request-timeout": "-5" } }), expect: { status: 400 } },
  { name: "a 4 KiB bearer token", send: post(chat(), { headers: { Authorization: `Bearer ${"k".repeat(4096)}` } }), expect: { status: 200 } },
  { name: "non-ASCII bytes in the bearer token", send: post(chat(), { headers: { Authorization: "Bearer \xff\xfe\x80" } }), expect: { status: 200 } },
  { name: "x-request-id with control bytes: not a valid header", send: post(chat(), { headers: { "x-request-id": "a\x01b\x7f" } }), expect: bad("bad_http_request") },
  {
    name: "x-request-id with spaces and obs-text is replaced by a generated one",
    send: post(chat(), { headers: { "x-request-id": "a b\xe9\xff" } }),
    expect: { status: 200, check: (r) => /^[\x21-\x7e]{8,128}$/.test(r.headers["x-request-id"] || "") || `x-request-id ${JSON.stringify(r.headers["x-request-id"])}` },
  },
  {
    name: "an x-request-id of 129 characters is replaced",
    send: post(chat(), { headers: { "x-request-id": "r".repeat(129) } }),
    expect: { status: 200, check: (r) => (r.headers["x-request-id"] && r.headers["x-request-id"] !== "r".repeat(129)) || "kept the over-long id" },
  },
  { name: "x-forwarded-for garbage from an untrusted peer", send: post(chat(), { headers: { "x-forwarded-for": "not-an-ip, ,,, 999.1.1.1" } }), expect: { status: 200 } },

  // ---- the seed's GET endpoint and the query string ---------------------------
  { name: "seed endpoint: a lone %", send: get("/chat?query=%"), expect: { status: [200, 400] } },
  { name: "seed endpoint: percent-encoded invalid UTF-8", send: get("/chat?query=%ff%fe%c0"), expect: { status: [200, 400] } },
  { name: "seed endpoint: no query", send: get("/chat"), expect: { status: 400 } },
  { name: "models with a malformed query", send: get("/v1/models?%zz=%%&&=="), expect: { status: 200 } },
];
