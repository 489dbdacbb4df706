"""Bad uploads are refused before anything is stored, rowed or queued.

Redis and Cassandra point at ports nothing listens on: any attempt to write a row or send a task
would fail loudly, so a clean 4xx here proves the checks come first.
"""

import tomllib

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
from requests import Request

from gateway import create_app
from gateway.openapi import described
from shared.settings import PROJECT_ROOT, Settings
from tests import images
from tests.fakes import memory_keyed_client

API = OpenAPI.from_dict(described(Settings.from_env({})))


@pytest.fixture
def client(offline_settings):
    return memory_keyed_client(
        create_app(offline_settings.replace(max_upload_bytes=100_000, max_image_pixels=1_000_000))
    )


def _post(client, data, name="x.png"):
    import io

    return client.post(
        "/v1/jobs", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )


def _assert_nothing_stored(settings_dir):
    assert not settings_dir.exists() or not any(p.is_file() for p in settings_dir.rglob("*"))


def _error(response, status, code, described=True):
    assert response.status_code == status, response.get_json()
    assert response.is_json
    if described:  # every error of an endpoint, 503s included, is one its OpenAPI description lists
        asked = Request(response.request.method, response.request.url)  # the operation, not the body
        API.validate_response(RequestsOpenAPIRequest(asked), WerkzeugOpenAPIResponse(response))
    body = response.get_json()["error"]
    assert body["code"] == code and len(body["message"]) > 20
    if status in (429, 503) or code == "upload_in_progress":  # when to come back
        assert int(response.headers["Retry-After"]) > 0
    else:
        assert "Retry-After" not in response.headers
    return body["message"]


def test_missing_file_field(client, offline_settings):
    message = _error(client.post("/v1/jobs", data={}), 400, "missing_file")
    assert "'file'" in message
    _assert_nothing_stored(offline_settings.image_dir)


def test_empty_file(client, offline_settings):
    _error(_post(client, b""), 400, "empty_file")
    _assert_nothing_stored(offline_settings.image_dir)


def test_not_an_image(client, offline_settings):
    _error(_post(client, b"%PDF-1.4 not really", "doc.pdf"), 415, "not_an_image")
    _assert_nothing_stored(offline_settings.image_dir)


def test_truncated_png(client, offline_settings):
    _error(_post(client, images.truncated(images.png_digit(2))), 422, "corrupt_image")
    _assert_nothing_stored(offline_settings.image_dir)


@pytest.mark.parametrize("data", [images.jpeg_cut_in_its_headers(), images.png_with_text_bomb()])
def test_files_pillow_cannot_even_open_are_422_not_500(client, offline_settings, data):
    """Both were HTTP 500: Pillow raised OSError and ValueError inside Image.open, before load()."""
    message = _error(_post(client, data, "odd.jpg"), 422, "corrupt_image")
    assert "damaged or truncated" in message
    _assert_nothing_stored(offline_settings.image_dir)


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(client, offline_settings):
    """Werkzeug refuses the body by its length (the limit plus a margin for the form)."""
    message = _error(_post(client, b"\x89PNG" + b"0" * 300_000), 413, "too_large")
    assert "larger than the limit of 165,536 bytes" in message
    _assert_nothing_stored(offline_settings.image_dir)


def test_a_file_just_over_the_limit_is_refused_by_the_gateway_check(client, offline_settings):
    """Within Werkzeug's margin, so only the gateway's own check of the file's size can refuse it."""
    message = _error(_post(client, b"\x89PNG" + b"0" * 100_000), 413, "too_large")
    assert message == "the file is 100,004 bytes; the limit is 100,000 bytes"
    _assert_nothing_stored(offline_settings.image_dir)


def test_too_many_pixels(client, offline_settings):
    from PIL import Image

    _error(_post(client, images.encode(Image.new("L", (1500, 1000), 255))), 413, "too_many_pixels")
    _assert_nothing_stored(offline_settings.image_dir)


