"""The seed guide's stack as a peer: FastAPI + uvicorn in front of the model
server, rate limited with `limits` (the library slowapi wraps; fixed window,
slowapi's default strategy), keyed on the client address as slowapi's
get_remote_address does.

PEER_MODE=fair  (default) forwards with one shared async httpx client
               (keep-alive pool), relaying streams as they come, as a
               careful user would write it.
PEER_MODE=seed  forwards with a blocking call inside `async def`, as the
               seed's handler does (`chat_model.invoke(query)`): each worker
               serves one request at a time.

Environment: UPSTREAM (http://127.0.0.1:PORT), LIMIT ("1000000/second").
Run: uvicorn --app-dir bench/peers fastapi_proxy:app --workers N
"""
import os

import httpx
import requests
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

UPSTREAM = os.environ["UPSTREAM"].rstrip("/")
MODE = os.environ.get("PEER_MODE", "fair")
LIMIT = parse(os.environ.get("LIMIT", "1000000/second"))
storage = MemoryStorage()  # held here: the limiter keeps only a weak reference to it
limiter = FixedWindowRateLimiter(storage)
app = FastAPI()
client = None
session = requests.Session()


@app.on_event("startup")
async def startup():
    global client
    client = httpx.AsyncClient(base_url=UPSTREAM, timeout=600,
                               limits=httpx.Limits(max_connections=256, max_keepalive_connections=256))


def refused():
    return JSONResponse({"error": {"message": "Rate limit exceeded", "type": "rate_limit_exceeded",
                                   "code": "rate_limit_exceeded"}}, status_code=429)


@app.post("/v1/chat/completions")
async def chat(request: Request):
    if not limiter.hit(LIMIT, request.client.host):
        return refused()
    body = await request.body()
    headers = {"content-type": "application/json"}
    if MODE == "seed":  # blocking, inside async def: the event loop waits with it
        r = session.post(UPSTREAM + "/v1/chat/completions", data=body, headers=headers, timeout=600)
        return Response(r.content, status_code=r.status_code, media_type="application/json")
    if b'"stream":true' in body.replace(b" ", b""):  # relay a stream as it comes
        r = await client.send(client.build_request("POST", "/v1/chat/completions", content=body, headers=headers),
                              stream=True)
        return StreamingResponse(r.aiter_raw(), status_code=r.status_code,
                                 media_type=r.headers.get("content-type"), background=BackgroundTask(r.aclose))
    r = await client.post("/v1/chat/completions", content=body, headers=headers)
    return Response(r.content, status_code=r.status_code, media_type="application/json")
