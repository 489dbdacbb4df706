"""The comparison of a re-scored batch: its source's lines and its own walked side by side in
file-name order (repeated names included), and the summary summed as they go."""

import uuid

from gateway.rescore import Agreement, _pairs, rescore_id

NEW = uuid.uuid4()


def line(filename, status="done", label=None, job_id=None):
    return {
        "filename": filename,
        "job_id": job_id or uuid.uuid4(),
        "status": status,
        "label": label,
        "confidence": 0.9 if label else None,
        "error": None,
    }


def rescored(old, **fields):
    return line(old["filename"], job_id=rescore_id(NEW, old["job_id"]), **fields)


def test_each_file_meets_its_own_rescore_even_among_files_of_the_same_name():
    a1, a2, b, c = line("a.png", label="1"), line("a.png", label="2"), line("b.png", label="3"), line("c.png")
    new = [rescored(a2, label="7"), rescored(a1, label="1"), rescored(c, status="queued")]
    new.sort(key=lambda row: (row["filename"], str(row["job_id"])))  # as the partition holds them
    pairs = list(_pairs(NEW, [a1, a2, b, c], new))
    assert [(p["file"], p["old_label"], p["new_label"], p["changed"]) for p in pairs] == [
        ("a.png", "1", "1", False),
        ("a.png", "2", "7", True),
        ("b.png", "3", None, None),  # never re-scored (added to the source after)
        ("c.png", None, None, None),
    ]
    assert pairs[2]["new_status"] is None and pairs[3]["new_status"] == "queued"


def test_the_summary_counts_only_files_done_both_times():
    agreement = Agreement()
    olds = [line("a.png", label="1"), line("b.png", label="2"), line("c.png"), line("d.png", status="failed")]
    news = [rescored(olds[0], label="1"), rescored(olds[1], label="5"), rescored(olds[2], label="4")]
    for pair in _pairs(NEW, olds, news):
        agreement.add(pair)
    summary = agreement.as_dict()
    assert (summary["files"], summary["compared"], summary["agreeing"], summary["changed"]) == (4, 3, 1, 2)
    assert summary["agreement_percent"] == 33.33 and summary["not_rescored"] == 1
    assert summary["confusion"] == {"(none)": {"4": 1}, "1": {"1": 1}, "2": {"5": 1}}
