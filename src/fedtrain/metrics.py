"""Classification metrics for a round's test predictions (paper Table 1 and Figures 7-9)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from sklearn.metrics import auc as _area_under_curve
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score, roc_curve

from .errors import ConfigError

__all__ = ["evaluate_predictions", "one_vs_all_confusion", "roc_curves"]


def _check_labels(y_true: Any) -> np.ndarray:
    """Return y_true as a 1-D int64 array or raise ConfigError naming `y_true`."""
    arr = np.asarray(y_true)
    if arr.ndim != 1:
        raise ConfigError(f"y_true must be 1-D class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise ConfigError("y_true is empty; evaluate on at least one sample")
    if arr.dtype.kind == "f" and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ConfigError("y_true must hold integer class indices, got non-integer values")
    if arr.dtype.kind not in "iuf" and arr.dtype != np.bool_:
        raise ConfigError(f"y_true must hold integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _check_inputs(y_true: Any, probs: Any, num_classes: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate (y_true, probs) shapes and label range; return them as numpy arrays."""
    labels = _check_labels(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ConfigError(f"probs must be 2-D (num_samples, num_classes), got shape {p.shape}")
    if p.shape[0] != labels.shape[0]:
        raise ConfigError(f"probs has {p.shape[0]} rows but y_true has {labels.shape[0]} samples")
    if p.shape[1] < 2:
        raise ConfigError(f"probs must have at least 2 class columns, got {p.shape[1]}")
    if num_classes is not None and p.shape[1] != num_classes:
        raise ConfigError(f"probs has {p.shape[1]} class columns but class_names has {num_classes} names")
    if not np.all(np.isfinite(p)):
        raise ConfigError("probs contains NaN or infinite values")
    if labels.min() < 0 or labels.max() >= p.shape[1]:
        raise ConfigError(f"y_true values must lie in [0, {p.shape[1] - 1}], got {labels.min()}..{labels.max()}")
    return labels, p


def _class_auc(labels: np.ndarray, scores: np.ndarray, k: int) -> Optional[float]:
    """One-vs-all ROC AUC of class k, or None when y_true lacks positives or negatives."""
    positive = labels == k
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, scores[:, k]))


def evaluate_predictions(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted scores, per-class scores, AUC and confusion matrix as plain JSON types."""
    names = [str(n) for n in class_names]
    if len(names) < 2:
        raise ConfigError(f"class_names must name at least 2 classes, got {len(names)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"class_names must be unique, got {names}")
    labels, p = _check_inputs(y_true, probs, len(names))
    num_classes = len(names)
    preds = p.argmax(axis=1)
    all_labels = list(range(num_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, preds, labels=all_labels, zero_division=0
    )
    # Macro averages follow scikit-learn's default: classes seen in y_true or in the predictions.
    seen = np.union1d(labels, preds)
    aucs = [_class_auc(labels, p, k) for k in all_labels]
    defined = [a for a in aucs if a is not None]
    per_class = {
        name: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
            "auc": aucs[k],
        }
        for k, name in enumerate(names)
    }
    cm = confusion_matrix(labels, preds, labels=all_labels)
    return {
        "accuracy": float(np.mean(preds == labels)),
        "macro_precision": float(np.mean(precision[seen])),
        "macro_recall": float(np.mean(recall[seen])),
        "macro_f1": float(np.mean(f1[seen])),
        "weighted_f1": float(np.sum(f1 * support) / np.sum(support)),
        "macro_auc": float(np.mean(defined)) if defined else None,
        "per_class": per_class,
        "confusion_matrix": [[int(v) for v in row] for row in cm],
        "num_samples": int(labels.shape[0]),
    }


def one_vs_all_confusion(confusion: np.ndarray, k: int) -> np.ndarray:
    """Binary confusion matrix [[TN, FP], [FN, TP]] of class k against all other classes."""
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 2:
        raise ConfigError(f"confusion must be a square (C, C) matrix with C >= 2, got shape {cm.shape}")
    if not 0 <= k < cm.shape[0]:
        raise ConfigError(f"k must lie in [0, {cm.shape[0] - 1}], got {k}")
    tp = int(cm[k, k])
    fn = int(cm[k, :].sum()) - tp
    fp = int(cm[:, k].sum()) - tp
    tn = int(cm.sum()) - tp - fn - fp
    return np.array([[tn, fp], [fn, tp]], dtype=np.int64)


def roc_curves(y_true: np.ndarray, probs: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray, float]]:
    """One-vs-all ROC curve (fpr, tpr, auc) for every class that has positives and negatives."""
    labels, p = _check_inputs(y_true, probs)
    curves: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    for k in range(p.shape[1]):
        positive = labels == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, p[:, k])
        curves[k] = (fpr, tpr, float(_area_under_curve(fpr, tpr)))
    return curves
