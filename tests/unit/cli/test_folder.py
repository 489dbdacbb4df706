"""submit-folder's walk of a folder and its resume state, without a gateway."""

import json

from cli.folder import FolderRun, find_images


def test_the_walk_finds_images_by_suffix_anywhere_below_in_a_stable_order(tmp_path):
    for name in ("b/2.PNG", "a/1.jpg", "c/d/3.webp", "notes.txt", "a/x.zip", "4.tiff"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a folder named like an image is not one
    assert find_images(tmp_path) == ["4.tiff", "a/1.jpg", "b/2.PNG", "c/d/3.webp"]


def test_a_new_run_starts_with_nothing_uploaded(tmp_path):
    run = FolderRun("http://gw", tmp_path, tmp_path / "out.csv", None, 10, "n")
    assert run.state == {"folder": str(tmp_path.resolve()), "batch_id": None, "uploaded": []}
    assert run.remaining(["a.png", "b.png"]) == ["a.png", "b.png"]


def test_a_run_started_again_resumes_its_batch_with_only_the_rest(tmp_path):
    first = FolderRun("http://gw", tmp_path, tmp_path / "out.csv", None, 10, "n")
    first.state.update(batch_id="1234", uploaded=["a.png", "b.png"])
    first._save_state()
    again = FolderRun("http://gw", tmp_path, tmp_path / "out.csv", None, 10, "n")
    assert again.state["batch_id"] == "1234"
    assert again.remaining(["a.png", "b.png", "c.png"]) == ["c.png"]
    assert json.loads((tmp_path / "out.csv.state.json").read_text())["uploaded"] == ["a.png", "b.png"]


def test_the_state_of_another_folder_is_not_reused(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = FolderRun("http://gw", tmp_path / "one", tmp_path / "out.csv", None, 10, "n")
    first.state.update(batch_id="1234", uploaded=["a.png"])
    first._save_state()
    other = FolderRun("http://gw", tmp_path / "two", tmp_path / "out.csv", None, 10, "n")
    assert other.state["batch_id"] is None and other.remaining(["a.png"]) == ["a.png"]
