"""A private stack for integration and browser tests: real Redis, Cassandra, worker, gateway, Flower.

It runs on its own ports and state folder, so a `make up` stack on the default ports is left
alone, and it is stopped at the end of the session. Every test that uses it runs once per image
store backend (RECOG_IMAGE_STORE): pytest groups the tests by backend, so the stack starts twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import time
import uuid

import pytest
import redis
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from devstack import processes
from devstack.stack import BIN, BULK_WORKER, SINGLES_WORKER, LocalStack
from shared.image_store import open_image_store
from shared.jobs import FINAL_STATES
from shared.settings import IMAGE_STORES, PROJECT_ROOT, Settings
from shared.store import StoreUnavailable
from shared.store.cassandra_results import CassandraStore

ROOT = PROJECT_ROOT / ".recog" / "test-stack"
LOCK = PROJECT_ROOT / ".recog" / "test-stack.lock"
# New each session: the Flower test looks for it on every command line of the machine.
FLOWER_PASSWORD = secrets.token_urlsafe(12)
ARTIFACTS = PROJECT_ROOT / "test-artifacts"  # screenshots and each stack's logs, kept after a run
# The tests' requests to the gateway: it carries the key of the stack that runs (set at its start).
# A connection a request each, as requests.get makes: gunicorn closes an idle kept-alive one after
# 2 s, and a request sent on it just then fails with "Remote end closed connection".
API = requests.Session()
API.headers["Connection"] = "close"
PORTS = {
    "redis": 16379,
    "cassandra": 19042,
    "storage": 17000,
    "gateway": 18000,
    "flower": 15555,
    "worker_metrics": 19100,
    "bulk_worker_metrics": 19101,  # the bulk worker's: the next port (devstack.stack.start_worker)
}


def stack_settings(image_store: str) -> Settings:
    return Settings.from_env(
        {},
        image_store=image_store,
        redis_url=f"redis://127.0.0.1:{PORTS['redis']}/0",
        cassandra_port=PORTS["cassandra"],
        cassandra_storage_port=PORTS["storage"],
        cassandra_protocol_version=3,
        image_dir=ROOT / "images",
        models_dir=ROOT / "models",
        gateway_url=f"http://127.0.0.1:{PORTS['gateway']}",
        flower_url=f"http://127.0.0.1:{PORTS['flower']}",
        flower_password=FLOWER_PASSWORD,
        worker_metrics_port=PORTS["worker_metrics"],
        # Recovery is tested with what a user runs: the visibility timeout, lease and sweep
        # interval are the defaults.
    )


def fail_if_taken(ports: dict[str, int], needed_by: str) -> None:
    """Another checkout's run, or a service of the machine, holds one: leave it alone and say so."""
    busy = [f"{name} ({port})" for name, port in ports.items() if not processes.port_is_free(port)]
    if busy:
        pytest.fail(f"ports needed by {needed_by} are taken: {', '.join(busy)}; is another checkout testing?")


