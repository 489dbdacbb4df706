"""The gateway image has no TensorFlow, numpy or scipy (pyproject.toml's worker extra): what runs
from it (the gateway, Flower through workers.main, the schema job, `recog --help`) must not import
TensorFlow, keras or scipy. numpy is left out of the check: the Cassandra driver imports it when it
is installed (here), and does without it in the image."""

import subprocess
import sys

import pytest

PROBES = {
    "gateway app": "import gateway.wsgi",
    "flower's app": "import workers.main",
    "recog schema": "import shared.store.schema",
    "recog --help": (
        "from click.testing import CliRunner; from cli.main import cli; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0 and 'submit-folder' in r.output, r"
    ),
}
WORKER_ONLY = ("tensorflow", "keras", "scipy")


@pytest.mark.parametrize("name", sorted(PROBES))
def test_never_imports_what_only_the_worker_image_has(name):
    code = f"import sys; {PROBES[name]}; print(*[m in sys.modules for m in {WORKER_ONLY!r}])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split()[-3:] == ["False"] * 3, out.stderr
