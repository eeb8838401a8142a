"""What every HTTP request to `tfft serve` passes first: the bearer token, the body size limit and
the timeout, as one ASGI middleware, so each refusal is a JSON `{"error": ...}` before any model
code runs."""

import asyncio
import hmac
import json

# Liveness and readiness stay open with a token, so Kubernetes probes need no secret; they tell
# nothing about the model.
OPEN_PATHS = frozenset({"/", "/v2/health/live", "/v2/health/ready"})


class RequestGuard:
    """ASGI middleware: 401 without `Authorization: Bearer <token>` (where a token is set; the
    token is compared in constant time), 413 for a body over `max_body_bytes` (by Content-Length
    before reading, else while reading), 504 when the app has not started its answer within
    `timeout` seconds.

    A request that times out is cancelled: a prediction still waiting for an inference thread
    never runs, one already running finishes in its thread and its result is dropped.
    """

    def __init__(self, app, token=None, max_body_bytes=1 << 20, timeout=30.0):
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.token is not None and scope["path"] not in OPEN_PATHS and not self._authorized(headers):
            await _error(send, 401, "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'",
                         [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get(b"content-length", b"0")
        if not length.isdigit():
            await _error(send, 400, f"bad Content-Length header {length.decode('latin-1')!r}")
            return
        if int(length) > self.max_body_bytes:
            await _error(send, 413, self._too_large(int(length)))
            return
        started = False

        async def send_tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self._guarded(scope, receive, send_tracked), self.timeout)
        except asyncio.TimeoutError:  # TimeoutError from Python 3.11 on
            if not started:
                await _error(send, 504, f"no answer within {self.timeout:g} s (--timeout): the model is slow or the "
                                        "server is busy; retry later or send smaller batches")

    async def _guarded(self, scope, receive, send):
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _error(send, 413, self._too_large(size, at_least=True))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the client to disconnect

        await self.app(scope, replay, send)

    def _authorized(self, headers):
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.token)

    def _too_large(self, size, at_least=False):
        size = f"over {self.max_body_bytes}" if at_least else size
        return (f"the request body is {size} bytes; the limit is {self.max_body_bytes} (--max-body-bytes): send "
                "fewer or shorter examples")


async def _error(send, status, message, headers=()):
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
