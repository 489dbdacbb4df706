"""`recog up` and `recog down`, the README's first command, run as a person runs them: from an
empty state folder, on ports of their own (so the test stack and a `make up` stack are left alone)."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import requests

from devstack import processes
from shared.settings import STATE_DIR
from tests import images
from tests.stack import fail_if_taken

RECOG = os.path.join(os.path.dirname(sys.executable), "recog")
# Below the kernel's ephemeral range (32768 and up): there, the busy test run's own outgoing
# connections can hold the port (once, Cassandra logged listening on 39042 and stayed
# unreachable for the whole 180 s wait).
PORTS = {
    "redis": 26379,
    "cassandra": 29042,
    "storage": 27000,
    "gateway": 28000,
    "flower": 25555,
    "metrics": 29100,
    "bulk metrics": 29101,  # the bulk worker's: the next port
}
# A fresh Cassandra and a worker loading TensorFlow on two cores: minutes, not seconds.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def up_env():
    # A fixed folder, so what a killed run left running is stopped by the next one's `recog down`.
    state = STATE_DIR / "up-test"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECOG_")},
        "RECOG_STATE_DIR": str(state),
        "RECOG_REDIS_URL": f"redis://127.0.0.1:{PORTS['redis']}/0",
        "RECOG_CASSANDRA_PORT": str(PORTS["cassandra"]),
        "RECOG_CASSANDRA_STORAGE_PORT": str(PORTS["storage"]),
        "RECOG_GATEWAY_URL": f"http://127.0.0.1:{PORTS['gateway']}",
        "RECOG_FLOWER_URL": f"http://127.0.0.1:{PORTS['flower']}",
        "RECOG_WORKER_METRICS_PORT": str(PORTS["metrics"]),
    }
    subprocess.run([RECOG, "down"], env=env, capture_output=True, timeout=180)
    fail_if_taken(PORTS, "the recog up test")
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    # Cassandra's unpacked package is the only thing shared: fetching it again would take minutes.
    (state / "cache").symlink_to(STATE_DIR / "cache")
    yield state, env
    subprocess.run([RECOG, "down"], env=env, capture_output=True, timeout=180)


def recog(env, command, timeout=420):
    result = subprocess.run([RECOG, command], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"recog {command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_up_serves_a_job_and_flower_and_down_stops_everything(up_env):
    state, env = up_env
    started = time.monotonic()
    out = recog(env, "up")
    print(f"recog up from an empty state folder: {time.monotonic() - started:.0f} s")
    assert f"State and logs: {state}/" in out
    gateway = env["RECOG_GATEWAY_URL"]
    assert f"page     {gateway}/" in out

    key = re.search(r"API key  (\S+)", out)[1]
    assert (state / "api-key").read_text().strip() == key
    assert oct((state / "api-key").stat().st_mode & 0o777) == "0o600"
    seven = {"file": ("seven.png", images.png_digit(7))}
    refused = requests.post(f"{gateway}/v1/jobs", files=seven, timeout=30)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    bearer = {"Authorization": f"Bearer {key}"}
    answer = requests.post(
        f"{gateway}/v1/jobs", params={"wait": 20}, files=seven, headers=bearer, timeout=30
    ).json()
    assert (answer["status"], answer["label"]) == ("done", "7")
    # The recog command finds the saved key by itself.
    five = state / "five.png"
    five.write_bytes(images.png_digit(5))
    submitted = subprocess.run(
        [RECOG, "submit", str(five), "--wait", "20"], env=env, capture_output=True, text=True, timeout=60
    )
    assert submitted.returncode == 0, submitted.stderr
    assert '"label": "5"' in submitted.stdout

    user, password = re.search(r"login: (\S+) / (\S+)", out).groups()
    assert (state / "flower-password").read_text().strip() == password
    assert oct((state / "flower-password").stat().st_mode & 0o777) == "0o600"
    flower = env["RECOG_FLOWER_URL"]
    assert requests.get(f"{flower}/api/workers", timeout=10).status_code == 401
    assert requests.get(f"{flower}/api/workers", auth=(user, password), timeout=30).status_code == 200

    pids = {p.stem: p.read_text() for p in (state / "run").glob("*.pid")}
    assert set(pids) == {"redis", "cassandra", "worker1", "worker-bulk", "gateway", "flower"}
    again = time.monotonic()
    recog(env, "up")
    assert time.monotonic() - again < 60, "a second `recog up` should find everything running"
    assert {p.stem: p.read_text() for p in (state / "run").glob("*.pid")} == pids, "it started a copy"
    assert (state / "api-key").read_text().strip() == key, "a second `recog up` keeps the key"

    stopped = recog(env, "down")
    assert stopped.strip() == "stopped: flower, gateway, worker1, worker-bulk, cassandra, redis"
    still = [f"{name} ({port})" for name, port in PORTS.items() if not processes.port_is_free(port)]
    assert not still, f"still listening after recog down: {still}"
    assert not list((state / "run").glob("*.pid"))
    assert recog(env, "down").strip() == "stopped: nothing was running"
