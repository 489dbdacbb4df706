"""`recog images`, `recog compose-up`, `recog compose-down` and `recog compose ...`: the stack under
docker compose.

compose-up uses the Docker engine already running, or starts one of the project's own
(devstack/engine.py). With no image variable set (environment or .env) it builds local images
first (devstack/images.py) and runs those, since public images may be out of reach. It waits
until every service is healthy.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import click
import requests

from devstack import images, processes
from devstack.engine import Engine
from devstack.stack import save_key
from shared.keys import LOCAL_HEADER_FILE, LOCAL_KEY, LOCAL_KEY_FILE, SCOPES
from shared.settings import PROJECT_ROOT, STATE_DIR

PROJECT = "recog"
STATE = STATE_DIR / "compose"
IMAGE_VARIABLES = ("BASE_IMAGE", "CASSANDRA_IMAGE", "REDIS_IMAGE")
PASSWORDS = ("FLOWER_PASSWORD", "REDIS_PASSWORD", "CASSANDRA_PASSWORD")


class ComposeStack:
    """One compose project on one engine: the user's (`make compose-up`), or a test's own."""

    def __init__(
        self,
        state: Path = STATE,
        project: str = PROJECT,
        extra: dict[str, str] | None = None,
        local_images: bool | None = None,
    ) -> None:
        """extra: variables for compose over the environment's; local_images: None decides from
        the image variables (none set: local)."""
        self.state, self.project = state, project
        self.engine = Engine(state / "engine")
        self.extra = extra or {}
        if local_images is None:
            local_images = not any(os.environ.get(v) or _in_dotenv(v) for v in IMAGE_VARIABLES)
        self.local_images = local_images

    def env(self) -> dict[str, str]:
        """What compose runs with: the passwords and the image variables are in the environment of
        the docker-compose process, never on a command line."""
        env = {**os.environ, **self.extra, "DOCKER_HOST": self.engine.host, **self._passwords()}
        if self.local_images:
            env.update(images.LOCAL_IMAGES)
        return env

    def compose(self, *args: str, **options) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker-compose", "-p", self.project, "-f", "docker-compose.yml", *args],
            cwd=PROJECT_ROOT,
            env=self.env(),
            **{"check": True, **options},
        )

    def running(self) -> bool:
        """True if this project has containers on its engine."""
        if not self.engine.ours and self.engine.existing() is None:
            return False
        return bool(self.compose("ps", "-q", capture_output=True, text=True, check=False).stdout.split())

    def up(self, timeout: float, *args: str) -> list[images.Built]:
        """Start (building local images first, where used) and wait until all is healthy."""
        self.engine.start()
        built = images.build_all(self.engine.host, STATE_DIR / "cache") if self.local_images else []
        self.compose("up", "-d", *args)
        self.wait_healthy(timeout)
        return built

    def down(self, volumes: bool = False) -> None:
        self.compose("down", *(["--volumes"] if volumes else []))
        if self.engine.ours:
            self.engine.stop()

    def _passwords(self) -> dict[str, str]:
        """Each of PASSWORDS from the environment or .env, else one made once and kept in the state
        folder (mode 600), e.g. .recog/compose/flower-password."""
        made = {}
        for name in PASSWORDS:
            if self.extra.get(name) or os.environ.get(name) or _in_dotenv(name):
                continue
            path = self.state / name.lower().replace("_", "-")
            if not path.exists():
                processes.write_private(path, secrets.token_urlsafe(16))
            made[name] = path.read_text().strip()
        return made

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.extra.get('GATEWAY_PORT') or _variable('GATEWAY_PORT', '8000')}"

    def api_key(self) -> str:
        """The key kept in the state folder (mode 600), made by `recog keys create` in the gateway's
        container when missing or when this stack's Cassandra no longer knows it (its data was
        removed): every scope, tenant 'local', as `make up` makes."""
        path = self.state / LOCAL_KEY_FILE
        saved = path.read_text().strip() if path.is_file() else ""
        if saved and not _key_refused(self.gateway_url, saved):
            return saved
        recog = ("exec", "-T", "gateway", "recog", "keys")
        self.compose(*recog, "revoke", LOCAL_KEY, check=False, capture_output=True)
        made = self.compose(
            *recog, "create", LOCAL_KEY, "--scopes", ",".join(SCOPES), capture_output=True, text=True
        )
        key = made.stdout.strip().splitlines()[-1]
        save_key(self.state, key)
        return key

    def wait_healthy(self, timeout: float) -> None:
        """Until every service is healthy and the schema job has exited 0. A container that
        exited otherwise fails at once; one unhealthy or restarting fails at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            waiting = {name: state for name, state in states.items() if not _ready(name, state)}
            if states and not waiting:
                return
            broken = {n: s for n, s in waiting.items() if s.startswith(("exited", "dead"))}
            if broken or time.monotonic() > deadline:
                raise click.ClickException(
                    f"compose services not healthy: {broken or waiting}; see `recog compose logs`"
                )
            time.sleep(2)

    def states(self) -> dict[str, str]:
        """{'service container': healthy, starting, unhealthy, restarting, exited N, ...}"""
        ids = self.compose("ps", "-q", capture_output=True, text=True).stdout.split()
        if not ids:
            return {}
        found = subprocess.run(["docker", "inspect", *ids], env=self.env(), capture_output=True, text=True)
        states = {}
        # A container removed between the two calls is left out (inspect still lists the others).
        for container in json.loads(found.stdout or "[]"):
            state = container["State"]
            service = (container["Config"].get("Labels") or {}).get("com.docker.compose.service", "")
            name = f"{service} {container['Name'].lstrip('/')}"
            if state["Status"] == "exited":
                states[name] = f"exited {state['ExitCode']}"
            else:
                states[name] = (state.get("Health") or {}).get("Status", state["Status"])
        return states


