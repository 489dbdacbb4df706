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
