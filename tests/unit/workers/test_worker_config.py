"""The limits a worker runs under come from settings, and a chunk past its time limit goes back to
Redis instead of being acknowledged with its jobs left running (the kill itself, at a limit, is
produced for real in tests/integration/test_poison.py)."""

from shared.messaging import TASK_RECOGNISE_CHUNK
from shared.settings import Settings
from workers import create_celery, worker_config


def test_the_time_and_memory_limits_are_settings():
    config = worker_config(
        Settings.from_env({"RECOG_TASK_TIME_LIMIT": "120", "RECOG_WORKER_MAX_MEMORY_MB": "900"})
    )
    assert config["task_time_limit"] == 120
    assert config["worker_max_memory_per_child"] == 900 * 1024  # Celery counts KiB
    assert (
        worker_config(Settings.from_env({"RECOG_WORKER_MAX_MEMORY_MB": "0"}))["worker_max_memory_per_child"]
        is None
    )


def test_the_prefetch_leaves_room_for_a_batch_but_holds_few_chunks_unless_set():
    def prefetch(env: dict) -> int:
        return worker_config(Settings.from_env(env))["worker_prefetch_multiplier"]

    assert prefetch({}) == 16  # RECOG_MAX_BATCH is 64: capped, so a worker holds few bulk chunks
    assert prefetch({"RECOG_MAX_BATCH": "8"}) == 8
    assert prefetch({"RECOG_MAX_BATCH": "1"}) == 4  # never below 4
    assert prefetch({"RECOG_PREFETCH_MULTIPLIER": "64"}) == 64
    assert prefetch({"RECOG_PREFETCH_MULTIPLIER": "1", "RECOG_MAX_BATCH": "200"}) == 1


def test_a_chunk_is_handed_back_not_acknowledged_when_it_times_out():
    task = create_celery(Settings.from_env({})).tasks[TASK_RECOGNISE_CHUNK]
    assert task.acks_late and not task.acks_on_failure_or_timeout
