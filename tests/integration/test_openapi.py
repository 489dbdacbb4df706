"""Real responses of the running gateway checked against /v1/openapi.json (openapi-core)."""

import io
import time
import uuid
import zipfile

import requests

from gateway import create_app
from tests import images
from tests.stack import API, check


def test_every_route_is_described(gateway, settings):
    described = set(API.get(f"{gateway}/v1/openapi.json", timeout=10).json()["paths"])
    app = create_app(settings)
    routes = {
        rule.rule.replace("<", "{").replace(">", "}")
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.rule.startswith("/static")
    }
    assert routes <= described, routes - described


def test_job_endpoints_answer_as_described(spec, gateway):
    post = f"{gateway}/v1/jobs"
    accepted = check(spec, API.post(post, files={"file": ("a.png", images.png_digit(1, 2))}), 202)
    job_id = accepted.json()["id"]
    check(spec, API.get(f"{gateway}/v1/jobs/{job_id}", params={"wait": 20}), 200)
    done = check(
        spec, API.post(post, params={"wait": 20}, files={"file": ("b.png", images.png_digit(7, 3))}), 200
    )
    assert done.json()["status"] == "done"
    blank = check(
        spec, API.post(post, params={"wait": 20}, files={"file": ("c.png", images.blank_png())}), 200
    )
    assert blank.json()["label"] is None and blank.json()["reason"]
    check(spec, API.post(post), 400)
    check(spec, API.post(post, files={"file": ("x.png", images.png_digit(1))}, data={"model": "nope"}), 400)
    check(spec, API.post(post, files={"file": ("notes.txt", b"hello, not an image")}), 415)
    check(spec, API.post(post, files={"file": ("t.png", images.truncated(images.png_digit(3)))}), 422)
    check(spec, API.get(f"{gateway}/v1/jobs/not-a-uuid"), 400)
    check(spec, API.get(f"{gateway}/v1/jobs/{uuid.uuid4()}"), 404)


def test_batch_endpoints_answer_as_described(spec, gateway):
    files = [("files", (f"o/{i}.png", images.png_digit(i, 6))) for i in range(3)]
    files.append(("files", ("o/broken.png", images.truncated(images.png_digit(2)))))
    accepted = check(spec, API.post(f"{gateway}/v1/batches", files=files, data={"name": "spec"}), 202)
    batch = accepted.json()["id"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("more/9.png", images.png_digit(9, 6))
        zf.writestr("more/inner.zip", b"PK\x05\x06" + b"\0" * 18)
    more = check(
        spec,
        API.post(f"{gateway}/v1/batches/{batch}/files", files={"archive": ("m.zip", archive.getvalue())}),
        202,
    )
    assert more.json()["skipped"]
    deadline = time.monotonic() + 120
    while check(spec, API.get(f"{gateway}/v1/batches/{batch}"), 200).json()["status"] not in (
        "done",
        "partial",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    results = check(spec, API.get(f"{gateway}/v1/batches/{batch}/results", params={"format": "json"}), 200)
    assert len(results.json()) == 5
    check(spec, API.get(f"{gateway}/v1/batches/{batch}/results"), 200)
    check(spec, API.get(f"{gateway}/v1/batches/{batch}/results", params={"format": "xml"}), 400)
    check(spec, API.post(f"{gateway}/v1/batches", files={"archive": ("bad.zip", b"not a zip")}), 422)
    check(spec, API.post(f"{gateway}/v1/batches"), 400)
    check(spec, API.post(f"{gateway}/v1/batches/{batch}/files"), 400)  # neither files nor archive
    listed = check(spec, API.get(f"{gateway}/v1/batches", params={"limit": 1}), 200).json()
    assert [b["id"] for b in listed["batches"]] == [batch], "the newest first"
    check(spec, API.get(f"{gateway}/v1/batches", params={"cursor": "nonsense"}), 400)
    closed = check(spec, API.post(f"{gateway}/v1/batches/{batch}/close"), 200).json()
    assert closed["closed"] is True
    more = [("files", ("late.png", images.png_digit(3)))]
    check(spec, API.post(f"{gateway}/v1/batches/{batch}/files", files=more), 409)
    check(spec, requests.get(f"{gateway}/v1/batches"), 401)
    check(spec, API.get(f"{gateway}/v1/batches/{uuid.uuid4()}"), 404)
    check(spec, API.get(f"{gateway}/v1/batches/nope"), 400)


def test_service_endpoints_answer_as_described(spec, gateway):
    check(spec, API.get(f"{gateway}/healthz"), 200)
    check(spec, API.get(f"{gateway}/readyz"), 200)
    check(spec, API.get(f"{gateway}/metrics"), 200)
    check(spec, API.get(f"{gateway}/v1/openapi.json"), 200)
