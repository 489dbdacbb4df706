"""The gateway image has no TensorFlow, numpy or scipy (pyproject.toml's worker extra): what runs
from it (the gateway, Flower through workers.main, the schema job, `recog --help`) must work
without them. Each probe runs with those packages hidden, as in the image; a library that only
tries them (the Cassandra driver tries numpy) goes on without."""

import subprocess
import sys

import pytest

PROBES = {
    "gateway app": "import gateway.wsgi",
    "flower's app": "import workers.main",
    "recog schema": "import shared.store.schema, shared.store.cassandra_results",
    "recog --help": (
        "from click.testing import CliRunner; from cli.main import cli; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0 and 'submit-folder' in r.output, r"
    ),
}
WORKER_ONLY = ("tensorflow", "keras", "numpy", "scipy")


@pytest.mark.parametrize("name", sorted(PROBES))
def test_runs_without_what_only_the_worker_image_has(name):
    hide = "".join(f"sys.modules[{m!r}] = None; " for m in WORKER_ONLY)  # import then raises ImportError
    code = f"import sys; {hide}{PROBES[name]}; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split()[-1:] == ["ok"], out.stderr[-2000:]