def _key_refused(gateway: str, key: str) -> bool:
    """Only a 401 says the key is unknown (the data it lived in was removed); a busy or waking
    gateway's answer says nothing about it."""
    headers = {"Authorization": f"Bearer {key}"}
    try:
        return requests.get(f"{gateway}/v1/batches?limit=1", headers=headers, timeout=30).status_code == 401
    except requests.RequestException:
        return False


def _ready(name: str, state: str) -> bool:
    """name: 'service container'; only the one-shot schema job is done by exiting."""
    return state == "healthy" or (state == "exited 0" and name.startswith("schema "))


def _dotenv() -> dict[str, str]:
    path = PROJECT_ROOT / ".env"
    lines = path.read_text().splitlines() if path.exists() else []
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs if value.strip()}


def _in_dotenv(name: str) -> bool:
    return name in _dotenv()


def _variable(name: str, default: str) -> str:
    """As compose reads it: the environment, then .env, then the default."""
    return os.environ.get(name) or _dotenv().get(name) or default


def report(built: list[images.Built]) -> None:
    click.echo(f"{'image':28s} {'build s':>8s} {'MB':>8s}")
    for b in built:
        seconds = "cached" if b.cached else f"{b.seconds:.0f}"
        click.echo(f"{b.image:28s} {seconds:>8s} {b.megabytes:8.0f}")


@click.command("images")
@click.option("--gpu", is_flag=True, help="Also build the GPU worker's image (built, not run, here).")
def images_command(gpu: bool) -> None:
    """Build recog's images from Debian, npm and PyPI, for a site without Docker Hub."""
    stack = ComposeStack()
    report(images.build_all(stack.engine.start(), STATE_DIR / "cache", gpu=gpu))


@click.command("compose-up")
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait until all is healthy.")
def compose_up(timeout: float) -> None:
    """Run the whole stack under docker compose and wait until it is healthy."""
    stack = ComposeStack()
    ports = {"gateway": _variable("GATEWAY_PORT", "8000"), "flower": _variable("FLOWER_PORT", "5555")}
    taken = [f"{name} ({port})" for name, port in ports.items() if not processes.port_is_free(int(port))]
    if taken and not stack.running():
        raise click.ClickException(
            f"ports {', '.join(taken)} are taken, by `make up`'s stack or another program: stop it "
            "first (make down), or publish compose elsewhere with GATEWAY_PORT and FLOWER_PORT"
        )
    started = time.monotonic()
    report(stack.up(timeout))
    key = stack.api_key()
    header = stack.state / LOCAL_HEADER_FILE
    password = f"the password in {stack.state}/flower-password"
    if os.environ.get("FLOWER_PASSWORD") or _in_dotenv("FLOWER_PASSWORD"):
        password = "FLOWER_PASSWORD (environment or .env)"
    gateway, flower = f"http://127.0.0.1:{ports['gateway']}", f"http://127.0.0.1:{ports['flower']}"
    click.echo(f"""
recog is up under docker compose ({time.monotonic() - started:.0f} s), engine {stack.engine.host}

  API key  {key}
           (kept in {stack.state / LOCAL_KEY_FILE}, mode 600; its webhooks' secret:
           .venv/bin/recog compose exec -T gateway recog keys webhook-secret local)
  page     {gateway}/   (draw a digit, upload images or a zip, follow batches; asks for the key)
  gateway  {gateway}   API docs {gateway}/docs, metrics {gateway}/metrics
           curl -H @{header} -F "file=@digit.png" "{gateway}/v1/jobs?wait=10"
  flower   {flower}   login: recog / {password}
  secrets  Redis's and Cassandra's passwords: REDIS_PASSWORD, CASSANDRA_PASSWORD in .env, else
           made once in {stack.state}/ (redis-password, cassandra-password; mode 600)
  cqlsh    .venv/bin/recog compose exec cassandra cqlsh -e "SELECT * FROM recognition.jobs LIMIT 5"
  compose  .venv/bin/recog compose ps | logs | ...   (docker-compose on this engine and project)
  stop     make compose-down   (make compose-down VOLUMES=1 also removes the data)
""")


@click.command("compose-down")
@click.option("--volumes", is_flag=True, help="Also remove the data volumes (Cassandra, Redis, images).")
def compose_down(volumes: bool) -> None:
    """Stop the compose stack, and the Docker engine compose-up started (no other)."""
    stack = ComposeStack()
    if not stack.running() and not stack.engine.ours:
        click.echo("compose: nothing was running")
        return
    stack.down(volumes)
    click.echo("compose: stopped" + (", data removed" if volumes else ""))


@click.command("compose", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def compose_command(args: tuple[str, ...]) -> None:
    """docker-compose with the engine, project and variables compose-up used: `recog compose ps`."""
    raise SystemExit(ComposeStack().compose(*args, check=False).returncode)
