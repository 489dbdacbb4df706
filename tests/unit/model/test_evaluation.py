"""Calibration error: the number `recog evaluate` prints to say whether confidences can be trusted."""

import numpy as np
import pytest

from model.evaluation import calibration_error


def test_confidence_that_matches_accuracy_has_no_error():
    assert calibration_error(np.ones(50), np.ones(50, bool)) == 0.0
    # 0.75 sure and right 3 times in 4
    assert calibration_error(np.full(8, 0.75), np.array([1, 1, 1, 0] * 2, bool)) == pytest.approx(0.0)


def test_overconfidence_is_the_gap_weighted_by_each_bins_share():
    confidence = np.array([0.95] * 6 + [0.55] * 4)
    correct = np.array([1, 1, 1, 0, 0, 0] + [1, 1, 0, 0], bool)
    # bin of 0.95: 60 % of jobs, gap |0.95 - 0.5|; bin of 0.55: 40 %, gap |0.55 - 0.5|
    assert calibration_error(confidence, correct) == pytest.approx(0.6 * 0.45 + 0.4 * 0.05)