@pytest.fixture(scope="session")
def stack_lock():
    """One test run per checkout owns its test stack: a second run fails its stack tests instead
    of stopping the first one's services."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.fail(f"another test run in this checkout is using its test stack ({LOCK}); wait for it")
        yield


@pytest.fixture(scope="session", params=IMAGE_STORES)
def stack(request, stack_lock):
    """The stack's start has its own deadlines (Cassandra 180 s, the worker 120 s); pytest-timeout
    limits test functions only (timeout_func_only in pyproject.toml)."""
    stack = LocalStack(stack_settings(request.param), ROOT, PROJECT_ROOT / ".recog" / "cache")
    stack.down()  # what a killed earlier run of this checkout left behind
    fail_if_taken(PORTS, "the test stack")
    shutil.rmtree(ROOT, ignore_errors=True)
    # A models folder of the session's own, so a test can add a model without touching model/models.
    shutil.copytree(Settings.from_env({}).models_dir, ROOT / "models")
    try:
        stack.start_redis()
        stack.start_cassandra()
        stack.create_schema()
        # Its CLI runs (settings.to_env()) and requests (API) use the stack's own key.
        stack.settings = stack.settings.replace(api_key=stack.local_key())
        API.headers["Authorization"] = f"Bearer {stack.settings.api_key}"
        stack.start_workers()
        stack.start_gateway()
        stack.start_flower()
        stack.wait_gateway_ready()
        stack.wait_workers_ready()
        yield stack
    finally:
        stack.down()
        # The next backend's stack starts in the same folder: keep these logs for a failure report.
        if stack.log_dir.is_dir():
            shutil.copytree(stack.log_dir, ARTIFACTS / f"stack-logs-{request.param}", dirs_exist_ok=True)


@pytest.fixture(autouse=True)
def stack_made_whole(request):
    """A fault test that fails before restarting what it killed would fail every test after it
    too; after each test of the stack, start again whatever of it is no longer running."""
    stack = request.getfixturevalue("stack") if "stack" in request.fixturenames else None
    yield
    if stack is None:
        return
    starts = {
        "redis": stack.start_redis,
        "cassandra": stack.start_cassandra,
        SINGLES_WORKER: stack.start_worker,
        BULK_WORKER: lambda: stack.start_worker(BULK_WORKER),
        "gateway": stack.start_gateway,
        "flower": stack.start_flower,
    }
    dead = [name for name in starts if processes.running_pid(stack.run_dir, name) is None]
    for name in dead:
        starts[name]()
    if "gateway" in dead:
        stack.wait_gateway_ready()
    if "cassandra" in dead:
        wait_for_cassandra_everywhere(request.getfixturevalue("store"), stack.settings.gateway_url)
    for worker in {SINGLES_WORKER, BULK_WORKER} & set(dead):
        stack.wait_worker_ready(worker)


@pytest.fixture(scope="session")
def settings(stack) -> Settings:
    return stack.settings


@contextlib.contextmanager
def poisoned_worker_running(stack: LocalStack, settings: Settings | None = None):
    """Both workers replaced, for the block, by one worker1 of tests/poisoned_worker.py's that takes
    both queues (settings: its own, else the stack's), as a worker may be run; the real ones back
    after it. Yields the poisoned worker's pid."""
    stack.stop(BULK_WORKER)
    stack.stop(SINGLES_WORKER)
    stack.start_worker(SINGLES_WORKER, settings=settings, app="tests.poisoned_worker", queues="both")
    stack.wait_worker_ready()
    try:
        yield processes.running_pid(stack.run_dir, SINGLES_WORKER)
    finally:
        stack.stop(SINGLES_WORKER)
        stack.start_workers()
        stack.wait_workers_ready()


@pytest.fixture(scope="session")
def store(stack):
    store = CassandraStore.open(stack.settings)
    yield store
    store.close()


@pytest.fixture(scope="session")
def gateway(stack) -> str:
    return stack.settings.gateway_url


@pytest.fixture(scope="session")
def spec(gateway) -> OpenAPI:
    """The running gateway's /v1/openapi.json, for check()."""
    response = API.get(f"{gateway}/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    return OpenAPI.from_dict(response.json())  # also validates the description itself


def check(spec: OpenAPI, response: requests.Response, status: int) -> requests.Response:
    """A real answer of that status, checked against the OpenAPI description (openapi-core)."""
    assert response.status_code == status, response.text
    spec.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    return response


def cli_env(gateway: str) -> dict[str, str]:
    """The environment of a `recog` command run against the test stack, with the stack's key."""
    return {
        **os.environ,
        "RECOG_GATEWAY_URL": gateway,
        "RECOG_API_KEY": API.headers["Authorization"].split()[1],
    }


def keyed_client(app, settings: Settings):
    """A Flask test client of a gateway made in the test's process, with the stack's key."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {settings.api_key}"
    return client


def submit(
    gateway: str, data: bytes, name: str = "digit.png", wait: float | None = None
) -> requests.Response:
    params = {"wait": wait} if wait else {}
    return API.post(f"{gateway}/v1/jobs", params=params, files={"file": (name, data)}, timeout=60)


def wait_for_cassandra_everywhere(store: CassandraStore, gateway: str, timeout: float = 60) -> None:
    """After a Cassandra restart: until this test's own session and every gateway process reach
    it again. An idle gateway process finds its old connection dead only on its next request,
    which gets a 503 then (the next test's uploads did); ten ready answers in a row reach both."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.get_job(uuid.uuid4())
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline, "the test's session never reached Cassandra again"
            time.sleep(0.5)
    ready = 0
    while ready < 10:
        assert time.monotonic() < deadline, "the gateway never reached Cassandra again"
        ready = ready + 1 if requests.get(f"{gateway}/readyz", timeout=10).status_code == 200 else 0
        time.sleep(0.1)


def wait_until_final(store: CassandraStore, job_ids: list[str], timeout: float) -> dict[str, dict]:
    """Poll Cassandra until every job is done or failed; returns the rows seen last."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        rows = {j: store.get_job(uuid.UUID(j)) for j in job_ids}
        if all(r and r["status"] in FINAL_STATES for r in rows.values()):
            break
        time.sleep(0.5)
    return rows


def stored_images(settings: Settings, store: CassandraStore) -> set[str]:
    """The sha256 of every image the configured image store holds, whichever backend it is."""
    if settings.image_store == "cassandra":
        return {row["sha256"] for row in store.session.execute("SELECT sha256 FROM images")}
    return {p.name for p in settings.image_dir.rglob("*") if p.is_file()}


def files_under(folder) -> list:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def put_image(settings: Settings, store: CassandraStore, data: bytes) -> str:
    """Store bytes the way the gateway would, in the stack's configured image store."""
    return open_image_store(settings, lambda: store.session).put(data)[0]


# The INFO lines of the worker's log that tell its reconnects apart: connected again, its prefetch
# cut after a reconnect and restored, messages handed back to Redis.
RECONNECT_LINES = ("Connected to", "Temporarily reducing", "Resuming normal", "Restoring")


def worker_report(stack: LocalStack, lines: int = 40, name: str = SINGLES_WORKER) -> str:
    """For a test that found the worker stuck: where each of its processes is (py-spy dump of the
    main process and its pool), what Redis holds for it (its queues, the messages delivered and
    not acknowledged), and the last warnings, errors and reconnects of its log. A clean-clone CI
    run keeps only the failure's message, so what a later reader needs must be in it."""
    pid = processes.running_pid(stack.run_dir, name)
    if pid is None:
        return f"{name} is not running"
    spy = BIN / "py-spy"  # a dev dependency, beside this interpreter
    dumps = "(py-spy not found)"
    if spy.exists():
        try:
            run = subprocess.run(
                [spy, "dump", "--subprocesses", "--pid", str(pid)], capture_output=True, text=True, timeout=60
            )
            dumps = _top_frames(run.stdout + run.stderr)
        except subprocess.TimeoutExpired:
            dumps = "(py-spy dump did not answer in 60 s)"
    settings = stack.settings
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        # kombu's Redis transport keeps delivered, unacknowledged messages in the hash "unacked".
        held = (
            f"Redis: {settings.queue} {client.llen(settings.queue)} waiting, {settings.bulk_queue} "
            f"{client.llen(settings.bulk_queue)} waiting, {client.hlen('unacked')} delivered and not "
            "acknowledged"
        )
    except redis.RedisError as exc:
        held = f"Redis: {exc!r}"
    log = stack.log(name)
    noted = [
        line[:300]
        for line in (log.read_text(errors="replace").splitlines() if log.exists() else [])
        if any(level in line for level in ("WARNING/", "ERROR/", "CRITICAL/"))
        or any(words in line for words in RECONNECT_LINES)
    ]
    return f"{name} (pid {pid}):\n{dumps}\n{held}\nits last warnings, errors and reconnects:\n" + "\n".join(
        noted[-lines:]
    )


def _top_frames(dump: str, frames: int = 5) -> str:
    """A py-spy dump cut to what a stuck worker would show: each process's main thread and
    recog's own threads (the sweeper, the lease), their innermost frames only."""
    kept, depth, wanted = [], 0, True
    for line in dump.splitlines():
        if line.startswith("Thread "):
            wanted = '"MainThread"' in line or '"recog-' in line
            depth = 0
            if wanted:
                kept.append(line)
        elif not line.startswith(" "):
            kept.append(line)  # a process's header, or py-spy's own words
            wanted, depth = False, 0
        elif wanted and depth < frames:
            kept.append(line)
            depth += 1
    return "\n".join(kept)
