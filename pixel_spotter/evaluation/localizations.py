"""Scoring many localizations per frame against the ground truth, as the localization-microscopy challenge does.

The SMLM Challenge 2016 (Sage et al., Nature Methods 2019) matches, frame by frame, each localization to at most
one true emitter within a tolerance (250 nm), then reports the Jaccard index JI = TP / (TP + FP + FN), the
lateral RMSE of the matched pairs and the efficiency E = 100 - sqrt((100 (1 - JI))^2 + (alpha RMSE_nm)^2), with
alpha = 1 per nm. Two matchings (``METHODS``):

- ``greedy``: the challenge's nearest-first: every pair within the tolerance, shortest first, taken when neither
  end is taken yet;
- ``hungarian``: the assignment with the most pairs within the tolerance and, among those, the smallest total
  distance (``scipy.optimize.linear_sum_assignment`` with out-of-tolerance pairs priced out). Greedy can miss
  a pair that a crowded frame allows (tests/evaluation/test_localizations.py has one); the Hungarian one never
  finds fewer pairs.

Optionally, as the challenge does, points within ``border`` of the frame's edge are left out of both sets
before matching. This module is the one owner of these numbers; the emitter tasks and their report use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("hungarian", "greedy")
ALPHA_PER_NM = 1.0  # the challenge's weight of the RMSE in the efficiency
ISOLATION = 2.0  # a true emitter is isolated when no other is within this many matching tolerances (500 nm)
# the calibration curve's bins of predicted sigma (px, per coordinate): a factor sqrt(2) apart, 0.02 to 2.56 px
SIGMA_EDGES = np.geomspace(0.02, 2.56, 15)
MIN_BIN = 20  # coordinates a bin needs to be a point of the curve


def nearest_other(points: np.ndarray) -> np.ndarray:
    """(N,) each point's distance to the nearest other point of its set (inf when it is alone). A k-d tree, not
    all N^2 distances: a large frame holds tens of thousands of localizations."""
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) < 2:
        return np.full(len(points), np.inf)
    return cKDTree(points).query(points, k=2)[0][:, 1]


@dataclass(frozen=True)
class Scores:
    """The challenge's numbers over a set of frames (NaN where they are undefined: no pair, or nothing at all)."""

    tp: int
    fp: int
    fn: int
    rmse_px: float  # lateral RMSE of the matched pairs, sqrt(mean(dx^2 + dy^2))
    pixel_size_nm: float
    # the matched pairs' RMSE over their bound's, sqrt(mean(dx^2 + dy^2) / mean(var_x + var_y)), when ``score``
    # was given each true emitter's bound (1 = at the bound); NaN without pairs or bounds
    rmse_over_bound: float = math.nan

    @property
    def jaccard(self) -> float:
        total = self.tp + self.fp + self.fn
        return self.tp / total if total else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else math.nan

    @property
    def rmse_nm(self) -> float:
        return self.rmse_px * self.pixel_size_nm

    @property
    def efficiency(self) -> float:
        return efficiency(self.jaccard, self.rmse_nm)


def efficiency(jaccard: float, rmse_nm: float, alpha: float = ALPHA_PER_NM) -> float:
    """The challenge's efficiency E (%, 100 at best, negative when bad): 100 - sqrt((100 (1 - JI))^2 + (a RMSE)^2)."""
    return 100.0 - math.hypot(100.0 * (1.0 - jaccard), alpha * rmse_nm)


def _points(points, what: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must be an (N, 2) array of (x, y), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} holds a coordinate that is not a finite number (NaN or inf)")
    return array


def inside_mask(points: np.ndarray, border: float, width: float, height: float) -> np.ndarray:
    """Which points are at least ``border`` from every edge of a width x height frame (pixel coordinates: the
    frame spans -0.5 ... width - 0.5)."""
    x, y = points[:, 0], points[:, 1]
    return (x >= border - 0.5) & (x <= width - 0.5 - border) & (y >= border - 0.5) & (y <= height - 0.5 - border)


