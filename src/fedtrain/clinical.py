"""Diagnostic statistics with 95% intervals from a confusion matrix and saved predictions (pure functions).

Proportions (sensitivity, specificity, PPV, NPV, accuracy) get Wilson score
intervals; the AUC of each class (one against the rest), balanced accuracy and
macro AUC get percentile bootstrap intervals over the test images, resampled
with a fixed seed so a report is the same every time it is drawn.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.stats import rankdata

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20250101


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% interval (NaN where undefined, e.g. 0 of 0)."""

    value: float
    low: float
    high: float

    def percent(self) -> str:
        """"97.3 (94.1-98.8)" in percent, or "n/a"."""
        if math.isnan(self.value):
            return "n/a"
        return f"{100 * self.value:.1f} ({100 * self.low:.1f}-{100 * self.high:.1f})"

    def fixed(self, digits: int = 3) -> str:
        """"0.912 (0.871-0.948)", or "n/a"."""
        if math.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


NAN = Interval(math.nan, math.nan, math.nan)


def wilson(successes: int, trials: int, z: float = Z_95) -> Interval:
    """successes / trials with the Wilson score interval (NaN for 0 trials)."""
    if trials <= 0:
        return NAN
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class ClassRates:
    """One class against the rest: counts and rates with intervals."""

    name: str
    support: int
    sensitivity: Interval
    specificity: Interval
    ppv: Interval
    npv: Interval
    f1: float
    auc: Interval


def class_rates(confusion: np.ndarray, k: int) -> tuple[int, int, int, int]:
    """(TP, FN, FP, TN) of class k from a confusion matrix (rows true, columns predicted)."""
    tp = int(confusion[k, k])
    fn = int(confusion[k].sum()) - tp
    fp = int(confusion[:, k].sum()) - tp
    tn = int(confusion.sum()) - tp - fn - fp
    return tp, fn, fp, tn


def balanced_accuracy(confusion: np.ndarray) -> float:
    """Mean of the per-class sensitivities over classes present in the test set."""
    support = confusion.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(confusion)[present] / support[present])) if present.any() else math.nan


def _aucs_batched(y: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """AUC of class k for each row of y (R, n) and scores (R, n): Mann-Whitney, NaN where one-sided."""
    positive = y == k
    n_pos = positive.sum(axis=1).astype(np.float64)
    n_neg = y.shape[1] - n_pos
    ranks = rankdata(scores, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _balanced_batched(y: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Balanced accuracy of each row of y and predicted (R, n)."""
    support = np.stack([(y == k).sum(axis=1) for k in range(num_classes)], axis=1)
    correct = np.stack([((y == k) & (predicted == k)).sum(axis=1) for k in range(num_classes)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, correct / np.maximum(support, 1), np.nan)
    return np.nanmean(recall, axis=1)


def bootstrap_intervals(y_true: np.ndarray, probs: np.ndarray, num_classes: int,
                        resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> tuple[list[Interval], Interval, Interval]:
    """(per-class AUC, macro AUC, balanced accuracy), each with a percentile bootstrap 95% interval."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    predicted = probs.argmax(axis=1)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([np.arange(y_true.size)[None], rng.integers(0, y_true.size, (resamples, y_true.size))])
    y = y_true[idx]  # row 0: the test set itself (the point values), then the resamples
    aucs = np.stack([_aucs_batched(y, probs[idx, k], k) for k in range(num_classes)], axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where no class has an AUC
        macro = np.nanmean(aucs, axis=1)
        balanced = _balanced_batched(y, predicted[idx], num_classes)
    table = np.column_stack([aucs, macro, balanced])
    out = []
    for j in range(table.shape[1]):
        value, column = table[0, j], table[1:, j]
        column = column[~np.isnan(column)]
        if math.isnan(value):
            out.append(NAN)
        elif column.size < resamples // 2:
            out.append(Interval(float(value), math.nan, math.nan))
        else:
            low, high = np.percentile(column, [2.5, 97.5])
            out.append(Interval(float(value), float(low), float(high)))
    return out[:num_classes], out[num_classes], out[num_classes + 1]


def per_class(confusion: np.ndarray, class_names: Sequence[str],
              aucs: Optional[Sequence[Interval]] = None) -> list[ClassRates]:
    """Sensitivity, specificity, PPV, NPV (Wilson intervals), F1 and AUC of every class."""
    rows = []
    for k, name in enumerate(class_names):
        tp, fn, fp, tn = class_rates(confusion, k)
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else math.nan
        rows.append(ClassRates(name, tp + fn, wilson(tp, tp + fn), wilson(tn, tn + fp), wilson(tp, tp + fp),
                               wilson(tn, tn + fn), f1, aucs[k] if aucs is not None else NAN))
    return rows
