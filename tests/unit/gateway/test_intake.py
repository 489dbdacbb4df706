"""Taking uploads in: a batch's parts read within the upload limit, its files made durable before any
row names them, and a waited-for job sent with its row left to its worker."""

import hashlib
import io
import uuid
from types import SimpleNamespace

import pytest

from gateway.intake import PIECE_BYTES, Intake, take_part
from shared.image_store import VolumeImageStore
from shared.jobs import utcnow
from tests import images


class ReadSizes(io.BytesIO):
    """A part's stream that records how many bytes each read handed back."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size=-1):
        data = super().read(size)
        self.sizes.append(len(data))
        return data


def test_a_part_over_the_limit_is_refused_without_holding_it_in_memory(offline_settings):
    limit = 100_000
    services = SimpleNamespace(
        settings=offline_settings.replace(max_upload_bytes=limit),
        images=VolumeImageStore(offline_settings.image_dir),
    )
    big = b"\x89PNG" + bytes(5_000_000)
    stream = ReadSizes(big)
    intake = Intake("digits", utcnow(), uuid.uuid4())
    take_part(services, intake, stream, "huge.png")
    assert max(stream.sizes) <= max(limit + 1, PIECE_BYTES) < len(big), "the part was read whole"
    ((job, error),) = intake.refused
    assert error == f"the file is 5,000,004 bytes; the limit is {limit:,} bytes"
    assert (job.size_bytes, job.sha256) == (len(big), hashlib.sha256(big).hexdigest())
    assert not intake.accepted and not any(p.is_file() for p in offline_settings.image_dir.rglob("*"))

    digit = images.png_digit(7)
    take_part(services, intake, ReadSizes(digit), "seven.png")
    (accepted,) = intake.accepted
    assert accepted.sha256 == hashlib.sha256(digit).hexdigest() and accepted.size_bytes == len(digit)


def test_a_batchs_files_are_made_durable_together_before_any_row_names_them(offline_settings, monkeypatch):
    """Each file is written unsynced, then one make_durable() for all, then the rows: a crash can
    lose an upload the client was never told was accepted, never the bytes of a recorded job."""
    from gateway.intake import commit
    from tests.fakes import MemoryStore

    events = []
    images_store = VolumeImageStore(offline_settings.image_dir)
    store = MemoryStore()
    sync, insert = images_store.make_durable, store.insert_jobs
    monkeypatch.setattr(
        images_store, "make_durable", lambda shas: events.append(("sync", set(shas))) or sync(shas)
    )
    monkeypatch.setattr(store, "insert_jobs", lambda *a, **k: events.append(("rows",)) or insert(*a, **k))
    monkeypatch.setattr("os.fsync", lambda fd: events.append(("fsync",)))
    services = SimpleNamespace(
        settings=offline_settings,
        images=images_store,
        store=store,
        quotas=SimpleNamespace(
            admit=lambda tenant, job_ids, single: None, not_queued=lambda tenant, ids: None
        ),
        celery=None,
    )
    intake = Intake("digits", utcnow(), uuid.uuid4())
    for n in range(3):
        take_part(services, intake, io.BytesIO(images.png_digit(n)), f"{n}.png")
    monkeypatch.setattr("gateway.intake.send_work", lambda *a: None)
    commit(services, intake)
    assert events == [("sync", {job.sha256 for job in intake.accepted}), ("rows",)]


def _single(services, data: bytes) -> Intake:
    from gateway.intake import take

    intake = Intake("digits", utcnow())
    take(services, intake, data, "one.png", strict=True)
    return intake


def _services(offline_settings, store):
    return SimpleNamespace(
        settings=offline_settings,
        images=VolumeImageStore(offline_settings.image_dir),
        store=store,
        quotas=SimpleNamespace(
            admit=lambda tenant, job_ids, single: None, not_queued=lambda tenant, ids: None
        ),
        celery=None,
    )


def test_a_waited_for_job_is_sent_with_its_upload_columns_and_no_row_written(offline_settings, monkeypatch):
    from gateway.intake import commit
    from tests.fakes import MemoryStore

    sent = []
    monkeypatch.setattr("gateway.intake.send_work", lambda celery, settings, work: sent.append(work))
    store = MemoryStore()
    intake = _single(_services(offline_settings, store), images.png_digit(5))
    work = commit(_services(offline_settings, store), intake, leave_row=True)
    (job,) = intake.accepted
    assert store.jobs == {} and store.open == {}, "a row was written before the answer"
    ((message,),) = [w.messages for w in sent]
    assert message.upload == {
        "size_bytes": job.size_bytes,
        "image_format": "PNG",
        "width": 260,
        "height": 260,
    }
    assert work.work_id == job.job_id and work.messages[0].upload is None  # as recorded if the wait runs out


def test_a_waited_for_job_redis_refuses_is_recorded_for_the_sweeper(offline_settings, monkeypatch):
    import redis

    from gateway.intake import commit
    from tests.fakes import MemoryStore

    def refuse(*args):
        raise redis.ConnectionError("Redis is down (a test said so)")

    monkeypatch.setattr("gateway.intake.send_work", refuse)
    store = MemoryStore()
    intake = _single(_services(offline_settings, store), images.png_digit(5))
    services = _services(offline_settings, store)
    synced = []
    monkeypatch.setattr(
        services.images, "make_durable", lambda shas: synced.append((set(shas), dict(store.jobs)))
    )
    assert commit(services, intake, leave_row=True) is None
    (job,) = intake.accepted
    assert store.jobs[job.job_id]["status"] == "queued"
    assert synced == [({job.sha256}, {})], "its bytes were not made durable before its row was written"
    assert [row["work_id"] for minute in store.open.values() for row in minute.values()] == [job.job_id]


def test_a_wait_that_runs_out_records_the_job_or_says_it_could_not(offline_settings, monkeypatch):
    """No worker answers (none runs here; Redis is unreachable, so the wait reads the row): the
    job is recorded when the wait runs out and answered 202; with the store down then, 503."""
    from gateway import create_app
    from tests.fakes import MemoryStore, memory_keyed_client

    app = create_app(offline_settings)
    store = app.extensions["recog"]._store = MemoryStore()
    sent = []
    monkeypatch.setattr("gateway.intake.send_work", lambda celery, settings, work: sent.append(work))
    client = memory_keyed_client(app)

    def post(digit: int):
        return client.post("/v1/jobs?wait=1", data={"file": (io.BytesIO(images.png_digit(digit)), "d.png")})

    events = []
    images_store = app.extensions["recog"].images
    sync, record = images_store.make_durable, store.record_waited
    monkeypatch.setattr("os.fsync", lambda fd: events.append("fsync"))
    monkeypatch.setattr(images_store, "make_durable", lambda shas: events.append("durable") or sync(shas))
    monkeypatch.setattr(store, "record_waited", lambda *a: events.append("row") or record(*a))
    response = post(3)
    assert response.status_code == 202, response.get_json()
    job_id = uuid.UUID(response.get_json()["id"])
    # No fsync at upload: its bytes are made durable (the file and its folders) only now that a
    # row will name the job.
    assert events == ["durable", "fsync", "fsync", "fsync", "fsync", "row"], events
    assert sent[0].messages[0].upload is not None, "the row was not left to the worker"
    assert store.jobs[job_id]["status"] == "queued"
    assert job_id in {work_id for minute in store.open.values() for work_id in minute}
    store.down = True
    response = post(4)
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "store_unavailable"
    assert "could not be recorded" in response.get_json()["error"]["message"]


def test_a_waited_for_job_is_counted_queued_before_it_is_sent_and_uncounted_if_refused(
    offline_settings, monkeypatch
):
    """Its worker takes it off the tenant's count when it ends, which may come before a count made
    after the send; and a job counted, then refused (Redis and Cassandra both down), is taken off."""
    import redis

    from gateway.errors import ApiError
    from gateway.intake import commit, take
    from tests.fakes import MemoryStore

    events = []
    quotas = SimpleNamespace(
        admit=lambda tenant, ids, single: events.append(("queued", tenant)),
        not_queued=lambda tenant, ids: events.append(("not queued", tenant)),
    )
    store = MemoryStore()
    services = SimpleNamespace(**{**vars(_services(offline_settings, store)), "quotas": quotas})

    def intake():
        made = Intake("digits", utcnow(), tenant="t1")
        take(services, made, images.png_digit(5), "five.png", strict=True)
        return made

    monkeypatch.setattr("gateway.intake.send_work", lambda *a: events.append(("sent", None)))
    commit(services, intake(), leave_row=True)
    assert events == [("queued", "t1"), ("sent", None)]

    def refuse(*args):
        raise redis.ConnectionError("Redis is down (a test said so)")

    events.clear()
    monkeypatch.setattr("gateway.intake.send_work", refuse)
    store.down = True
    with pytest.raises(ApiError):
        commit(services, intake(), leave_row=True)
    assert events == [("queued", "t1"), ("not queued", "t1")]

    # Any failure to record a job, not only a 503: a write Cassandra refuses outright, say.
    events.clear()
    store.down = False

    def refused_write(*args, **kwargs):
        raise RuntimeError("InvalidRequest (a test said so)")

    monkeypatch.setattr(store, "insert_jobs", refused_write)
    with pytest.raises(RuntimeError):
        commit(services, intake())
    assert events == [("queued", "t1"), ("not queued", "t1")]


def test_the_model_names_are_listed_once_in_a_while_and_a_new_model_is_taken_at_once(tmp_path):
    import shutil

    from gateway import intake
    from gateway.errors import ApiError
    from model.registry import LABELS_FILE, WEIGHTS_FILES

    def install(name: str) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / WEIGHTS_FILES[0]).write_bytes(name.encode())
        (tmp_path / name / LABELS_FILE).write_text("a\nb\n")

    settings = SimpleNamespace(models_dir=tmp_path, model="digits")
    install("digits")
    assert intake.check_model(settings, None) == "digits"
    with pytest.raises(ApiError) as refused:
        intake.check_model(settings, "letters")
    assert refused.value.status == 400 and refused.value.code == "unknown_model"
    install("letters")
    assert intake.check_model(settings, "letters") == "letters", "a model just added must be taken at once"
    shutil.rmtree(tmp_path / "digits")
    assert intake.check_model(settings, "digits") == "digits", "listed a moment ago: not looked for again"
    listed_at, names = intake._model_names[tmp_path]  # as if listed longer ago than that
    intake._model_names[tmp_path] = (listed_at - intake.MODEL_NAMES_SECONDS - 1, names)
    with pytest.raises(ApiError):
        intake.check_model(settings, "digits")
