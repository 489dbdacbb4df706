"""Who may call what, decided before anything else: keys, scopes, the 401 and 403 answers, and the
headers every answer carries. Cassandra is unreachable here, so the keys live in MemoryKeys."""

import dataclasses
import io

import pytest

from gateway import create_app
from gateway.auth import KEYS_REMEMBERED, KeyRing
from shared.jobs import utcnow
from shared.keys import READ, SUBMIT, new_key, split
from tests import images
from tests.fakes import MemoryKeys, memory_keyed_client


@pytest.fixture
def app(offline_settings):
    return create_app(offline_settings)


def _upload():
    return {"file": (io.BytesIO(images.png_digit(1)), "1.png")}


def _refused(response, status: int, code: str) -> str:
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code
    return response.get_json()["error"]["message"]


def test_no_key_is_401_with_a_bearer_challenge_and_says_how_to_get_one(app):
    response = app.test_client().post("/v1/jobs", data=_upload())
    message = _refused(response, 401, "missing_api_key")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="recog"'
    assert "Authorization: Bearer" in message and "recog keys create" in message


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer recog_0123456789abcdef_" + "x" * 43],
    ids=["not-a-key", "another-scheme", "unknown-key-id"],
)
def test_a_key_it_does_not_know_is_401_invalid_token(app, header):
    app.extensions["recog"].keys = KeyRing(MemoryKeys, seconds=10)
    response = app.test_client().get(
        "/v1/jobs/0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b", headers={"Authorization": header}
    )
    _refused(response, 401, "bad_api_key")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_wrong_secret_and_a_revoked_key_are_refused(app):
    table = MemoryKeys()
    row, key = new_key("alice", "alice", (SUBMIT, READ), utcnow())
    table.add(row)
    app.extensions["recog"].keys = KeyRing(lambda: table, seconds=0)
    key_id, secret = split(key)
    forged = f"recog_{key_id}_{secret[::-1]}"
    path = "/v1/jobs/not-a-uuid"  # past the key check, a 400: no store needed
    assert app.test_client().get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 400
    _refused(app.test_client().get(path, headers={"Authorization": f"Bearer {forged}"}), 401, "bad_api_key")
    table.rows[key_id] = dataclasses.replace(row, revoked_at=utcnow())
    _refused(app.test_client().get(path, headers={"Authorization": f"Bearer {key}"}), 401, "bad_api_key")


def test_made_up_key_ids_push_out_only_each_other():
    """The looked-up keys are kept least recently used first: a flood of unknown ids, each a
    Cassandra read once, never flushes a key in use."""
    table = MemoryKeys()
    row, _ = new_key("carol", "carol", (READ,), utcnow())
    table.add(row)
    reads = []
    ring = KeyRing(lambda: reads.append(1) or table, seconds=3600)
    ring.find(row.key_id)
    for n in range(KEYS_REMEMBERED + 50):
        ring.find(f"{n:016x}")
        if n % 100 == 0:
            ring.find(row.key_id)  # in use all along
    before = len(reads)
    assert ring.find(row.key_id) == row and len(reads) == before, "still remembered: no read"
    ring.find(f"{0:016x}")
    assert len(reads) == before + 1, "the oldest made-up id was pushed out"


def test_a_revoked_key_works_until_the_gateway_looks_it_up_again(app):
    """RECOG_KEY_CACHE_SECONDS: a key looked up is trusted that long, so requests cost no read."""
    table = MemoryKeys()
    row, key = new_key("bob", "bob", (READ,), utcnow())
    table.add(row)
    ring = KeyRing(lambda: table, seconds=3600)
    assert ring.find(row.key_id) == row
    table.revoke(row.key_id, utcnow())
    assert ring.find(row.key_id) == row, "within the cache time, the key looked up before"
    assert not KeyRing(lambda: table, seconds=3600).find(row.key_id).live


@pytest.mark.parametrize(
    ("scopes", "method", "path", "needed"),
    [
        ((READ,), "post", "/v1/jobs", "submit"),
        ((SUBMIT,), "get", "/v1/jobs/not-a-uuid", "read"),
        ((SUBMIT, READ), "get", "/metrics", "admin"),
        ((READ,), "post", "/v1/batches/0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b/close", "submit"),
    ],
)
def test_a_key_without_the_scope_is_403_naming_it(app, scopes, method, path, needed):
    client = memory_keyed_client(app, scopes)
    message = _refused(getattr(client, method)(path), 403, "missing_scope")
    assert f"'{needed}' scope" in message and f"--scopes {needed}" in message


@pytest.mark.parametrize("path", ["/healthz", "/v1/openapi.json", "/", "/docs"])
def test_health_the_description_and_the_page_need_no_key(app, path):
    assert app.test_client().get(path).status_code == 200


def test_every_answer_carries_the_security_headers(app):
    for response in (app.test_client().get("/"), app.test_client().post("/v1/jobs")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert "unsafe-inline" not in policy


def test_the_page_has_no_inline_script(app):
    """The policy allows no inline script, so the page must have none to work."""
    html = app.test_client().get("/").get_data(as_text=True)
    assert "<script>" not in html and " on" + "click=" not in html
    assert html.count("<script src=") == 1
