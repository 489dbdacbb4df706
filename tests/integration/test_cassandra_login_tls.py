"""The Cassandra login and TLS settings against a real Cassandra 2.1 of this test's own, started
with PasswordAuthenticator and client TLS (a certificate made here with keytool): `recog schema`
makes the service's user from the default superuser and drops that one, the service connects with
its login over TLS checked against the CA it was given, and each wrong setting is refused."""

import os
import secrets
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import NoHostAvailable

from devstack import cassandra, processes
from shared.settings import PROJECT_ROOT, Settings
from shared.store.cassandra_results import CassandraStore
from shared.store.session import LoginRefused, connect
from tests.stack import fail_if_taken

RECOG = Path(sys.executable).parent / "recog"
PORTS = {"cassandra": 29242, "storage": 27200}
ROOT = PROJECT_ROOT / ".recog" / "test-cassandra-tls"
pytestmark = pytest.mark.timeout(400)


def keystore(folder: Path, password: str) -> tuple[Path, Path]:
    """A JKS keystore for the node (certificate for 127.0.0.1), and its certificate as PEM, the
    CA a client trusts. keytool takes the password from the environment, not its command line."""
    store, pem = folder / "node.jks", folder / "node.pem"
    env = {**os.environ, "STORE_PASSWORD": password}
    common = ["-alias", "node", "-keystore", str(store), "-storepass:env", "STORE_PASSWORD"]
    subprocess.run(
        ["keytool", "-genkeypair", *common, "-keypass:env", "STORE_PASSWORD", "-storetype", "JKS"]
        + ["-keyalg", "RSA", "-keysize", "2048", "-validity", "2", "-dname", "CN=127.0.0.1"]
        + ["-ext", "SAN=ip:127.0.0.1"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["keytool", "-exportcert", "-rfc", *common, "-file", str(pem)],
        env=env,
        check=True,
        capture_output=True,
    )
    return store, pem


@pytest.fixture(scope="module")
def secured():
    """A Cassandra with logins and client TLS; yields the CA file clients should trust."""
    fail_if_taken(PORTS, "the Cassandra login and TLS test")
    processes.stop(ROOT / "run", "cassandra", timeout=60)  # what a killed earlier run left
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    store_password = secrets.token_urlsafe(12)
    store, pem = keystore(ROOT, store_password)
    home = cassandra.ensure_unpacked(PROJECT_ROOT / ".recog" / "cache" / "cassandra")
    tls = {
        "enabled": True,
        "keystore": str(store),
        "keystore_password": store_password,
        "protocol": "TLSv1.2",
        "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"],
    }
    config = cassandra.write_config(
        home,
        ROOT / "cassandra",
        PORTS["cassandra"],
        PORTS["storage"],
        extra={"authenticator": "PasswordAuthenticator", "client_encryption_options": tls},
    )
    log = ROOT / "logs"
    processes.start("cassandra", cassandra.command(home, config, log), ROOT / "run", log)
    try:
        processes.wait_for_port("127.0.0.1", PORTS["cassandra"], 180, "Cassandra", log / "cassandra.log")
        yield pem
    finally:
        processes.stop(ROOT / "run", "cassandra", timeout=60)


def settings_for(pem: Path, **changes) -> Settings:
    base = Settings.from_env(
        {},
        cassandra_port=PORTS["cassandra"],
        cassandra_protocol_version=3,
        cassandra_keyspace="secured",
        cassandra_username="recog",
        cassandra_password="s3cret-" + "x" * 12,
        cassandra_tls=True,
        cassandra_tls_ca=str(pem),
    )
    return base.replace(**changes)


def test_schema_makes_the_login_and_the_service_connects_over_tls(secured):
    settings = settings_for(secured)
    env = {**os.environ, **settings.to_env()}
    made = subprocess.run([str(RECOG), "schema"], env=env, capture_output=True, text=True, timeout=240)
    assert made.returncode == 0, made.stderr
    assert "made the Cassandra user recog" in made.stdout
    assert settings.cassandra_password not in made.stdout + made.stderr
    again = subprocess.run([str(RECOG), "schema"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "made the Cassandra user" not in again.stdout, "made once"

    store = CassandraStore.open(settings)
    try:
        store.ping()
        assert store.get_job(uuid.uuid4()) is None, "logged in, over TLS, into the new keyspace"
    finally:
        store.close()

    # The default superuser, whose password everyone knows, is gone.
    with pytest.raises(LoginRefused, match="refused the login of cassandra"):
        connect(settings.replace(cassandra_username="cassandra", cassandra_password="cassandra"))
    with pytest.raises(LoginRefused, match="check RECOG_CASSANDRA_USERNAME and RECOG_CASSANDRA_PASSWORD"):
        connect(settings.replace(cassandra_password="wrong-password"))
    # TLS checked against the system's CAs, which did not sign the node's certificate, and no
    # TLS at all: no connection.
    with pytest.raises(NoHostAvailable, match="CERTIFICATE_VERIFY_FAILED"):
        connect(settings.replace(cassandra_tls_ca=""))
    with pytest.raises(NoHostAvailable):
        connect(settings.replace(cassandra_tls=False))
