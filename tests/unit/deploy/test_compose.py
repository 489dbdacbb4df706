"""docker-compose.yml and the Dockerfiles, checked without a Docker engine (none runs here).

Debian's docker-compose validates and renders the file; the checks below read what it rendered.
"""

import dataclasses
import re
import shutil
import subprocess
import tomllib

import pytest
import yaml

from devstack.images import LOCAL_IMAGES
from shared.settings import PROJECT_ROOT, Settings, SettingsError

RECOG_SERVICES = (
    "schema",
    "gateway",
    "worker",
    "worker-bulk",
    "worker-gpu",
    "flower",
)  # built from our Dockerfiles
SETTINGS = {"RECOG_" + f.name.upper() for f in dataclasses.fields(Settings)}
MUST_BE_SET = (
    "RECOG_REDIS_URL",
    "RECOG_CASSANDRA_HOSTS",
    "RECOG_IMAGE_DIR",
    "RECOG_MODELS_DIR",
    "RECOG_FLOWER_USER",
    "RECOG_FLOWER_PASSWORD",
    "RECOG_WORKER_METRICS_HOST",
)


# .env.example with its placeholder passwords set, as a user's .env has them.
FILLED = PROJECT_ROOT / ".recog" / "test-compose.env"


def filled_example() -> str:
    return (PROJECT_ROOT / ".env.example").read_text().replace("=change-me", "=a-password-of-their-own")


