"""Webhooks on the real stack: a receiver on 127.0.0.1 that fails twice and then accepts gets a
job's and a batch's signed callback three times, with the real backoff between; a redirect is
not followed; a URL the allow-list refuses is answered 422."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from shared import callbacks, keys
from tests import images
from tests.integration.test_batches import digit_files
from tests.integration.test_tenants import recog_keys, unique
from tests.stack import API, check

pytestmark = pytest.mark.timeout(300)


class Receiver:
    """Answers each path from its script, the last answer for ever after; keeps every request."""

    def __init__(self, scripts: dict[str, list[int]]) -> None:
        self.scripts = scripts
        self.received: dict[str, list[tuple[float, dict, bytes]]] = {path: [] for path in scripts}
        self.received["/elsewhere"] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got = receiver.received.setdefault(self.path, [])
                got.append((time.time(), dict(self.headers), body))
                script = receiver.scripts.get(self.path, [200])
                status = script[min(len(got), len(script)) - 1]
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path: str, count: int, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while len(self.received[path]) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.received[path]


@pytest.fixture
def receiver():
    receiver = Receiver({"/job": [500, 500, 204], "/batch": [503, 502, 200], "/moved": [302]})
    yield receiver
    receiver.server.shutdown()


def new_key_session(key: str) -> requests.Session:
    session = requests.Session()
    session.headers["Connection"] = "close"  # as API does (tests/stack.py)
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def webhook_secret(store) -> str:
    key_id, _ = keys.split(API.headers["Authorization"].split()[1])
    return store.keys.get(key_id).webhook_secret


def hooked_job(gateway: str, spec, digit: int, callback_url: str) -> dict:
    upload = {"file": (f"{digit}.png", images.png_digit(digit))}
    answer = API.post(f"{gateway}/v1/jobs", files=upload, data={"callback_url": callback_url}, timeout=60)
    return check(spec, answer, 202).json()


def test_a_receiver_that_fails_twice_gets_each_callback_three_times_signed(gateway, store, spec, receiver):
    job = hooked_job(gateway, spec, 7, f"{receiver.url}/job")
    moved = hooked_job(gateway, spec, 3, f"{receiver.url}/moved")
    batch = check(
        spec,
        API.post(
            f"{gateway}/v1/batches",
            files=[("files", f) for f in digit_files(5, "hooked")],
            data={"name": "hooked", "callback_url": f"{receiver.url}/batch"},
            timeout=60,
        ),
        202,
    ).json()
    check(spec, API.post(f"{gateway}/v1/batches/{batch['id']}/close", timeout=30), 200)

    # Tries at once, 5 s later and 15 s after that (each up to a tenth more), and a pass a second.
    job_calls = receiver.wait_for("/job", 3, timeout=90)
    batch_calls = receiver.wait_for("/batch", 3, timeout=30)
    assert len(job_calls) == 3 and len(batch_calls) == 3, receiver.received
    secret = webhook_secret(store)
    for calls in (job_calls, batch_calls):
        gaps = [later[0] - earlier[0] for earlier, later in zip(calls, calls[1:], strict=False)]
        # Less a little: a try is timed as it starts, its arrival a few ms later.
        assert gaps[0] >= 4.9 and gaps[1] >= 14.9, f"tried again too soon: {gaps}"
        for at, headers, body in calls:
            assert callbacks.verify(secret, body, headers[callbacks.SIGNATURE_HEADER], int(at)), headers
            assert not callbacks.verify("whsec_another", body, headers[callbacks.SIGNATURE_HEADER], int(at))
        assert len({body for _, _, body in calls}) == 1, "every try carries the same body"

    sent_job = json.loads(job_calls[0][2])
    assert sent_job["type"] == "job.finished" and sent_job["id"] == job["id"]
    assert sent_job["status"] == "done" and sent_job["label"] == "7"
    sent_batch = json.loads(batch_calls[0][2])
    assert sent_batch["type"] == "batch.finished" and sent_batch["id"] == batch["id"]
    assert (sent_batch["status"], sent_batch["total"], sent_batch["done"]) == ("done", 5, 5)

    # The tries, as the views show them (a 2xx ends it: no try after the third).
    time.sleep(2)
    job_view = check(spec, API.get(f"{gateway}/v1/jobs/{job['id']}", timeout=30), 200).json()
    batch_view = check(spec, API.get(f"{gateway}/v1/batches/{batch['id']}", timeout=30), 200).json()
    for view, codes in ((job_view, [500, 500, 204]), (batch_view, [503, 502, 200])):
        hook = view["callback"]
        assert hook["state"] == "delivered" and hook["delivered_at"], hook
        assert [a["status_code"] for a in hook["attempts"]] == codes
        assert [a["error"] for a in hook["attempts"]] == [
            f"answered {codes[0]}",
            f"answered {codes[1]}",
            None,
        ]
    assert len(receiver.received["/job"]) == 3

    # A redirect is a failed try: its target never hears from the service.
    moved_view = API.get(f"{gateway}/v1/jobs/{moved['id']}", timeout=30).json()
    assert receiver.received["/moved"] and not receiver.received["/elsewhere"]
    assert moved_view["callback"]["state"] == "retrying"
    assert moved_view["callback"]["attempts"][0]["status_code"] == 302
    assert moved_view["callback"]["next_attempt_at"]


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://10.1.2.3/hook", "may not call"),
        ("http://169.254.169.254/latest/meta-data", "may not call"),
        ("ftp://example.org/hook", "http:// or https://"),
        ("http://user:pw@127.0.0.1/hook", "user or password"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_a_callback_url_the_service_may_not_call_is_refused_before_anything_is_queued(
    gateway, spec, url, says
):
    response = API.post(
        f"{gateway}/v1/jobs",
        files={"file": ("one.png", images.png_digit(1))},
        data={"callback_url": url},
        timeout=60,
    )
    error = check(spec, response, 422).json()["error"]
    assert error["code"] == "bad_callback_url" and says in error["message"], error
    response = API.post(
        f"{gateway}/v1/batches",
        files=[("files", f) for f in digit_files(1)],
        data={"callback_url": url},
        timeout=60,
    )
    assert check(spec, response, 422).json()["error"]["code"] == "bad_callback_url"


def test_keys_show_their_webhook_secret_once_and_one_made_before_webhooks_is_given_one(
    settings, gateway, store, spec
):
    name = unique("hooks")
    made = recog_keys(settings, "create", name)
    assert made.returncode == 0, made.stderr
    session = new_key_session(made.stdout.strip())
    key_id, _ = keys.split(made.stdout.strip())
    secret = store.keys.get(key_id).webhook_secret
    assert secret.startswith("whsec_") and secret in made.stderr and secret not in made.stdout

    # As a key made before webhooks has none (before the gateway first looks the key up).
    store.keys.set_webhook_secret(key_id, None)
    form = {"callback_url": "http://127.0.0.1:9/hook"}
    upload = {"file": ("two.png", images.png_digit(2))}
    refused = session.post(f"{gateway}/v1/jobs", files=upload, data=form, timeout=60)
    error = check(spec, refused, 422).json()["error"]
    assert error["code"] == "no_webhook_secret" and f"recog keys webhook-secret {name}" in error["message"]

    given = recog_keys(settings, "webhook-secret", name)
    assert given.returncode == 0, given.stderr
    assert (
        given.stdout.strip().startswith("whsec_")
        and store.keys.get(key_id).webhook_secret == given.stdout.strip()
    )
    time.sleep(settings.key_cache_seconds + 1)  # the gateway's key cache
    assert session.post(f"{gateway}/v1/jobs", files=upload, data=form, timeout=60).status_code == 202
    assert recog_keys(settings, "webhook-secret", unique("nobody")).returncode != 0
