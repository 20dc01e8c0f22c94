"""Metrics, bootstrap intervals, paired differences and verdicts over per-frame errors (:class:`FrameErrors`).

Every metric is a ratio of sums over frames, f(sum num / sum den): energy MAE / RMSE average the per-atom energy
errors over frames (den = 1 per frame); force MAE / RMSE average over all atoms (num = per-frame sum of |dF| or
|dF|^2, den = the frame's atom count), with a square root for RMSE. Resampling is by bootstrap unit: the group
(structure / trajectory, by default), because frames of one trajectory and atoms of one structure are correlated;
each resample is a vector of counts over the units, so a metric of a resample is a weighted ratio of group sums.
Intervals are percentile intervals; comparisons are paired (identical frames, identical resampled groups).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mo_transfer.engine.records import FrameErrors

METRICS: tuple[str, ...] = ("energy_mae", "energy_rmse", "force_mae", "force_rmse")
#: Units of each metric, for table headers.
UNITS: dict[str, str] = {"energy_mae": "meV/atom", "energy_rmse": "meV/atom", "force_mae": "meV/A",
                         "force_rmse": "meV/A"}
VERDICTS: tuple[str, ...] = ("holds", "fails", "not resolved")
RESAMPLE_UNITS: tuple[str, ...] = ("group", "frame")


# ----------------------------------------------------------------------------------------------------------------
# Metrics as ratios of sums
# ----------------------------------------------------------------------------------------------------------------


def _terms(errors: FrameErrors, metric: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-frame numerator and denominator of ``metric`` and whether to take the square root of the ratio."""
    one = np.ones(len(errors.frame_ids))
    e = errors.energy_error_mev_per_atom
    if metric == "energy_mae":
        return np.abs(e), one, False
    if metric == "energy_rmse":
        return e ** 2, one, True
    n = errors.n_atoms.astype(float)
    if metric == "force_mae":
        return errors.force_abs_sum_mev_per_ang, n, False
    if metric == "force_rmse":
        return errors.force_sq_sum_mev2_per_ang2, n, True
    raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")


def _finish(num: np.ndarray, den: np.ndarray, root: bool) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = num / den
    return np.sqrt(ratio) if root else ratio


def metric_value(errors: FrameErrors, metric: str) -> float:
    """One metric of all frames in ``errors`` (NaN when a frame lacks the quantity, e.g. no predicted forces)."""
    num, den, root = _terms(errors, metric)
    if len(num) == 0:
        raise ValueError(f"{metric} of zero frames is undefined")
    return float(_finish(np.sum(num), np.sum(den), root))


def energy_mae(errors: FrameErrors) -> float:
    """Mean over frames of |energy error| (meV/atom)."""
    return metric_value(errors, "energy_mae")


def energy_rmse(errors: FrameErrors) -> float:
    """Root mean square over frames of the energy error (meV/atom)."""
    return metric_value(errors, "energy_rmse")


def force_mae(errors: FrameErrors) -> float:
    """Mean over all atoms of |dF| (meV/A): sum of per-frame sums over the total atom count."""
    return metric_value(errors, "force_mae")


def force_rmse(errors: FrameErrors) -> float:
    """Root of the mean over all atoms of |dF|^2 (meV/A)."""
    return metric_value(errors, "force_rmse")


def concat(parts: Iterable[FrameErrors]) -> FrameErrors:
    """The errors of several disjoint test sets as one (e.g. the K folds of a cross-validation, so that every
    structure of the pool enters one interval); ValueError if a frame occurs in two parts."""
    parts = list(parts)
    if not parts:
        raise ValueError("nothing to concatenate")
    ids = [f for p in parts for f in p.frame_ids]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(f for f in ids if f in seen or seen.add(f))
        raise ValueError(f"{len(ids) - len(set(ids))} frame(s) occur in more than one part, e.g. {dup!r}")
    return FrameErrors(ids, [g for p in parts for g in p.group_ids],
                       np.concatenate([p.n_atoms for p in parts]),
                       np.concatenate([p.energy_error_mev_per_atom for p in parts]),
                       np.concatenate([p.force_abs_sum_mev_per_ang for p in parts]),
                       np.concatenate([p.force_sq_sum_mev2_per_ang2 for p in parts]))


