#!/bin/sh
exec python3 /opt/recog/start.py "$@"
