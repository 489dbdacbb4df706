"""The whole stack under docker compose, on real containers: images built here from Debian, npm
and PyPI (`make images`), on the project's own Docker engine, with the production settings.

Runs apart from the local-stack suite, never beside it (`make test` runs it as a second pytest
run, marker `compose`). Its own engine (or the machine's, where one answers), state folder,
project name and ports, so a `make compose-up` stack is left alone. Prints each image's build time and size.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from cli.compose_commands import ComposeStack
from devstack import processes
from shared.keys import LOCAL_HEADER_FILE
from shared.settings import PROJECT_ROOT
from tests import images
from tests.integration.test_batches import wait_for_done
from tests.stack import API

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]
RECOG = Path(sys.executable).parent / "recog"
GATEWAY_PORT, FLOWER_PORT = 28000, 25555
GATEWAY = f"http://127.0.0.1:{GATEWAY_PORT}"
PASSWORD = secrets.token_urlsafe(12)
# The other secrets compose-up would make: passed as .env would, to check none leaks either.
SECRETS = {"REDIS_PASSWORD": secrets.token_urlsafe(12), "CASSANDRA_PASSWORD": secrets.token_urlsafe(12)}
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
BUILT = (
    "recog-base:bookworm",
    "recog-redis:7",
    "recog-cassandra:2.1",
    "recog-gateway:latest",
    "recog-worker:latest",
)


@pytest.fixture(scope="module")
def compose():
    ports = {"gateway": GATEWAY_PORT, "flower": FLOWER_PORT}
    busy = [f"{name} ({port})" for name, port in ports.items() if not processes.port_is_free(port)]
    assert not busy, f"ports for the compose test are taken: {busy}"
    stack = ComposeStack(
        PROJECT_ROOT / ".recog" / "test-compose",
        "recog-test",
        extra={
            "GATEWAY_PORT": str(GATEWAY_PORT),
            "FLOWER_PORT": str(FLOWER_PORT),
            "FLOWER_PASSWORD": PASSWORD,
            **SECRETS,
        },
        local_images=True,
    )
    started = time.monotonic()
    try:
        built = stack.up(600, "--scale", "worker-bulk=2")
        # What compose-up does next: a key made in the gateway's container, kept in the state folder.
        API.headers["Authorization"] = f"Bearer {stack.api_key()}"
        print(f"\ncompose stack healthy {time.monotonic() - started:.0f} s after the start; images:")
        for b in built:
            print(
                f"  {b.image:26s} {'cached' if b.cached else f'{b.seconds:.0f} s':>8s} {b.megabytes:6.0f} MB"
            )
        yield stack
    finally:
        if stack.running() or stack.engine.ours:
            logs = stack.compose(
                "logs", "--no-color", "--tail", "300", capture_output=True, text=True, check=False
            )
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "compose-logs.txt").write_text(logs.stdout + logs.stderr)
            stack.down(volumes=True)


def docker(stack: ComposeStack, *args: str) -> str:
    return subprocess.run(
        ["docker", *args], env=stack.env(), check=True, capture_output=True, text=True
    ).stdout


def test_the_page_is_served_and_a_digit_through_curl_comes_back_right(compose):
    page = requests.get(f"{GATEWAY}/", timeout=10)
    assert page.status_code == 200 and "<canvas" in page.text
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    refused = requests.post(f"{GATEWAY}/v1/jobs", files={"file": ("3.png", images.png_digit(3))}, timeout=10)
    assert refused.status_code == 401, "the compose gateway wants a key too"
    out = subprocess.run(
        [
            "curl",
            "-sf",
            "-H",
            f"@{compose.state / LOCAL_HEADER_FILE}",  # as compose-up prints it: the key off argv
            "-F",
            f"file=@{PROJECT_ROOT / 'examples' / 'three.png'}",
            f"{GATEWAY}/v1/jobs?wait=30",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"label":"3"' in out.stdout.replace(" ", "") and '"status":"done"' in out.stdout.replace(" ", "")


def test_a_folder_of_500_ends_all_done_on_both_bulk_workers_and_is_in_cassandra(compose, tmp_path):
    folder, out = tmp_path / "digits", tmp_path / "results.csv"
    folder.mkdir()
    for i in range(500):
        (folder / f"{i:03d}-{i % 10}.png").write_bytes(images.png_digit(i % 10, (i // 10) % 10))
    env = {**os.environ, "RECOG_GATEWAY_URL": GATEWAY, "RECOG_API_KEY": compose.api_key()}
    run = subprocess.run(
        [str(RECOG), "submit-folder", str(folder), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 500 and all(r["status"] == "done" for r in rows)
    assert sum(r["label"] == r["file"].split("-")[1][0] for r in rows) >= 495
    workers = {API.get(f"{GATEWAY}/v1/jobs/{r['job_id']}", timeout=10).json()["worker"] for r in rows[:200]}
    workers |= {API.get(f"{GATEWAY}/v1/jobs/{r['job_id']}", timeout=10).json()["worker"] for r in rows[-200:]}
    assert len(workers) == 2, f"--scale worker-bulk=2, but the work went to {workers}"
    job = rows[0]["job_id"]
    cql = f"SELECT status, label FROM recognition.jobs WHERE job_id = {job}"
    seen = compose.compose(
        "exec", "-T", "cassandra", "cqlsh", "-e", cql, capture_output=True, text=True
    ).stdout
    assert re.search(r"done \|\s+" + rows[0]["label"], seen), seen


def accepted_jobs() -> float:
    metrics = API.get(f"{GATEWAY}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^recog_jobs_accepted_total\{[^}]*\} (\S+)$", metrics, re.M))


def test_flower_asks_for_a_login_and_metrics_count_the_jobs(compose):
    flower = f"http://127.0.0.1:{FLOWER_PORT}/"
    assert requests.get(flower, timeout=10).status_code == 401
    assert requests.get(flower, auth=("recog", PASSWORD), timeout=10).status_code == 200
    before = accepted_jobs()
    files = [("files", (f"m{i}.png", images.png_digit(i, 1))) for i in range(3)]
    assert API.post(f"{GATEWAY}/v1/batches", files=files, timeout=60).status_code == 202
    assert accepted_jobs() == before + 3


def test_killing_the_workers_mid_batch_loses_nothing(compose):
    """400 digits 2,000 pixels wide keep four pool processes busy for seconds (small ones were all
    done before `docker-compose kill` had started), so the kill finds work in flight."""
    files = [
        ("files", (f"k/{i:03d}-{i % 10}.png", images.fresh_png_digit(i % 10, i % 10, 2000)))
        for i in range(400)
    ]
    batch = API.post(f"{GATEWAY}/v1/batches", files=files, data={"name": "kill"}, timeout=300).json()
    wait_for_done(GATEWAY, batch["id"], 1, timeout=120)
    compose.compose("kill", "worker", "worker-bulk", capture_output=True)
    status = API.get(f"{GATEWAY}/v1/batches/{batch['id']}", timeout=30).json()
    in_flight = 400 - status["done"]
    assert in_flight > 0, "the batch ended before the kill: nothing was in flight"
    killed = time.monotonic()
    compose.compose("up", "-d", "--scale", "worker-bulk=2", "--no-recreate", capture_output=True)
    deadline = killed + 180
    while time.monotonic() < deadline:
        status = API.get(f"{GATEWAY}/v1/batches/{batch['id']}", timeout=30).json()
        if status["status"] in ("done", "partial", "failed"):
            break
        time.sleep(2)
    took = time.monotonic() - killed
    print(f"\nworkers killed with {in_flight} jobs unfinished; all final {took:.0f} s after")
    assert (status["status"], status["done"], status["total"]) == ("done", 400, 400)
    rows = API.get(f"{GATEWAY}/v1/batches/{batch['id']}/results?format=json", timeout=60).json()
    assert len(rows) == 400 and len({r["job_id"] for r in rows}) == 400


def test_down_and_up_keep_every_job_readable(compose):
    first = API.post(
        f"{GATEWAY}/v1/jobs?wait=30", files={"file": ("7.png", images.png_digit(7, 3))}, timeout=60
    )
    job = first.json()["id"]
    compose.compose("down", capture_output=True)
    compose.up(600, "--scale", "worker-bulk=2")
    again = API.get(f"{GATEWAY}/v1/jobs/{job}", timeout=10).json()
    assert (again["status"], again["label"]) == ("done", "7")


def test_redis_and_cassandra_want_their_passwords(compose):
    """Redis answers nothing without its password; Cassandra's default superuser, whose password
    everyone knows, was dropped once the schema job had made the service's login."""
    bare = compose.compose(
        "exec",
        "-T",
        "redis",
        "sh",
        "-c",
        "REDISCLI_AUTH= redis-cli ping",
        capture_output=True,
        text=True,
        check=False,
    )
    assert "NOAUTH" in bare.stdout + bare.stderr, bare.stdout + bare.stderr
    default = compose.compose(
        "exec",
        "-T",
        "cassandra",
        "/opt/cqlsh/bin/cqlsh",
        "--protocol-version=3",
        "-u",
        "cassandra",
        "-p",
        "cassandra",
        "-e",
        "DESCRIBE KEYSPACES",
        capture_output=True,
        text=True,
        check=False,
    )
    assert default.returncode != 0 and "AuthenticationFailed" in default.stdout + default.stderr
    anonymous = compose.compose(
        "exec",
        "-T",
        "cassandra",
        "/opt/cqlsh/bin/cqlsh",
        "--protocol-version=3",
        "-e",
        "DESCRIBE KEYSPACES",
        capture_output=True,
        text=True,
        check=False,
    )
    assert anonymous.returncode != 0 and "AuthenticationFailed" in anonymous.stdout + anonymous.stderr
    refused = compose.compose(
        "run",
        "--rm",
        "-T",
        "-e",
        "RECOG_FLOWER_PASSWORD=change-me",
        "gateway",
        "recog",
        "schema",
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "the example's" in refused.stdout + refused.stderr


def test_no_secret_in_any_image_or_command_line(compose):
    for image in BUILT:
        history = docker(compose, "history", "--no-trunc", image)
        inspect = docker(compose, "image", "inspect", image)
        for secret in (PASSWORD, *SECRETS.values()):
            assert secret not in history and secret not in inspect, image
        # The build stages' CA files and pip's bundle never reach a final image.
        leftovers = "test ! -e /tmp/ca && test ! -e /tmp/pip-ca.pem && test ! -e /src"
        docker(compose, "run", "--rm", "--entrypoint", "sh", image, "-c", leftovers)
    command_lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    for secret in (PASSWORD, *SECRETS.values()):
        assert secret not in command_lines
    assert compose.api_key() not in command_lines
