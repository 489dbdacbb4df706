"""cli.client against a real HTTP server in this process that answers as a gateway in trouble does:
503 with Retry-After, or a connection dropped after the upload arrived. (The live gateway going
away for real is tested in tests/integration/test_cli.py.)"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import pytest

from cli import client
from cli.client import call, upload_headers

BUSY = json.dumps({"error": {"code": "store_unavailable", "message": "Cassandra is not answering"}}).encode()


class Gateway(BaseHTTPRequestHandler):
    """Answers 503 (Retry-After: 1) to the first `busy` requests, then 200; or drops the connection."""

    busy = 0
    drop = False
    seen: list[str] = []
    bodies: list[bytes] = []
    keys: list[str | None] = []
    auth: list[str | None] = []
    slow = 0
    closed = False

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).bodies.append(self.rfile.read(length))
        type(self).seen.append(self.command)
        type(self).keys.append(self.headers.get("Idempotency-Key"))
        type(self).auth.append(self.headers.get("Authorization"))
        if type(self).slow:
            type(self).slow -= 1
            time.sleep(2)  # past the client's timeout: its answer is lost to it
        if type(self).drop:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if type(self).closed:  # a closed batch: 409 without Retry-After
            self.send_response(409)
            body = json.dumps({"error": {"code": "batch_closed", "message": "closed"}}).encode()
        elif type(self).busy > 0:
            type(self).busy -= 1
            self.send_response(503)
            self.send_header("Retry-After", "1")
            body = BUSY
        else:
            self.send_response(200)
            body = b'{"id": "abc"}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def gateway():
    Gateway.busy, Gateway.drop, Gateway.seen, Gateway.bodies, Gateway.keys = 0, False, [], [], []
    Gateway.slow, Gateway.closed, Gateway.auth = 0, False, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def recovering(waits: list[str]):
    """An on_wait that notes why the client waits, and lets the gateway answer from then on."""

    def recover(reason: str) -> None:
        waits.append(reason)
        Gateway.drop = False

    return recover


def test_503s_are_waited_out_as_retry_after_says(gateway):
    Gateway.busy = 2
    waits: list[str] = []
    started = time.monotonic()
    body = call(gateway, "POST", "/v1/jobs", on_wait=waits.append, data={"x": "1"}, timeout=5)
    assert body == {"id": "abc"} and Gateway.seen == ["POST"] * 3
    assert waits == ["503 store_unavailable"] * 2
    assert time.monotonic() - started >= 2, "Retry-After: 1 was honoured each time"


def test_a_file_upload_sent_again_is_sent_whole(gateway, tmp_path):
    """requests reads an open file to its end; a retry must rewind it, not send nothing."""
    Gateway.busy = 1
    image = tmp_path / "digit.png"
    image.write_bytes(b"\x89PNG" + bytes(range(256)) * 40)
    with image.open("rb") as fh:
        call(
            gateway,
            "POST",
            "/v1/jobs",
            on_wait=lambda reason: None,
            files=[("file", ("d.png", fh))],
            timeout=5,
        )
    first, second = Gateway.bodies
    assert image.read_bytes() in first and image.read_bytes() in second


def test_a_503_past_the_deadline_is_the_gateways_own_error(gateway):
    Gateway.busy = 100
    with pytest.raises(click.ClickException, match="503 store_unavailable: Cassandra is not answering"):
        call(gateway, "GET", "/v1/jobs/x", retry_for=1.5, on_wait=lambda reason: None, timeout=5)
    assert 2 <= len(Gateway.seen) <= 3


def test_an_upload_without_a_key_whose_answer_was_lost_is_not_sent_twice(gateway):
    Gateway.drop = True
    with pytest.raises(click.ClickException, match="may have been accepted"):
        call(gateway, "POST", "/v1/jobs", on_wait=lambda reason: None, data={"x": "1"}, timeout=5)
    assert Gateway.seen == ["POST"], "sending it again could make a second job"


def test_a_read_whose_answer_was_lost_is_asked_again(gateway):
    Gateway.drop = True
    waits: list[str] = []
    assert call(gateway, "GET", "/v1/jobs/x", on_wait=recovering(waits), timeout=5) == {"id": "abc"}
    assert Gateway.seen == ["GET", "GET"] and len(waits) == 1


def test_an_upload_with_a_key_whose_answer_was_lost_is_sent_again_under_the_same_key(gateway):
    """The gateway answers a retry under the same Idempotency-Key with the first answer."""
    Gateway.drop = True
    waits: list[str] = []
    headers = upload_headers()
    on_wait = recovering(waits)
    body = call(gateway, "POST", "/v1/jobs", on_wait=on_wait, data={"x": "1"}, headers=headers, timeout=5)
    assert body == {"id": "abc"} and Gateway.seen == ["POST", "POST"]
    assert Gateway.keys == [headers["Idempotency-Key"]] * 2
    assert waits == ["the connection broke; sending the upload again under its Idempotency-Key"]


def test_an_upload_with_a_key_whose_answer_timed_out_is_sent_again_under_the_same_key(gateway):
    Gateway.slow = 1
    headers = upload_headers()
    body = call(gateway, "POST", "/v1/jobs", on_wait=lambda r: None, data={}, headers=headers, timeout=1)
    assert body == {"id": "abc"} and Gateway.keys == [headers["Idempotency-Key"]] * 2


def test_every_upload_gets_a_key_of_its_own():
    assert upload_headers() != upload_headers()


def test_the_key_in_recog_api_key_goes_with_every_request(gateway, monkeypatch):
    monkeypatch.setenv("RECOG_API_KEY", "recog_0123456789abcdef_" + "s" * 43)
    client.api_key.cache_clear()
    try:
        call(gateway, "GET", "/v1/jobs/x", retry_for=5)
        call(gateway, "POST", "/v1/jobs", retry_for=5, headers=upload_headers())
    finally:
        client.api_key.cache_clear()
    assert Gateway.auth == [f"Bearer recog_0123456789abcdef_{'s' * 43}"] * 2
    assert Gateway.keys[1] is not None, "the upload kept its Idempotency-Key beside the key"


def test_a_409_without_retry_after_is_final_at_once(gateway):
    """A closed batch stays closed: only a 409 with Retry-After (an upload still being recorded)
    is waited out."""
    Gateway.closed = True
    started = time.monotonic()
    with pytest.raises(click.ClickException, match="409 batch_closed"):
        call(gateway, "POST", "/v1/batches/x/files", retry_for=30, headers=upload_headers())
    assert time.monotonic() - started < 5 and Gateway.seen == ["POST"]