def match(found, true, tolerance: float, method: str = "hungarian") -> list[tuple[int, int]]:
    """(index into found, index into true) of each matched pair, at most ``tolerance`` apart (same unit as the
    points)."""
    if method not in METHODS:
        raise ValueError(f"matching method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    found, true = _points(found, "the localizations"), _points(true, "the true positions")
    if not len(found) or not len(true):
        return []
    distance = np.linalg.norm(found[:, None, :] - true[None, :, :], axis=2)
    near = distance <= tolerance
    if method == "greedy":
        pairs, used_f, used_t = [], set(), set()
        order = np.argsort(distance, axis=None, kind="stable")
        for f, t in zip(*np.unravel_index(order, distance.shape)):
            if not near[f, t]:
                break
            if f not in used_f and t not in used_t:
                pairs.append((int(f), int(t)))
                used_f.add(f)
                used_t.add(t)
        return sorted(pairs)
    from scipy.optimize import linear_sum_assignment

    # a pair beyond the tolerance costs more than any set of pairs within it, so the assignment takes as many
    # pairs within the tolerance as there can be, and the shortest among those
    price = 1.0 + tolerance * (min(distance.shape) + 1)
    rows, cols = linear_sum_assignment(np.where(near, distance, price))
    return sorted((int(f), int(t)) for f, t in zip(rows, cols) if near[f, t])


def score(found: Sequence, true: Sequence, tolerance_nm: float = 250.0, pixel_size_nm: float = 100.0,
          method: str = "hungarian", border_nm: float | None = None,
          frame_size: tuple[int, int] | None = None, bounds: Sequence | None = None) -> Scores:
    """The challenge's scores over frames: ``found[i]`` and ``true[i]`` are frame i's localizations and true
    positions, (N, 2) pixel (x, y) each. ``border_nm`` (the challenge used 450 nm) leaves out points that close
    to the edge of a ``frame_size`` = (width, height) frame, in both sets, before matching. ``bounds[i]``: the
    (N,) var_x + var_y (px^2) of each of frame i's true emitters' Cramér–Rao bound (``frames.Frame.bounds``),
    for ``Scores.rmse_over_bound``."""
    if len(found) != len(true):
        raise ValueError(f"{len(found)} frames of localizations against {len(true)} frames of true positions; "
                         "give one entry per frame for both (an empty one for a frame without any)")
    if bounds is not None and len(bounds) != len(true):
        raise ValueError(f"{len(bounds)} frames of bounds against {len(true)} frames of true positions")
    tally = Tally(tolerance_nm, pixel_size_nm, method, border_nm, frame_size)
    for k, (f, t) in enumerate(zip(found, true)):
        tally.add(f, t, None if bounds is None else bounds[k], frame=k)
    return tally.scores(with_bounds=bounds is not None)


class Tally:
    """``score`` one frame at a time (a model's frames come batch by batch): running sums of the matches, plus
    what a set-valued task and a model's own uncertainties are judged by (``summary``)."""

    def __init__(self, tolerance_nm: float = 250.0, pixel_size_nm: float = 100.0, method: str = "hungarian",
                 border_nm: float | None = None, frame_size: tuple[int, int] | None = None):
        if not (tolerance_nm > 0 and pixel_size_nm > 0):
            raise ValueError(f"the tolerance and the pixel size must be > 0, got {tolerance_nm} nm and "
                             f"{pixel_size_nm} nm")
        if border_nm is not None and frame_size is None:
            raise ValueError("a border to leave out needs the frame size (width, height) in pixels")
        if method not in METHODS:
            raise ValueError(f"matching method {method!r} is unknown; choose one of {', '.join(METHODS)}")
        self.tolerance_px, self.pixel_size_nm, self.method = tolerance_nm / pixel_size_nm, float(pixel_size_nm), method
        self.border_px = None if border_nm is None else border_nm / pixel_size_nm
        self.frame_size = frame_size
        self.tp = self.fp = self.fn = self.frames = self.exact_frames = 0
        self.squared = self.bound_sum = 0.0
        # per frame (tp, fp, fn, squared error, bound sum): what ``intervals.py`` resamples frames with
        self.frame_sums: list[tuple[int, int, int, float, float]] = []
        # the same sums over the pairs whose true emitter is isolated (``ISOLATION`` tolerances from any other):
        # how close to the bound the localizations come where crowding does not enter
        self.isolated_squared = self.isolated_bound_sum = 0.0
        # each pair's squared error over its bound with the whole frame unknown at once (``Frame.joint_bounds``),
        # per pair (a sum would be the near-coincident pairs', 1000x), and both bounds' sums over the same pairs
        self.joint_z_squared, self.joint_pairs, self.joint_sum, self.single_sum = 0.0, 0, 0.0, 0.0
        self.z_squared, self.z_within_1, self.z_count = 0.0, 0, 0  # predicted sigmas' errors, per coordinate
        # per bin of predicted sigma (SIGMA_EDGES, plus one below and one above): coordinates, sums of sigma^2
        # and of error^2 (the calibration curve)
        self.bin_count = np.zeros(len(SIGMA_EDGES) + 1, dtype=np.int64)
        self.bin_sigma2, self.bin_error2 = np.zeros(len(SIGMA_EDGES) + 1), np.zeros(len(SIGMA_EDGES) + 1)

    def add(self, found, true, bounds=None, sigmas=None, frame: int | None = None,
            joint_bounds=None) -> list[tuple[int, int]]:
        """Score one frame: ``found`` and ``true`` (N, 2) pixel (x, y); ``bounds`` (N,) its true emitters' var_x +
        var_y (``joint_bounds`` (N,): the same with the whole frame unknown at once, with ``bounds``); ``sigmas``
        (N, 2) each localization's own predicted standard deviation in x and y (px), for the calibration numbers.
        Returns the matched (found, true) index pairs (after any border exclusion)."""
        where = "" if frame is None else f"frame {frame} "
        f, t = _points(found, "the localizations"), _points(true, "the true positions")
        b = None if bounds is None else np.asarray(bounds, dtype=np.float64).reshape(-1)
        if b is not None and len(b) != len(t):
            raise ValueError(f"{where}has {len(t)} true positions but {len(b)} bounds")
        jb = None if joint_bounds is None or b is None else np.asarray(joint_bounds, dtype=np.float64).reshape(-1)
        if jb is not None and len(jb) != len(t):
            raise ValueError(f"{where}has {len(t)} true positions but {len(jb)} joint bounds")
        s = None if sigmas is None else np.asarray(sigmas, dtype=np.float64).reshape(-1, 2)
        if s is not None and len(s) != len(f):
            raise ValueError(f"{where}has {len(f)} localizations but {len(s)} uncertainties")
        nearest = nearest_other(t)  # among all true emitters, also those a border leaves out
        if self.border_px is not None:
            width, height = self.frame_size
            keep_f, keep_t = (inside_mask(p, self.border_px, width, height) for p in (f, t))
            f, t, nearest = f[keep_f], t[keep_t], nearest[keep_t]
            b = None if b is None else b[keep_t]
            jb = None if jb is None else jb[keep_t]
            s = None if s is None else s[keep_f]
        pairs = match(f, t, self.tolerance_px, self.method)
        self.frames += 1
        self.exact_frames += len(pairs) == len(f) == len(t)
        self.tp += len(pairs)
        self.fp += len(f) - len(pairs)
        self.fn += len(t) - len(pairs)
        squared = bound_sum = 0.0
        if pairs:
            i, j = (np.array(k) for k in zip(*pairs))
            error = f[i] - t[j]
            squared = float(np.sum(error ** 2))
            self.squared += squared
            if b is not None:
                bound_sum = float(np.sum(b[j]))
                self.bound_sum += bound_sum
                alone = nearest[j] >= ISOLATION * self.tolerance_px
                self.isolated_squared += float(np.sum(error[alone] ** 2))
                self.isolated_bound_sum += float(np.sum(b[j][alone]))
                if jb is not None:  # a pair without a joint bound (its frame too large, or singular) is left out
                    known = np.isfinite(jb[j])
                    self.joint_z_squared += float(np.sum((error[known] ** 2).sum(axis=1) / np.maximum(jb[j][known],
                                                                                                     1e-300)))
                    self.joint_pairs += int(known.sum())
                    self.joint_sum += float(np.sum(jb[j][known]))
                    self.single_sum += float(np.sum(b[j][known]))
            if s is not None:
                z = error / np.maximum(s[i], 1e-12)
                self.z_squared += float(np.sum(z ** 2))
                self.z_within_1 += int(np.sum(np.abs(z) <= 1.0))
                self.z_count += z.size
                where_bin = np.searchsorted(SIGMA_EDGES, s[i].ravel())
                np.add.at(self.bin_count, where_bin, 1)
                np.add.at(self.bin_sigma2, where_bin, s[i].ravel() ** 2)
                np.add.at(self.bin_error2, where_bin, error.ravel() ** 2)
        self.frame_sums.append((len(pairs), len(f) - len(pairs), len(t) - len(pairs), squared, bound_sum))
        return pairs

    def calibration(self) -> list[dict[str, float]]:
        """The calibration curve of the predicted sigmas (empty without them): per bin of predicted sigma with at
        least ``MIN_BIN`` coordinates, {sigma_nm: the bin's RMS predicted sigma, rms_error_nm: the RMS error of
        its coordinates, coordinates}; calibrated, the two are equal."""
        scale = self.pixel_size_nm
        return [{"sigma_nm": math.sqrt(q / n) * scale, "rms_error_nm": math.sqrt(e / n) * scale,
                 "coordinates": float(n)}
                for n, q, e in zip(self.bin_count, self.bin_sigma2, self.bin_error2) if n >= MIN_BIN]

    def scores(self, with_bounds: bool = True) -> Scores:
        ratio = math.sqrt(self.squared / self.bound_sum) if with_bounds and self.tp and self.bound_sum > 0 else math.nan
        return Scores(tp=self.tp, fp=self.fp, fn=self.fn,
                      rmse_px=math.sqrt(self.squared / self.tp) if self.tp else math.nan,
                      pixel_size_nm=self.pixel_size_nm, rmse_over_bound=ratio)

    def summary(self) -> dict[str, float]:
        """Every number as a flat dict (a run's test metrics): the challenge's, ``exact_frames`` (the share of
        frames whose set was found exactly: every emitter matched, nothing else) and, when sigmas were given,
        ``z_rms`` (RMS of error / predicted sigma over both coordinates of the matched pairs: 1 when the
        uncertainties are calibrated) and ``z_within_1`` (the share within one sigma: 0.683 for a Gaussian);
        with bounds also ``isolated_over_bound``, ``rmse_over_bound`` of the pairs whose true emitter has no
        other within ``ISOLATION`` tolerances (where the single-emitter bound is the bound), and with joint bounds
        ``error_over_joint_bound``: the RMS over the pairs of each one's error over its bound with the whole frame
        unknown at once (1: every pair at the bound of its crowded frame; below 1: a biased estimator, e.g. one that
        answers one emitter between two it cannot tell apart, whose bound is enormous), and ``efficient_over_bound``:
        the ``rmse_over_bound`` an unbiased estimator at those joint bounds would have on the same matched pairs.
        Numbers a set of frames leaves undefined are left out; the Jaccard index and F1 of frames with nothing
        to find, where nothing was found, are 1 (and the efficiency 100); without any matched pair the efficiency
        takes the tolerance as the RMSE (so a model that finds nothing still has one, and the lowest)."""
        s = self.scores(with_bounds=self.bound_sum > 0)
        out = {"jaccard": s.jaccard, "recall": s.recall, "precision": s.precision, "f1": s.f1,
               "rmse_px": s.rmse_px, "rmse_nm": s.rmse_nm, "efficiency": s.efficiency,
               "rmse_over_bound": s.rmse_over_bound,
               "isolated_over_bound": math.sqrt(self.isolated_squared / self.isolated_bound_sum)
               if self.isolated_bound_sum > 0 else math.nan,
               "error_over_joint_bound": math.sqrt(self.joint_z_squared / self.joint_pairs)
               if self.joint_pairs else math.nan,
               "efficient_over_bound": math.sqrt(self.joint_sum / self.single_sum) if self.single_sum > 0 else math.nan,
               "tp": float(s.tp), "fp": float(s.fp), "fn": float(s.fn),
               "exact_frames": self.exact_frames / self.frames if self.frames else math.nan}
        if self.frames and not (s.tp or s.fp or s.fn):  # nothing to find and nothing found: perfect, not undefined
            out["jaccard"] = out["f1"] = 1.0
            out["efficiency"] = 100.0
        elif self.frames and not s.tp:  # no pair: the RMSE taken as the tolerance, the worst a pair could be
            out["efficiency"] = efficiency(s.jaccard, self.tolerance_px * self.pixel_size_nm)
        if self.z_count:
            out["z_rms"] = math.sqrt(self.z_squared / self.z_count)
            out["z_within_1"] = self.z_within_1 / self.z_count
        # undefined numbers (no pair: no RMSE; no bounds: no ratio) are left out, never recorded as NaN
        return {k: v for k, v in out.items() if math.isfinite(v)}