def test_decompression_bomb(client, offline_settings):
    _error(_post(client, images.huge_blank_png(20_000, 20_000)), 413, "too_many_pixels")
    _assert_nothing_stored(offline_settings.image_dir)


def test_unknown_model_lists_available(client):
    import io

    response = client.post(
        "/v1/jobs", data={"file": (io.BytesIO(images.png_digit(1)), "1.png"), "model": "cats"}
    )
    assert "digits" in _error(response, 400, "unknown_model")


@pytest.mark.parametrize("wait", ["0", "-1", "31", "soon"])
def test_bad_wait(client, wait):
    import io

    response = client.post(f"/v1/jobs?wait={wait}", data={"file": (io.BytesIO(images.png_digit(1)), "1.png")})
    _error(response, 400, "bad_wait")


def test_job_id_that_is_not_a_uuid(client):
    _error(client.get("/v1/jobs/not-a-uuid"), 400, "bad_job_id")


def test_unknown_route_is_json_404(client):
    _error(client.get("/v2/nothing"), 404, "not_found", described=False)


def test_wrong_method_is_json_405_and_says_which_are_allowed(client):
    response = client.delete("/v1/jobs")
    _error(response, 405, "method_not_allowed", described=False)
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}


def test_cassandra_down_at_submit_is_503_and_accepts_nothing(client):
    """The bytes may stay in the image store: another upload, or open work, may share them."""
    message = _error(_post(client, images.png_digit(4)), 503, "store_unavailable")
    assert "nothing was accepted" in message and "Retry" in message


def test_readyz_names_what_is_down(client):
    response = client.get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    body = response.get_json()
    assert body["checks"] == {"redis": "not answering", "cassandra": "not answering"}
    assert "redis and cassandra" in body["message"]
    # The exceptions' own text (hosts, ports) goes to the log, not to whoever asks.
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_healthz_needs_no_services_and_reports_the_version(client):
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert client.get("/healthz").get_json() == {"status": "ok", "version": project}
    assert client.get("/v1/openapi.json").get_json()["info"]["version"] == project


@pytest.mark.parametrize(
    ("sent", "said"),
    [(4, "the request has 4 files"), (40, "the request has too many parts")],
    ids=["counted-by-the-gateway", "form-parts-cap"],
)
def test_too_many_files_in_one_batch_request_says_files_not_bytes(offline_settings, sent, said):
    import io

    client = memory_keyed_client(create_app(offline_settings.replace(max_files_per_request=3)))
    files = [(io.BytesIO(images.png_digit(1)), f"{i}.png") for i in range(sent)]
    response = client.post("/v1/batches", data={"files": files}, content_type="multipart/form-data")
    message = _error(response, 413, "too_many_files")
    assert message.startswith(said) and "the limit is 3 files a request" in message
    _assert_nothing_stored(offline_settings.image_dir)


@pytest.mark.parametrize(
    "path",
    ["/v1/jobs/0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b", "/v1/batches/0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b"],
)
def test_reads_while_cassandra_is_down_are_503_not_500(client, path):
    message = _error(client.get(path), 503, "store_unavailable")
    assert "retry in a little while" in message


def test_a_batch_while_cassandra_is_down_is_503(client):
    import io

    files = [(io.BytesIO(images.png_digit(d)), f"{d}.png") for d in range(3)]
    response = client.post("/v1/batches", data={"files": files}, content_type="multipart/form-data")
    _error(response, 503, "store_unavailable")


def test_an_unexpected_error_is_a_logged_json_500(offline_settings, monkeypatch, caplog):
    """A bug cannot be produced on purpose, so one is planted: the page's handler raises."""
    app = create_app(offline_settings)

    def broken():
        raise RuntimeError("a planted bug")

    monkeypatch.setitem(app.view_functions, "page.index", broken)
    response = app.test_client().get("/")
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"
    assert "planted bug" not in response.get_data(as_text=True), "internals stay in the log"
    assert "RuntimeError: a planted bug" in caplog.text
