#!/bin/sh
# As the official image does: a redis-server given no config file listens on every address of its
# container with protected mode off (the container's network is the fence; nothing is published).
set -e
if [ "${1:-}" = "redis-server" ]; then
  shift
  set -- redis-server --bind '*' --protected-mode no --dir /data "$@"
fi
exec "$@"