# ----------------------------------------------------------------------------------------------------------------
# Intervals
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval and what it was computed from.

    ``low``/``high`` are NaN when they cannot be computed (fewer than two resampling units, or NaN errors)."""

    estimate: float
    low: float
    high: float
    level: float
    n_frames: int
    n_groups: int
    n_boot: int
    by: str = "group"

    @property
    def includes_zero(self) -> bool:
        """True unless the whole interval lies on one side of zero (an undefined interval cannot exclude it)."""
        return not (self.high < 0.0 or self.low > 0.0)

    def text(self, digits: int = 1) -> str:
        """Short form for tables: ``"36.4 [29.1, 44.0]"``."""
        def fmt(v: float) -> str:
            return f"{v:.{digits}f}" if np.isfinite(v) else "n/a"
        return f"{fmt(self.estimate)} [{fmt(self.low)}, {fmt(self.high)}]"

    def to_dict(self) -> dict:
        """JSON-safe dict (non-finite numbers as None)."""
        d = dataclasses.asdict(self)
        for key in ("estimate", "low", "high"):
            d[key] = float(d[key]) if np.isfinite(d[key]) else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Interval":
        d = dict(d)
        for key in ("estimate", "low", "high"):
            d[key] = float("nan") if d[key] is None else float(d[key])
        return cls(**d)


def _unit_weights(unit_ids: list[str], n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of each frame's unit (units in sorted order, so the frame order never matters) and the resampling
    counts of the units, shape (n_boot, n_units): each row draws n_units units with replacement."""
    units, index = np.unique(np.asarray(unit_ids, dtype=str), return_inverse=True)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(units), np.full(len(units), 1.0 / len(units)), size=n_boot)
    return index, counts.astype(float)