def compose(*args: str, env_file: str | None = None) -> subprocess.CompletedProcess:
    if env_file is None:
        FILLED.parent.mkdir(parents=True, exist_ok=True)
        FILLED.write_text(filled_example())
        env_file = str(FILLED)
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: `make test` installs it (scripts/install-system.sh)"
    return subprocess.run(
        [binary, "--env-file", env_file, "-f", "docker-compose.yml", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def rendered() -> dict:
    result = compose("--profile", "gpu", "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_file_validates():
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_a_missing_secret_stops_compose_with_a_message(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose("config", "-q", env_file=str(empty))
    assert result.returncode != 0
    assert re.search(r"set (FLOWER|REDIS|CASSANDRA)_PASSWORD in \.env", result.stderr), result.stderr


def test_the_examples_passwords_are_refused_by_every_recog_service():
    """.env.example as it is: compose renders it, and each service stops at start, naming it."""
    result = compose("--profile", "gpu", "config", env_file=".env.example")
    assert result.returncode == 0, result.stderr
    for name in RECOG_SERVICES:
        env = {k: str(v) for k, v in yaml.safe_load(result.stdout)["services"][name]["environment"].items()}
        with pytest.raises(SettingsError, match="the example's"):
            Settings.from_env(env)


def test_redis_and_cassandra_want_their_passwords(rendered):
    services = rendered["services"]
    for name in RECOG_SERVICES:
        env = services[name]["environment"]
        assert env["RECOG_REDIS_URL"] == "redis://:a-password-of-their-own@redis:6379/0", name
        login = (env["RECOG_CASSANDRA_USERNAME"], env["RECOG_CASSANDRA_PASSWORD"])
        assert login == ("recog", "a-password-of-their-own"), name
    redis = " ".join(services["redis"]["command"])
    assert "requirepass" in redis and "a-password-of-their-own" not in redis, "the password is no argument"
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == "a-password-of-their-own"


def test_every_service_has_a_healthcheck_or_says_why_not(rendered):
    for name, service in rendered["services"].items():
        reason = (service.get("labels") or {}).get("recog.healthcheck", "")
        assert service.get("healthcheck", {}).get("test") or reason.startswith("none: "), name


def test_build_contexts_dockerfiles_and_volumes_exist(rendered):
    declared = set(rendered.get("volumes") or {})
    for name, service in rendered["services"].items():
        if "build" in service:
            context = PROJECT_ROOT / service["build"]["context"]
            assert context.is_dir(), name
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            assert source in declared or (PROJECT_ROOT / source).exists(), f"{name}: {source}"


def test_recog_services_get_every_setting_they_need(rendered):
    for name in RECOG_SERVICES:
        env = rendered["services"][name]["environment"]
        assert set(MUST_BE_SET) <= set(env), name
        unknown = {k for k in env if k.startswith("RECOG_")} - SETTINGS
        assert not unknown, f"{name} sets variables no code reads: {unknown}"
        for key, value in env.items():
            if key != "RECOG_FLOWER_URL":  # the one address a browser on the host uses
                assert not re.search(r"127\.0\.0\.1|localhost", str(value)), f"{name}: {key}={value}"
        # Cassandra 5.0 negotiates its protocol; pinning 3 is only for the local 2.1.
        assert str(env.get("RECOG_CASSANDRA_PROTOCOL_VERSION", "0")) == "0", name
        Settings.from_env({k: str(v) for k, v in env.items()})  # every value parses


def test_gateway_and_workers_share_the_image_volume(rendered):
    services = rendered["services"]
    for name in ("gateway", "worker", "worker-bulk", "worker-gpu"):
        mounts = {v.split(":")[0]: v.split(":")[1] for v in services[name]["volumes"]}
        assert mounts.get("images") == services[name]["environment"]["RECOG_IMAGE_DIR"], name


def test_the_image_store_switch_reaches_every_recog_service(rendered, tmp_path):
    assert {rendered["services"][n]["environment"]["RECOG_IMAGE_STORE"] for n in RECOG_SERVICES} == {"volume"}
    switched = tmp_path / "cassandra.env"
    switched.write_text(filled_example() + "RECOG_IMAGE_STORE=cassandra\n")
    result = compose("--profile", "gpu", "config", env_file=str(switched))
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in RECOG_SERVICES:
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        assert Settings.from_env(env).image_store == "cassandra", name


def test_the_prefetch_reaches_the_workers(tmp_path):
    """Left out of .env, 0: a worker takes max(4, min(RECOG_MAX_BATCH, 16)) a process ahead."""
    workers = ("worker", "worker-bulk", "worker-gpu")
    for value, expected in ((None, 0), ("1", 1)):
        lines = [
            line for line in filled_example().splitlines() if not line.startswith("PREFETCH_MULTIPLIER=")
        ]
        env_file = tmp_path / f"prefetch-{value}.env"
        env_file.write_text("\n".join(lines + ([f"PREFETCH_MULTIPLIER={value}"] if value else [])) + "\n")
        result = compose("--profile", "gpu", "config", env_file=str(env_file))
        assert result.returncode == 0, result.stderr
        services = yaml.safe_load(result.stdout)["services"]
        for name in workers:
            env = {k: str(v) for k, v in services[name]["environment"].items()}
            assert "RECOG_PREFETCH_MULTIPLIER" in env, name
            assert Settings.from_env(env).prefetch_multiplier == expected, name


def test_published_ports_listen_on_loopback_unless_configured(rendered, tmp_path):
    published = {
        name: service["ports"] for name, service in rendered["services"].items() if service.get("ports")
    }
    assert set(published) == {"gateway", "flower"}
    for name, ports in published.items():
        assert all(str(p).startswith("127.0.0.1:") for p in ports), f"{name}: {ports}"
    opened = tmp_path / "open.env"
    opened.write_text(filled_example() + "PUBLISH_ADDRESS=0.0.0.0\n")
    result = compose("config", env_file=str(opened))
    assert result.returncode == 0 and "0.0.0.0:8000:8000" in result.stdout.replace('"', "")


def test_workers_scale_and_the_gpu_worker_is_a_profile(rendered):
    services = rendered["services"]
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N works
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["args"]["TENSORFLOW_EXTRA"] == "worker-gpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_single_jobs_have_workers_of_their_own_and_bulk_workers_yield_the_cpu(rendered):
    """docs/architecture.md#priority: the Dockerfile's command takes WORKER_QUEUES (both queues
    when unset, as the GPU worker runs)."""
    services = rendered["services"]
    queues = {name: services[name]["environment"].get("WORKER_QUEUES") for name in services}
    assert (queues["worker"], queues["worker-bulk"], queues["worker-gpu"]) == ("recog", "recog.bulk", None)
    assert '-Q \\"${WORKER_QUEUES:-' in (PROJECT_ROOT / "Dockerfile.worker").read_text()
    bulk = {k: str(v) for k, v in services["worker-bulk"]["environment"].items()}
    assert Settings.from_env(bulk).worker_nice == 10
    assert (
        Settings.from_env({k: str(v) for k, v in services["worker"]["environment"].items()}).worker_nice == 0
    )
    assert services["worker-bulk"]["cpu_shares"] < services["worker"].get("cpu_shares", 1024)
    assert "container_name" not in services["worker-bulk"]  # --scale worker-bulk=N works


def test_stateful_services_keep_their_data(rendered):
    services = rendered["services"]
    assert services["cassandra"]["image"] == "cassandra:5.0"
    assert any(v.endswith(":/var/lib/cassandra:rw") for v in services["cassandra"]["volumes"])
    assert "--appendonly yes" in " ".join(services["redis"]["command"])
    assert any(v.endswith(":/data:rw") for v in services["redis"]["volumes"])
    flower = " ".join(services["flower"]["command"])
    assert 'FLOWER_BASIC_AUTH="$$RECOG_FLOWER_USER:$$RECOG_FLOWER_PASSWORD"' in flower
    assert "--basic-auth" not in flower, "a password on the command line shows in ps"


def test_cassandra_acknowledges_a_write_only_once_it_is_on_disk(rendered, tmp_path):
    """The entrypoint's edit, run on the lines cassandra:5.0's own cassandra.yaml has: batch sync,
    and no sync period left (Cassandra refuses to start with one beside batch)."""
    script = rendered["services"]["cassandra"]["entrypoint"][2].replace("$$", "$")
    config = tmp_path / "cassandra.yaml"
    config.write_text(
        "commitlog_sync: periodic\ncommitlog_sync_period: 10000ms\n# commitlog_sync_group_window: 1000ms\n"
        "authenticator:\n  class_name : org.apache.cassandra.auth.AllowAllAuthenticator\n"
    )
    edit = script.replace("/etc/cassandra/cassandra.yaml", str(config)).split("&& exec")[0]
    subprocess.run(["bash", "-c", edit], check=True, timeout=30)
    lines = config.read_text().splitlines()
    assert "commitlog_sync: batch" in lines
    assert not [line for line in lines if line.startswith("commitlog_sync_period")]
    assert "  class_name : org.apache.cassandra.auth.PasswordAuthenticator" in lines, "logins required"
    assert script.endswith("exec docker-entrypoint.sh cassandra -f"), "the image's own start must follow"
    # An image whose file reads otherwise must not start Cassandra with a sync nobody chose.
    config.write_text(
        "commitlog_sync: group\ncommitlog_sync_group_window: 15ms\nauthenticator: AllowAllAuthenticator\n"
    )
    assert subprocess.run(["bash", "-c", edit], timeout=30).returncode != 0
    # Nor one whose authenticator the edit did not reach, whatever its comments name.
    config.write_text(
        "commitlog_sync: periodic\n# PasswordAuthenticator: logins by name and password\n"
        "authenticator: com.example.SomethingElse\n"
    )
    assert subprocess.run(["bash", "-c", edit], timeout=30).returncode != 0


def test_gateway_image_has_no_tensorflow_numpy_or_scipy():
    dockerfile = (PROJECT_ROOT / "Dockerfile.gateway").read_text()
    assert "requirements.py > /tmp/requirements.txt" in dockerfile  # no extra: the base dependencies
    base = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in base if re.match(r"(tensorflow|numpy|scipy)", d.lower())]
    for name in ("Dockerfile.gateway", "Dockerfile.worker"):
        assert "PROMETHEUS_MULTIPROC_DIR=" in (PROJECT_ROOT / name).read_text(), name


def test_images_are_the_public_ones_unless_the_variables_say_otherwise(rendered, tmp_path):
    images = {name: service.get("image") for name, service in rendered["services"].items()}
    assert (images["cassandra"], images["redis"]) == ("cassandra:5.0", "redis:7")
    assert rendered["services"]["gateway"]["build"]["args"]["BASE_IMAGE"] == "python:3.11-slim"
    local = tmp_path / "local.env"
    variables = "".join(f"{k}={v}\n" for k, v in LOCAL_IMAGES.items())
    local.write_text(filled_example() + variables)
    result = compose("config", env_file=str(local))
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert (services["cassandra"]["image"], services["redis"]["image"]) == (
        "recog-cassandra:2.1",
        "recog-redis:7",
    )
    for name in ("gateway", "schema", "flower", "worker"):
        assert services[name]["build"]["args"]["BASE_IMAGE"] == "recog-base:bookworm", name
    assert services["worker"]["environment"]["RECOG_CASSANDRA_PROTOCOL_VERSION"] == "3"
