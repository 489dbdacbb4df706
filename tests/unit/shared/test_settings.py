import dataclasses
from pathlib import Path

import pytest

from shared.settings import CASSANDRA_IMAGE_LIMIT, Settings, SettingsError, replication_options


def test_defaults_when_environment_is_empty():
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.cassandra_protocol_version == 0
    assert settings.max_upload_bytes == 10 * 1024 * 1024


def test_environment_values_are_parsed_by_type():
    settings = Settings.from_env(
        {
            "RECOG_CASSANDRA_HOSTS": "10.0.0.1, 10.0.0.2",
            "RECOG_CASSANDRA_PORT": "9999",
            "RECOG_MAX_WAIT_SECONDS": "12.5",
            "RECOG_IMAGE_DIR": "/tmp/recog-images",
        }
    )
    assert settings.cassandra_hosts == ("10.0.0.1", "10.0.0.2")
    assert settings.cassandra_port == 9999
    assert settings.max_wait_seconds == 12.5
    assert settings.image_dir == Path("/tmp/recog-images")


def test_explicit_values_win_over_environment():
    settings = Settings.from_env({"RECOG_QUEUE": "from-env"}, queue="explicit")
    assert settings.queue == "explicit"


def test_bad_number_names_the_variable():
    with pytest.raises(SettingsError, match="RECOG_CASSANDRA_PORT"):
        Settings.from_env({"RECOG_CASSANDRA_PORT": "ninety"})


def test_bad_consistency_lists_the_choices():
    with pytest.raises(SettingsError, match="LOCAL_QUORUM"):
        Settings.from_env({"RECOG_CASSANDRA_CONSISTENCY": "MOST"})


def test_unknown_override_is_refused():
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.from_env({}, colour="blue")


def test_replication_specs():
    assert replication_options("SimpleStrategy:1") == {"class": "SimpleStrategy", "replication_factor": "1"}
    assert replication_options("NetworkTopologyStrategy:dc1=3,dc2=2") == {
        "class": "NetworkTopologyStrategy",
        "dc1": "3",
        "dc2": "2",
    }
    with pytest.raises(SettingsError, match="RECOG_CASSANDRA_REPLICATION"):
        replication_options("NetworkTopologyStrategy:dc1")


def test_to_env_round_trips():
    settings = Settings.from_env({}, cassandra_hosts=("a", "b"), tf_threads=2)
    assert Settings.from_env(settings.to_env()) == settings


def test_the_image_store_is_volume_or_cassandra():
    assert Settings.from_env({}).image_store == "volume"
    assert Settings.from_env({"RECOG_IMAGE_STORE": "cassandra"}).image_store == "cassandra"
    with pytest.raises(SettingsError, match="RECOG_IMAGE_STORE='s3'; use one of volume, cassandra"):
        Settings.from_env({"RECOG_IMAGE_STORE": "s3"})


def test_cassandra_images_refuse_uploads_larger_than_a_row_can_hold():
    env = {"RECOG_IMAGE_STORE": "cassandra", "RECOG_MAX_UPLOAD_BYTES": str(CASSANDRA_IMAGE_LIMIT)}
    assert Settings.from_env(env).max_upload_bytes == CASSANDRA_IMAGE_LIMIT
    with pytest.raises(SettingsError, match="RECOG_MAX_UPLOAD_BYTES=.*RECOG_IMAGE_STORE=volume"):
        Settings.from_env({**env, "RECOG_MAX_UPLOAD_BYTES": str(CASSANDRA_IMAGE_LIMIT + 1)})
    volume = {"RECOG_MAX_UPLOAD_BYTES": str(CASSANDRA_IMAGE_LIMIT + 1)}
    assert Settings.from_env(volume).max_upload_bytes == CASSANDRA_IMAGE_LIMIT + 1


