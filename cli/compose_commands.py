"""`recog images`, `recog compose-up`, `recog compose-down`: the stack under docker compose.

compose-up uses the Docker engine already running, or starts one of the project's own
(devstack/engine.py); with no image variables set it builds local images first (devstack/images.py),
since public images may be out of reach. It waits until every service is healthy.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import click

from devstack import images, processes
from devstack.engine import Engine
from shared.settings import PROJECT_ROOT, STATE_DIR

PROJECT = "recog"
STATE = STATE_DIR / "compose"
PORTS = {"gateway": 8000, "flower": 5555}
IMAGE_VARIABLES = ("BASE_IMAGE", "CASSANDRA_IMAGE", "REDIS_IMAGE")


def engine() -> Engine:
    return Engine(STATE / "engine")


def compose(*args: str, env: dict[str, str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker-compose", "-p", PROJECT, "-f", "docker-compose.yml", *args],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        **options,
    )


@click.command("images")
@click.option("--gpu", is_flag=True, help="Also build the GPU worker's image (built, not run, here).")
def images_command(gpu: bool) -> None:
    """Build recog's images from Debian, npm and PyPI, for a site without Docker Hub."""
    host = engine().start()
    report(images.build_all(host, STATE_DIR / "cache", gpu=gpu))


def report(built: list[images.Built]) -> None:
    click.echo(f"{'image':28s} {'build s':>8s} {'MB':>8s}")
    for b in built:
        seconds = "cached" if b.cached else f"{b.seconds:.0f}"
        click.echo(f"{b.image:28s} {seconds:>8s} {b.megabytes:8.0f}")


@click.command("compose-up")
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait until all is healthy.")
def compose_up(timeout: float) -> None:
    """Run the whole stack under docker compose and wait until it is healthy."""
    taken = [f"{name} ({port})" for name, port in PORTS.items() if not processes.port_is_free(port)]
    if taken and not _running(engine()):
        raise click.ClickException(
            f"ports {', '.join(taken)} are taken, by `make up`'s stack or another program: stop it "
            "first (make down); compose publishes the gateway on 8000 and Flower on 5555"
        )
    started = time.monotonic()
    host = engine().start()
    env = {**os.environ, "DOCKER_HOST": host, **_flower_password()}
    if not any(os.environ.get(v) or _in_dotenv(v) for v in IMAGE_VARIABLES):
        report(images.build_all(host, STATE_DIR / "cache"))
        env.update(images.LOCAL_IMAGES)
    compose("up", "-d", env=env)
    _wait_healthy(env, timeout)
    password = env.get("FLOWER_PASSWORD") or "(FLOWER_PASSWORD in .env)"
    click.echo(f"""
recog is up under docker compose ({time.monotonic() - started:.0f} s), engine {host}

  page     http://127.0.0.1:8000/   (draw a digit, upload images or a zip, follow batches)
  gateway  http://127.0.0.1:8000   API docs http://127.0.0.1:8000/docs, metrics http://127.0.0.1:8000/metrics
           curl -F "file=@digit.png" "http://127.0.0.1:8000/v1/jobs?wait=10"
  flower   http://127.0.0.1:5555   login: recog / {password}
  cqlsh    DOCKER_HOST={host} docker-compose -p {PROJECT} exec cassandra \\
             cqlsh -e "SELECT * FROM recognition.jobs LIMIT 5"
  stop     make compose-down   (make compose-down VOLUMES=1 also removes the data)
""")


@click.command("compose-down")
@click.option("--volumes", is_flag=True, help="Also remove the data volumes (Cassandra, Redis, images).")
def compose_down(volumes: bool) -> None:
    """Stop the compose stack, and the Docker engine compose-up started (no other)."""
    ours = engine()
    if not _running(ours):
        click.echo("compose: nothing was running")
        return
    env = {**os.environ, "DOCKER_HOST": ours.host, "FLOWER_PASSWORD": "-"}
    compose("down", *(["--volumes"] if volumes else []), env=env)
    if ours.ours and ours.stop():
        click.echo("stopped the Docker engine compose-up had started")


def _running(ours: Engine) -> bool:
    return ours.existing() is not None or processes.running_pid(ours.run_dir, "dockerd") is not None


def _flower_password() -> dict[str, str]:
    """FLOWER_PASSWORD from the environment or .env, else one made once and kept in the state
    folder (mode 600): handed to compose in its environment, never on a command line."""
    if os.environ.get("FLOWER_PASSWORD") or _in_dotenv("FLOWER_PASSWORD"):
        return {}
    path = STATE / "flower-password"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(16))
    return {"FLOWER_PASSWORD": path.read_text().strip()}


def _in_dotenv(name: str) -> bool:
    path = PROJECT_ROOT / ".env"
    return path.exists() and any(
        line.split("=", 1)[0].strip() == name and line.split("=", 1)[1].strip()
        for line in path.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )


def _wait_healthy(env: dict[str, str], timeout: float) -> None:
    """Until every container is healthy (the schema job: exited 0); a container that stops fails."""
    deadline = time.monotonic() + timeout
    while True:
        states = _states(env)
        waiting = {name: state for name, state in states.items() if state not in ("healthy", "exited 0")}
        if states and not waiting:
            return
        broken = {n: s for n, s in waiting.items() if s.startswith(("exited", "dead", "unhealthy"))}
        if broken or time.monotonic() > deadline:
            raise click.ClickException(
                f"compose services not healthy: {broken or waiting}; see "
                f"DOCKER_HOST={env['DOCKER_HOST']} docker-compose -p {PROJECT} logs"
            )
        time.sleep(2)


def _states(env: dict[str, str]) -> dict[str, str]:
    ids = compose("ps", "-q", env=env, capture_output=True, text=True).stdout.split()
    if not ids:
        return {}
    found = subprocess.run(
        ["docker", "inspect", *ids], env=env, check=True, capture_output=True, text=True
    ).stdout
    states = {}
    for container in json.loads(found):
        state = container["State"]
        name = container["Name"].lstrip("/")
        if state["Status"] == "exited":
            states[name] = f"exited {state['ExitCode']}"
        else:
            states[name] = (state.get("Health") or {}).get("Status", state["Status"])
    return states