def _replicates(errors: FrameErrors, metric: str, index: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The metric of each bootstrap resample: weighted ratio of per-unit sums."""
    num, den, root = _terms(errors, metric)
    n_units = counts.shape[1]
    return _finish(counts @ np.bincount(index, num, n_units), counts @ np.bincount(index, den, n_units), root)


def _unit_ids(errors: FrameErrors, by: str) -> list[str]:
    if by == "group":
        return list(errors.group_ids)
    if by == "frame":
        return list(errors.frame_ids)
    raise ValueError(f"unknown resampling unit {by!r}; allowed: {', '.join(RESAMPLE_UNITS)}")


def _check(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _interval(estimate: float, reps: np.ndarray, level: float, n_frames: int, n_units: int, n_groups: int,
              n_boot: int, by: str) -> Interval:
    if n_units < 2 or not np.isfinite(estimate) or not np.all(np.isfinite(reps)):
        low = high = float("nan")
    else:
        low, high = (float(q) for q in np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0]))
    return Interval(float(estimate), low, high, level, n_frames, n_groups, n_boot, by)


def bootstrap(errors: FrameErrors, metric: str, n_boot: int = 2000, level: float = 0.95, seed: int = 42,
              by: str = "group") -> Interval:
    """``metric`` of ``errors`` with a percentile bootstrap interval resampling groups (or frames, ``by="frame"``)
    with replacement; deterministic for a given seed and set of frames."""
    _check(n_boot, level)
    estimate = metric_value(errors, metric)
    index, counts = _unit_weights(_unit_ids(errors, by), n_boot, seed)
    reps = _replicates(errors, metric, index, counts)
    return _interval(estimate, reps, level, len(errors.frame_ids), counts.shape[1], len(set(errors.group_ids)),
                     n_boot, by)


def intervals(errors: FrameErrors, metrics: Iterable[str] = METRICS, **kwargs) -> dict[str, Interval]:
    """:func:`bootstrap` of several metrics (same seed, so the same resamples for each)."""
    return {m: bootstrap(errors, m, **kwargs) for m in metrics}


# ----------------------------------------------------------------------------------------------------------------
# Comparisons on identical frames
# ----------------------------------------------------------------------------------------------------------------


def align(a: FrameErrors, b: FrameErrors) -> FrameErrors:
    """``b`` reordered to ``a``'s frame order; ValueError unless both hold exactly the same frames in the same
    groups (a comparison on different frames would mix model differences with test-set differences)."""
    ids_a, ids_b = set(a.frame_ids), set(b.frame_ids)
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
        example = (only_a or only_b)[0]
        raise ValueError(f"paired comparison needs identical frames: {len(a.frame_ids)} vs {len(b.frame_ids)} "
                         f"frames, {len(only_a)} only in the first and {len(only_b)} only in the second "
                         f"(e.g. {example!r})")
    b = b.subset(a.frame_ids)
    bad = [f for f, ga, gb in zip(a.frame_ids, a.group_ids, b.group_ids) if ga != gb]
    if bad:
        raise ValueError(f"{len(bad)} frame(s) belong to different groups in the two errors, e.g. {bad[0]!r}")
    return b


def _joint(a: FrameErrors, b: FrameErrors, metric: str, n_boot: int, level: float, seed: int, by: str,
           combine) -> Interval:
    _check(n_boot, level)
    b = align(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = combine(metric_value(a, metric), metric_value(b, metric))
    index, counts = _unit_weights(_unit_ids(a, by), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = combine(_replicates(a, metric, index, counts), _replicates(b, metric, index, counts))
    return _interval(float(estimate), reps, level, len(a.frame_ids), counts.shape[1], len(set(a.group_ids)),
                     n_boot, by)


def paired_difference(a: FrameErrors, b: FrameErrors, metric: str, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 42, by: str = "group") -> Interval:
    """metric(a) - metric(b) on identical frames, with a joint bootstrap interval (the same resampled groups for
    both). Negative means ``a`` has the lower error."""
    return _joint(a, b, metric, n_boot, level, seed, by, lambda x, y: np.subtract(x, y))


def ratio(a: FrameErrors, b: FrameErrors, metric: str, n_boot: int = 2000, level: float = 0.95, seed: int = 42,
          by: str = "group") -> Interval:
    """metric(b) / metric(a) on identical frames with a joint bootstrap interval: "a is N times lower than b".
    Judge it with ``verdict(..., expect="positive", null=1.0)``, or against the claimed N."""
    return _joint(a, b, metric, n_boot, level, seed, by, lambda x, y: np.divide(y, x))


def unpaired_difference(a: FrameErrors, b: FrameErrors, metric: str, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 42, by: str = "group") -> Interval:
    """metric(a) - metric(b) resampling each independently: what an unpaired comparison would claim. Shown only
    to contrast with :func:`paired_difference`; ``n_frames``/``n_groups`` are those of ``a``."""
    _check(n_boot, level)
    estimate = metric_value(a, metric) - metric_value(b, metric)
    seed_a, seed_b = np.random.SeedSequence(seed).generate_state(2)
    ia, ca = _unit_weights(_unit_ids(a, by), n_boot, int(seed_a))
    ib, cb = _unit_weights(_unit_ids(b, by), n_boot, int(seed_b))
    reps = _replicates(a, metric, ia, ca) - _replicates(b, metric, ib, cb)
    return _interval(estimate, reps, level, len(a.frame_ids), min(ca.shape[1], cb.shape[1]), len(set(a.group_ids)),
                     n_boot, by)


# ----------------------------------------------------------------------------------------------------------------
# Verdicts
# ----------------------------------------------------------------------------------------------------------------


def verdict(interval: Interval, expect: str = "negative", null: float = 0.0) -> str:
    """Verdict on a claim stated as an interval: with ``expect="negative"`` (a claim "A lower than B" as the
    difference A - B) it holds when the whole interval is below ``null``, fails when the whole interval is above
    it, and is "not resolved" when the interval includes ``null`` or is undefined. ``expect="positive"`` mirrors."""
    if expect not in ("negative", "positive"):
        raise ValueError(f"expect must be 'negative' or 'positive', not {expect!r}")
    low, high = interval.low, interval.high
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not resolved"
    below, above = high < null, low > null
    if expect == "negative":
        return "holds" if below else "fails" if above else "not resolved"
    return "holds" if above else "fails" if below else "not resolved"


def tally(verdicts: Iterable[str]) -> dict[str, int]:
    """Counts of each verdict, all three always present (ValueError on anything else)."""
    counts = dict.fromkeys(VERDICTS, 0)
    for v in verdicts:
        if v not in counts:
            raise ValueError(f"unknown verdict {v!r}; allowed: {', '.join(VERDICTS)}")
        counts[v] += 1
    return counts
