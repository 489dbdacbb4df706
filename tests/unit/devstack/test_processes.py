import os
import sys

from devstack import processes


def test_start_then_stop_leaves_nothing_running(tmp_path):
    argv = [
        sys.executable,
        "-c",
        "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)",
    ]
    pid = processes.start("sleeper", argv, tmp_path / "run", tmp_path / "logs")
    assert processes.running_pid(tmp_path / "run", "sleeper") == pid
    assert (
        processes.start("sleeper", argv, tmp_path / "run", tmp_path / "logs") == pid
    )  # second start is a no-op
    assert processes.stop(tmp_path / "run", "sleeper", timeout=10)
    assert processes.running_pid(tmp_path / "run", "sleeper") is None
    assert not processes._group_alive(pid)  # the grandchild went with it


def test_a_recycled_pid_is_not_ours(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "stranger.pid").write_text(f"{os.getpid()}\n1\n")  # our pid, but a different start time
    assert processes.running_pid(run, "stranger") is None
    assert processes.stop(run, "stranger") is False


def test_stop_of_unknown_service_is_harmless(tmp_path):
    assert processes.stop(tmp_path, "never-started") is False
