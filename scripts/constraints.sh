#!/usr/bin/env bash
# Rewrite constraints.txt from the venv: every installed package's version, plus tensorflow at the
# tensorflow-cpu release for the GPU worker's image.
set -euo pipefail
cd "$(dirname "$0")/.."
frozen=$(.venv/bin/pip freeze --exclude-editable)
tf=$(grep -i '^tensorflow[-_]cpu==' <<<"$frozen" | cut -d= -f3)
{
  echo "# Every package's version, for the venv (make) and the images (Dockerfile.*): a rebuild gets the"
  echo "# same packages. After changing pyproject.toml's dependencies: make constraints."
  echo "$frozen"
  echo "tensorflow==$tf  # the GPU worker's, the same release"
} > constraints.txt
