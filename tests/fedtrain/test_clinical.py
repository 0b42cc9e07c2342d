"""The report's diagnostic statistics: Wilson intervals, per-class rates, bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from fedtrain.clinical import balanced_accuracy, bootstrap_intervals, per_class, wilson


@pytest.mark.parametrize("k, n, low, high", [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (50, 100, 0.4038, 0.5962)])
def test_wilson_matches_published_values(k, n, low, high):
    interval = wilson(k, n)
    assert interval.value == k / n
    assert interval.low == pytest.approx(low, abs=1e-4) and interval.high == pytest.approx(high, abs=1e-4)


def test_wilson_of_nothing_is_undefined():
    assert math.isnan(wilson(0, 0).value) and wilson(0, 0).percent() == "n/a"


def test_per_class_rates_and_balanced_accuracy_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 3, 200))
    confusion = confusion_matrix(y_true, y_pred, labels=[0, 1, 2])
    assert balanced_accuracy(confusion) == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    for k, rates in enumerate(per_class(confusion, ["a", "b", "c"])):
        positive, predicted = y_true == k, y_pred == k
        assert rates.support == positive.sum()
        assert rates.sensitivity.value == pytest.approx((positive & predicted).sum() / positive.sum())
        assert rates.specificity.value == pytest.approx((~positive & ~predicted).sum() / (~positive).sum())
        assert rates.ppv.value == pytest.approx((positive & predicted).sum() / predicted.sum())
        assert rates.npv.value == pytest.approx((~positive & ~predicted).sum() / (~predicted).sum())
        assert rates.sensitivity.low <= rates.sensitivity.value <= rates.sensitivity.high


def test_bootstrap_intervals_hold_the_point_values_and_repeat():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, 120)
    logits = rng.normal(size=(120, 3)) + 1.5 * np.eye(3)[y_true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    aucs, macro, balanced = bootstrap_intervals(y_true, probs, 3, resamples=200)
    for k, interval in enumerate(aucs):
        assert interval.value == pytest.approx(roc_auc_score(y_true == k, probs[:, k]))
        assert interval.low < interval.value < interval.high
    assert balanced.value == pytest.approx(balanced_accuracy_score(y_true, probs.argmax(axis=1)))
    assert macro.low < macro.value < macro.high
    again = bootstrap_intervals(y_true, probs, 3, resamples=200)
    assert again[1] == macro  # fixed seed: the same report every time it is drawn
    perfect = bootstrap_intervals(y_true, np.eye(3)[y_true], 3, resamples=50)[0]
    assert all((i.value, i.low, i.high) == (1.0, 1.0, 1.0) for i in perfect)


def test_a_class_absent_from_the_test_set_has_no_auc():
    y_true = np.array([0, 0, 1, 1, 0, 1])
    probs = np.tile([0.5, 0.3, 0.2], (6, 1))
    aucs, _, _ = bootstrap_intervals(y_true, probs, 3, resamples=20)
    assert math.isnan(aucs[2].value) and aucs[2].fixed() == "n/a"
