"""Tests for fedtrain.metrics against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedtrain.errors import ConfigError
from fedtrain.metrics import evaluate_predictions, one_vs_all_confusion, roc_curves

NAMES3 = ["A", "B", "C"]
# Hand example: 9 samples, 3 classes.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 1, 2, 2, 0, 0])
# Rows = true class, columns = predicted class, counted by hand from the pairs above.
CM = [[2, 1, 0], [0, 2, 0], [2, 0, 2]]
# precision_k = CM[k,k] / column sum, recall_k = CM[k,k] / row sum, f1 = 2pr / (p + r).
PRECISION = [2 / 4, 2 / 3, 2 / 2]
RECALL = [2 / 3, 2 / 2, 2 / 4]
F1 = [4 / 7, 4 / 5, 2 / 3]
SUPPORT = [3, 2, 4]


def probs_for(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Softmax-like rows whose argmax is preds."""
    probs = np.full((len(preds), num_classes), 0.3 / (num_classes - 1))
    probs[np.arange(len(preds)), preds] = 0.7
    return probs.astype(np.float32)


def test_hand_computed_example() -> None:
    out = evaluate_predictions(Y_TRUE, probs_for(Y_PRED, 3), NAMES3)
    assert out["confusion_matrix"] == CM
    assert out["num_samples"] == 9
    assert out["accuracy"] == pytest.approx(6 / 9)
    for k, name in enumerate(NAMES3):
        c = out["per_class"][name]
        assert c["precision"] == pytest.approx(PRECISION[k])
        assert c["recall"] == pytest.approx(RECALL[k])
        assert c["f1"] == pytest.approx(F1[k])
        assert c["support"] == SUPPORT[k]
    assert out["macro_precision"] == pytest.approx(sum(PRECISION) / 3)
    assert out["macro_recall"] == pytest.approx(sum(RECALL) / 3)
    assert out["macro_f1"] == pytest.approx(sum(F1) / 3)
    assert out["weighted_f1"] == pytest.approx(sum(f * s for f, s in zip(F1, SUPPORT)) / 9)


def test_result_is_plain_json() -> None:
    out = evaluate_predictions(Y_TRUE, probs_for(Y_PRED, 3), NAMES3)
    assert json.loads(json.dumps(out)) == out
    assert type(out["accuracy"]) is float
    assert type(out["per_class"]["A"]["support"]) is int
    assert all(type(v) is int for row in out["confusion_matrix"] for v in row)


def test_auc_perfect_and_reversed() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.2, 0.8, 0.9])
    perfect = evaluate_predictions(y, np.stack([1 - p1, p1], axis=1), ["neg", "pos"])
    assert perfect["macro_auc"] == 1.0
    assert perfect["per_class"]["pos"]["auc"] == 1.0
    assert perfect["per_class"]["neg"]["auc"] == 1.0
    reversed_ = evaluate_predictions(y, np.stack([p1, 1 - p1], axis=1), ["neg", "pos"])
    assert reversed_["macro_auc"] == 0.0
    assert reversed_["per_class"]["pos"]["auc"] == 0.0
    assert reversed_["accuracy"] == 0.0


def test_absent_class_has_no_auc_and_zero_support() -> None:
    names = ["A", "B", "C", "D"]
    out = evaluate_predictions(Y_TRUE, probs_for(Y_PRED, 4), names)
    d = out["per_class"]["D"]
    assert d == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "auc": None}
    assert out["confusion_matrix"][3] == [0, 0, 0, 0]
    assert [row[3] for row in out["confusion_matrix"]] == [0, 0, 0, 0]
    assert len(out["confusion_matrix"]) == 4
    # Macro averages cover classes seen in y_true or predictions, as scikit-learn does by default.
    assert out["macro_f1"] == pytest.approx(sum(F1) / 3)
    assert out["macro_auc"] == pytest.approx(np.mean([out["per_class"][n]["auc"] for n in "ABC"]))


def test_single_class_present_gives_no_auc() -> None:
    y = np.array([1, 1, 1])
    out = evaluate_predictions(y, probs_for(np.array([1, 1, 0]), 2), ["x", "y"])
    assert out["per_class"]["y"]["auc"] is None
    assert out["per_class"]["x"]["auc"] is None
    assert out["macro_auc"] is None
    assert roc_curves(y, probs_for(np.array([1, 1, 0]), 2)) == {}


@pytest.mark.parametrize(
    ("y", "probs", "names", "word"),
    [
        (np.zeros((2, 2), dtype=int), np.full((2, 2), 0.5), ["a", "b"], "y_true"),
        (np.array([0, 1]), np.full(2, 0.5), ["a", "b"], "probs"),
        (np.array([0, 1, 1]), np.full((2, 2), 0.5), ["a", "b"], "probs"),
        (np.array([0, 1]), np.full((2, 3), 0.3), ["a", "b"], "class_names"),
        (np.array([0, 2]), np.full((2, 2), 0.5), ["a", "b"], "y_true"),
        (np.array([], dtype=int), np.zeros((0, 2)), ["a", "b"], "y_true"),
        (np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]), ["a", "b"], "probs"),
        (np.array([0.5, 1.0]), np.full((2, 2), 0.5), ["a", "b"], "y_true"),
    ],
)
def test_shape_errors_name_the_argument(y: np.ndarray, probs: np.ndarray, names: list[str], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        evaluate_predictions(y, probs, names)


def test_one_vs_all_hand_values_and_sums() -> None:
    cm = np.array(CM)
    # Class A: TP=2, FN=1 (row rest), FP=2 (column rest), TN=9-5=4.
    assert one_vs_all_confusion(cm, 0).tolist() == [[4, 2], [1, 2]]
    for k in range(3):
        binary = one_vs_all_confusion(cm, k)
        assert binary.shape == (2, 2)
        assert binary.sum() == cm.sum()
        assert binary[1].sum() == cm[k].sum()  # FN + TP = support of k
        assert binary[:, 1].sum() == cm[:, k].sum()  # FP + TP = predicted as k
    with pytest.raises(ConfigError, match="k must"):
        one_vs_all_confusion(cm, 3)
    with pytest.raises(ConfigError, match="confusion"):
        one_vs_all_confusion(np.zeros((2, 3)), 0)


def test_roc_curves_match_auc() -> None:
    probs = probs_for(Y_PRED, 3).astype(np.float64)
    probs[:, 0] += np.linspace(0, 0.01, 9)  # break ties a little
    curves = roc_curves(Y_TRUE, probs)
    assert set(curves) == {0, 1, 2}
    out = evaluate_predictions(Y_TRUE, probs, NAMES3)
    for k, (fpr, tpr, area) in curves.items():
        assert fpr[0] == 0.0 and tpr[-1] == 1.0
        assert area == pytest.approx(out["per_class"][NAMES3[k]]["auc"])
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.2, 0.8, 0.9])
    assert roc_curves(y, np.stack([1 - p1, p1], axis=1))[1][2] == 1.0
    with pytest.raises(ConfigError, match="probs"):
        roc_curves(y, p1)
