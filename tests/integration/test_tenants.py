"""API keys and tenants on the real stack: keys made, listed and revoked with `recog keys`, every
/v1 route guarded, and one tenant's jobs, batches, cache and idempotency keys kept from another."""

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from shared import keys
from shared.settings import Settings
from tests import images
from tests.integration.test_batches import post_batch, wait_for_batch
from tests.stack import API

RECOG = Path(sys.executable).parent / "recog"
# A revoked key works on until every gateway process looks it up again.
pytestmark = pytest.mark.timeout(300)


def recog_keys(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.to_env()}
    return subprocess.run([str(RECOG), "keys", *args], capture_output=True, text=True, timeout=60, env=env)


def new_key(settings: Settings, *args: str) -> requests.Session:
    """A session carrying a key just made with `recog keys create` (its last line of stdout)."""
    made = recog_keys(settings, "create", *args)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert made.stdout.strip() == key, "the key alone on stdout"
    session = requests.Session()
    session.headers["Connection"] = "close"  # as API does (tests/stack.py)
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def unique(prefix: str) -> str:
    """Each test's own names: the stack (and its keys table) lives for the whole session."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit(session, gateway, data: bytes, wait: float = 20) -> dict:
    response = session.post(
        f"{gateway}/v1/jobs", params={"wait": wait}, files={"file": ("d.png", data)}, timeout=60
    )
    assert response.status_code in (200, 202), response.text
    return response.json()


def test_keys_are_made_listed_without_their_secret_and_revoked(settings, gateway, store):
    name = unique("alice")
    alice = new_key(settings, name)
    key_id, secret = keys.split(alice.headers["Authorization"].split()[1])
    assert alice.get(f"{gateway}/v1/batches", timeout=10).status_code == 200
    listed = recog_keys(settings, "list")
    line = next(line for line in listed.stdout.splitlines() if line.startswith(name + " "))
    assert "read,submit" in line and key_id in line and secret not in listed.stdout
    # Only a hash is kept: the secret is nowhere in the table.
    rows = [dict(r) for r in store.session.execute("SELECT * FROM api_keys")]
    assert rows and not any(secret in str(row) for row in rows)
    assert recog_keys(settings, "create", name).returncode != 0, "a live key's name is taken"

    assert recog_keys(settings, "revoke", name).returncode == 0
    revoked = settings.key_cache_seconds + 1
    time.sleep(revoked)  # every gateway process looks the key up again after this long
    refused = alice.get(f"{gateway}/v1/batches", timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "bad_api_key"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def missing_keys_counted(gateway: str) -> float:
    """recog_requests_refused_total{reason="missing_api_key"}, every gunicorn process added up."""
    metrics = API.get(f"{gateway}/metrics", timeout=10).text
    counted = re.search(r'^recog_requests_refused_total\{reason="missing_api_key"\} (\S+)$', metrics, re.M)
    return float(counted[1]) if counted else 0.0


def test_every_v1_route_wants_a_key_and_the_right_scope(settings, gateway):
    batch = post_batch(gateway, [("s.png", images.fresh_png_digit(1))]).json()["id"]
    before = missing_keys_counted(gateway)
    for method, path in [
        ("post", "/v1/jobs"),
        ("get", f"/v1/jobs/{uuid.uuid4()}"),
        ("get", "/v1/batches"),
        ("post", "/v1/batches"),
        ("get", f"/v1/batches/{batch}"),
        ("get", f"/v1/batches/{batch}/results"),
        ("post", f"/v1/batches/{batch}/files"),
        ("post", f"/v1/batches/{batch}/close"),
        ("post", f"/v1/batches/{batch}/cancel"),
        ("post", f"/v1/batches/{batch}/retry"),
        ("post", f"/v1/batches/{batch}/rescore"),
        ("get", f"/v1/batches/{batch}/compare"),
        ("post", f"/v1/jobs/{uuid.uuid4()}/cancel"),
        ("get", "/metrics"),
    ]:
        response = getattr(requests, method)(f"{gateway}{path}", timeout=10)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for path in ("/healthz", "/readyz", "/v1/openapi.json", "/"):
        assert requests.get(f"{gateway}{path}", timeout=10).status_code == 200, path
    assert missing_keys_counted(gateway) == before + 14

    reader = new_key(settings, unique("reader"), "--scopes", "read")
    refused = reader.post(
        f"{gateway}/v1/jobs", files={"file": ("r.png", images.fresh_png_digit(2))}, timeout=10
    )
    assert refused.status_code == 403 and "'submit' scope" in refused.json()["error"]["message"]
    for path in (
        f"/v1/batches/{batch}/cancel",
        f"/v1/batches/{batch}/retry",
        f"/v1/jobs/{uuid.uuid4()}/cancel",
    ):
        assert reader.post(f"{gateway}{path}", timeout=10).status_code == 403, path
    assert reader.get(f"{gateway}/metrics", timeout=10).status_code == 403
    assert API.get(f"{gateway}/metrics", timeout=10).status_code == 200, "the local key is admin"


def test_another_tenants_jobs_and_batches_are_not_found(settings, gateway):
    alice, bob = new_key(settings, unique("alice")), new_key(settings, unique("bob"))
    job = submit(alice, gateway, images.fresh_png_digit(4, 2))
    assert alice.get(f"{gateway}/v1/jobs/{job['id']}", timeout=10).json()["label"] == "4"
    seen = bob.get(f"{gateway}/v1/jobs/{job['id']}", params={"wait": 5}, timeout=10)
    assert seen.status_code == 404 and seen.json()["error"]["code"] == "unknown_job"
    cancelled = bob.post(f"{gateway}/v1/jobs/{job['id']}/cancel", timeout=10)
    assert cancelled.status_code == 404 and cancelled.json()["error"]["code"] == "unknown_job"

    batch = alice.post(
        f"{gateway}/v1/batches", files=[("files", ("a.png", images.fresh_png_digit(1)))], timeout=30
    ).json()["id"]
    more = [("files", ("b.png", images.fresh_png_digit(2)))]
    for method, path, kwargs in [
        ("get", f"/v1/batches/{batch}", {}),
        ("get", f"/v1/batches/{batch}/results", {}),
        ("post", f"/v1/batches/{batch}/files", {"files": more}),
        ("post", f"/v1/batches/{batch}/close", {}),
        ("post", f"/v1/batches/{batch}/cancel", {}),
        ("post", f"/v1/batches/{batch}/retry", {}),
        ("post", f"/v1/batches/{batch}/rescore", {"data": {"model": "digits"}}),
        ("get", f"/v1/batches/{batch}/compare", {}),
    ]:
        response = getattr(bob, method)(f"{gateway}{path}", timeout=30, **kwargs)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "unknown_batch"
    assert batch not in [b["id"] for b in bob.get(f"{gateway}/v1/batches", timeout=10).json()["batches"]]
    assert alice.get(f"{gateway}/v1/batches/{batch}", timeout=10).json()["total"] == 1, "bob added nothing"


def test_a_rotated_key_of_the_same_tenant_sees_its_jobs(settings, gateway):
    tenant = unique("acme")
    old = new_key(settings, tenant)
    job = submit(old, gateway, images.fresh_png_digit(6, 1))
    new = new_key(settings, unique("acme-2"), "--tenant", tenant)
    assert recog_keys(settings, "revoke", tenant).returncode == 0
    assert new.get(f"{gateway}/v1/jobs/{job['id']}", timeout=10).json()["label"] == "6"


def test_the_cache_is_each_tenants_own(settings, gateway):
    alice, bob = new_key(settings, unique("alice")), new_key(settings, unique("bob"))
    data = images.fresh_png_digit(8, 5, 131)  # bytes no other test sends
    first, again = submit(alice, gateway, data), submit(alice, gateway, data)
    assert (first["status"], first["cached"], again["cached"]) == ("done", False, True)
    theirs = submit(bob, gateway, data)
    assert theirs["status"] == "done" and theirs["cached"] is False, "bob must not learn alice sent it"
    assert theirs["label"] == first["label"]


def test_idempotency_keys_are_each_tenants_own(settings, gateway):
    alice, bob = new_key(settings, unique("alice")), new_key(settings, unique("bob"))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    files = {"file": ("i.png", images.fresh_png_digit(3))}
    a = alice.post(f"{gateway}/v1/jobs", files=files, headers=key, timeout=30)
    other = {"file": ("j.png", images.fresh_png_digit(5))}
    b = bob.post(f"{gateway}/v1/jobs", files=other, headers=key, timeout=30)
    assert (a.status_code, b.status_code) == (202, 202), b.text
    assert a.json()["id"] != b.json()["id"]
    retried = alice.post(f"{gateway}/v1/jobs", files=files, headers=key, timeout=30)
    assert retried.json()["id"] == a.json()["id"], "a retry within the tenant gets the first answer"


def test_a_closed_batch_takes_no_more_files(gateway):
    created = post_batch(gateway, [("c1.png", images.fresh_png_digit(1))]).json()
    closed = API.post(f"{gateway}/v1/batches/{created['id']}/close", timeout=10)
    assert closed.status_code == 200 and closed.json()["closed"] is True
    more = API.post(
        f"{gateway}/v1/batches/{created['id']}/files",
        files=[("files", ("c2.png", images.fresh_png_digit(2)))],
        timeout=30,
    )
    assert more.status_code == 409 and more.json()["error"]["code"] == "batch_closed"
    assert "Retry-After" not in more.headers, "closed for good: nothing to wait for"
    final = wait_for_batch(gateway, created["id"])
    assert (final["total"], final["closed"]) == (1, True)
    assert API.post(f"{gateway}/v1/batches/{created['id']}/close", timeout=10).status_code == 200


def test_the_batch_list_is_the_tenants_newest_first_in_pages(settings, gateway):
    carol = new_key(settings, unique("carol"))
    made = []
    for n in range(5):
        files = [("files", (f"p{n}.png", images.fresh_png_digit(n)))]
        made.append(
            carol.post(f"{gateway}/v1/batches", files=files, data={"name": f"b{n}"}, timeout=30).json()["id"]
        )
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = carol.get(f"{gateway}/v1/batches", params=params, timeout=10).json()
        seen += [b["id"] for b in page["batches"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == made[::-1] and pages == 3
    bad = carol.get(f"{gateway}/v1/batches", params={"cursor": "nonsense"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"
