#!/bin/sh
# As the official image does: a redis-server listens on every address of its container with
# protected mode off (the container's network is the fence; nothing is published). A config file
# (compose's, holding requirepass) stays the first argument, where redis-server looks for it.
set -e
if [ "${1:-}" = "redis-server" ]; then
  shift
  if [ -f "${1:-}" ]; then
    config=$1
    shift
    set -- redis-server "$config" --bind '*' --protected-mode no --dir /data "$@"
  else
    set -- redis-server --bind '*' --protected-mode no --dir /data "$@"
  fi
fi
exec "$@"