def test_every_number_has_bounds_and_every_setting_a_reader():
    for f in dataclasses.fields(Settings):
        assert f.metadata["read_by"], f.name
        if isinstance(f.default, int | float) and not isinstance(f.default, bool):
            low, high, choices = f.metadata["low"], f.metadata["high"], f.metadata["choices"]
            assert f.default in choices or (low is not None and low <= f.default <= high), f.name


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RECOG_SWEEP_SECONDS", "0"),  # a sweeper that never sleeps
        ("RECOG_WORKER_CONCURRENCY", "0"),
        ("RECOG_MAX_WAIT_SECONDS", "5"),  # below the page's 10 s
        ("RECOG_MAX_IMAGE_PIXELS", "100000000"),  # above what Pillow opens
        ("RECOG_WORKER_METRICS_PORT", "70000"),
        ("RECOG_SWEEP_HOURS", "100000"),
    ],
)
def test_a_number_out_of_range_names_the_variable_and_the_range(variable, value):
    with pytest.raises(
        SettingsError, match=rf"{variable}={value}\S* is out of range; use [\d.,]+ to [\d.,]+"
    ):
        Settings.from_env({variable: value})


def test_zero_turns_the_worker_metrics_off_and_is_allowed():
    assert Settings.from_env({"RECOG_WORKER_METRICS_PORT": "0"}).worker_metrics_port == 0


def test_a_choice_outside_the_list_names_the_variable_and_the_choices():
    with pytest.raises(SettingsError, match=r"RECOG_CASSANDRA_PROTOCOL_VERSION=2; use one of 0, 3, 4, 5"):
        Settings.from_env({"RECOG_CASSANDRA_PROTOCOL_VERSION": "2"})


def test_an_installed_package_keeps_its_state_outside_site_packages(tmp_path):
    """The same code, copied where pip would put it (no pyproject.toml beside it)."""
    import shutil
    import subprocess
    import sys

    from shared.settings import PROJECT_ROOT

    site = tmp_path / "site-packages"
    shutil.copytree(PROJECT_ROOT / "shared", site / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    code = "from shared.settings import Settings; print(Settings.from_env({}).image_dir)"
    env = {"PYTHONPATH": str(site), "XDG_STATE_HOME": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-c", code]
    out = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "state" / "recog" / "images")


def test_a_checkout_keeps_its_state_beside_the_code():
    from shared.settings import PROJECT_ROOT

    assert Settings.from_env({}).image_dir == PROJECT_ROOT / ".recog" / "images"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RECOG_FLOWER_PASSWORD": "change-me"}, "RECOG_FLOWER_PASSWORD"),
        (
            {"RECOG_CASSANDRA_USERNAME": "recog", "RECOG_CASSANDRA_PASSWORD": "change-me"},
            "RECOG_CASSANDRA_PASSWORD",
        ),
        ({"RECOG_REDIS_URL": "redis://:change-me@redis:6379/0"}, "RECOG_REDIS_URL's password"),
    ],
)
def test_the_examples_placeholder_passwords_are_refused(env, named):
    with pytest.raises(SettingsError, match=f"{named} is 'change-me', the example's"):
        Settings.from_env(env)


def test_secrets_stay_out_of_the_settings_repr():
    shown = repr(
        Settings.from_env(
            {
                "RECOG_REDIS_URL": "redis://:r3dis-secret@redis:6379/0",
                "RECOG_FLOWER_PASSWORD": "fl0wer-secret",
                "RECOG_CASSANDRA_USERNAME": "recog",
                "RECOG_CASSANDRA_PASSWORD": "c4ssandra-secret",
                "RECOG_API_KEY": "recog_0123456789abcdef_" + "k" * 43,
            }
        )
    )
    assert "cassandra_username='recog'" in shown
    assert not any(
        secret in shown for secret in ("r3dis-secret", "fl0wer-secret", "c4ssandra-secret", "k" * 43)
    )


def test_a_cassandra_login_needs_both_its_name_and_its_password():
    with pytest.raises(SettingsError, match="both RECOG_CASSANDRA_USERNAME and RECOG_CASSANDRA_PASSWORD"):
        Settings.from_env({"RECOG_CASSANDRA_USERNAME": "recog"})
    assert Settings.from_env(
        {"RECOG_CASSANDRA_USERNAME": "recog", "RECOG_CASSANDRA_PASSWORD": "p"}
    ).cassandra_username
