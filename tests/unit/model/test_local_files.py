"""`recog classify`'s files: prepared in a pool of processes, or in this one, with one answer."""

import pytest

from model.local_files import POOL_FROM, recognise_files
from model.recogniser import Recogniser
from shared.decode import ImageRejected
from shared.settings import Settings
from tests import images


@pytest.fixture(scope="module")
def recogniser():
    return Recogniser(Settings.from_env({}).models_dir, "digits")


def test_a_pool_of_processes_answers_as_this_process_does_file_by_file_in_order(
    recogniser, tmp_path, monkeypatch
):
    paths = []
    for n in range(POOL_FROM + 8):  # enough for the pool
        paths.append(tmp_path / f"{n:04d}.png")
        paths[-1].write_bytes(images.png_digit(n % 10, (n // 10) % 10))
    paths[7].write_bytes(images.truncated(images.png_digit(7)))
    paths[300].unlink()  # gone since it was listed
    from concurrent.futures import ProcessPoolExecutor

    pools = []

    class Counted(ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr("model.local_files.ProcessPoolExecutor", Counted)
    pooled = list(recognise_files(recogniser, paths, 1_000_000, processes=2))
    assert len(pools) == 1, "the files were not prepared in a pool"
    inline = list(recognise_files(recogniser, paths, 1_000_000, processes=1))
    assert [path for path, _ in pooled] == paths == [path for path, _ in inline]
    assert isinstance(pooled[7][1], ImageRejected) and "truncated" in str(pooled[7][1])
    assert isinstance(pooled[300][1], ImageRejected) and "could not be read" in str(pooled[300][1])
    answers = [(str(r) if isinstance(r, ImageRejected) else (r.label, r.probabilities)) for _, r in pooled]
    assert answers == [
        (str(r) if isinstance(r, ImageRejected) else (r.label, r.probabilities)) for _, r in inline
    ]
    right = sum(r.label == str(n % 10) for n, (_, r) in enumerate(pooled) if not isinstance(r, ImageRejected))
    assert right >= 0.95 * (len(paths) - 2)
