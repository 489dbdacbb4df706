import subprocess
import sys

import pytest

PROBES = {
    "gateway app": "import gateway.wsgi",
    "recog --help": (
        "from click.testing import CliRunner; from cli.main import cli; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0 and 'submit-folder' in r.output, r"
    ),
}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_never_imports_tensorflow(name):
    code = f"import sys; {PROBES[name]}; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"], out.stderr
