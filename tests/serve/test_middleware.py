"""The request guard in front of `tfft serve`: token, body size and timeout, as JSON refusals."""

import asyncio
import json

from tfft.serve.middleware import RequestGuard


async def echo(scope, receive, send):
    """A toy app: answers 200 with the body it read, after `sleep` seconds (from the query string)."""
    message = await receive()
    sleep = float(scope["query_string"].decode() or 0)
    if sleep:
        await asyncio.sleep(sleep)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": message["body"]})


def call(guard, path="/v1/models/m:predict", headers=(), chunks=(b"",), sleep=0):
    """(status, headers, body) of one request through `guard`; `chunks` arrive one message each."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "query_string": str(sleep or "").encode(),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}
    asyncio.run(guard(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


def test_token_is_required_except_on_health_checks():
    guard = RequestGuard(echo, token="s3cret")
    status, headers, body = call(guard)
    assert status == 401 and headers[b"www-authenticate"] == b"Bearer"
    assert "Authorization: Bearer" in json.loads(body)["error"]
    assert call(guard, headers=[("Authorization", "Bearer wrong")])[0] == 401
    assert call(guard, headers=[("Authorization", "Basic s3cret")])[0] == 401
    assert call(guard, headers=[("Authorization", "Bearer s3cret")], chunks=[b"hi"])[::2] == (200, b"hi")
    for path in ("/", "/v2/health/live", "/v2/health/ready"):
        assert call(guard, path=path)[0] == 200
    assert call(RequestGuard(echo))[0] == 200  # no token set: no check


def test_oversized_bodies_get_413_whether_announced_or_streamed():
    guard = RequestGuard(echo, max_body_bytes=10)
    status, _, body = call(guard, headers=[("Content-Length", "11")], chunks=[b"x" * 11])
    assert status == 413 and "the limit is 10 (--max-body-bytes)" in json.loads(body)["error"]
    status, _, body = call(guard, chunks=[b"x" * 6, b"x" * 6])  # chunked: no Content-Length
    assert status == 413 and "over 10 bytes" in json.loads(body)["error"]
    assert call(guard, chunks=[b"x" * 5, b"y" * 5])[::2] == (200, b"xxxxxyyyyy")  # reassembled for the app
    assert call(guard, headers=[("Content-Length", "ten")])[0] == 400


def test_slow_answers_get_504():
    guard = RequestGuard(echo, timeout=0.05)
    status, _, body = call(guard, sleep=2)
    assert status == 504 and "--timeout" in json.loads(body)["error"]
    assert call(guard, sleep=0.01)[0] == 200
