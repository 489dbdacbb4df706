#!/bin/sh
# pip-install VENV ARGS...: pip install ARGS into VENV at the versions of constraints.txt, trusting
# any CA in /tmp/ca/*.crt (a TLS-intercepting proxy's) besides the usual ones, and a private index
# where PIP_INDEX_URL is set. Build stages only: nothing here reaches a final image.
set -eu
venv=$1
shift
if [ -z "${PIP_INDEX_URL:-}" ]; then unset PIP_INDEX_URL; fi
if ls /tmp/ca/*.crt >/dev/null 2>&1; then
  cat /etc/ssl/certs/ca-certificates.crt /tmp/ca/*.crt > /tmp/pip-ca.pem 2>/dev/null || cat /tmp/ca/*.crt > /tmp/pip-ca.pem
  export PIP_CERT=/tmp/pip-ca.pem
fi
# Byte code is compiled here: the image's user cannot write it later, and TensorFlow's import
# would compile on every start.
"$venv/bin/pip" install -c constraints.txt "$@"
