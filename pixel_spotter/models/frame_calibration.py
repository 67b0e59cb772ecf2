"""How sure a frame model is, calibrated on validation frames (``FrameLocalizer``'s buffers, a run's record
``decode.*``): the factors on its predicted sigmas, one per crowding class (``sigma_factors``: each makes its
class's errors one sigma RMS; a close neighbour costs precision the network's sigma underrates), and the RMS
error of its PSF widths (``psf_width_error``: the width of the refinement's prior on each, ``frame_refine.py``)."""

from __future__ import annotations

import math

import numpy as np
import torch

# The crowding classes of a localization, by the distance (px) to the nearest other one in its frame: (name, up
# to), each with its own sigma factor (decode.sigma_scale_<name> in a run's record)
CROWDING = (("close", 3.0), ("near", 6.0), ("alone", math.inf))
MIN_CALIBRATION = 20  # coordinates a class needs on the validation frames for a factor of its own (else the overall)
MIN_WIDTH_ERROR = 0.01  # px: the narrowest PSF width prior (a network that exact still leaves the light a say)


def crowding(xy) -> np.ndarray:
    """(K,) each localization's crowding class (an index into ``CROWDING``) among the (K, 2) ``xy`` of its frame."""
    from pixel_spotter.evaluation.localizations import nearest_other

    edges = np.array([limit for _, limit in CROWDING[:-1]])
    return np.searchsorted(edges, nearest_other(np.asarray(xy, dtype=np.float64).reshape(-1, 2)), side="right")


FRAME_APART = 1e6  # px: each frame's localizations moved this far from the previous frame's (``crowding_of_frames``)


def crowding_of_frames(xys: list) -> list[np.ndarray]:
    """``crowding`` of each frame's (K_i, 2) localizations, all frames at once: one k-d tree over the batch, each
    frame moved ``FRAME_APART`` px from the last, so no neighbour is found in another frame (a batch of frames of a
    few localizations each spends more on a tree per frame than on the search)."""
    points = [np.asarray(xy, dtype=np.float64).reshape(-1, 2) for xy in xys]
    if not points:
        return []
    shifted = np.concatenate([p + [k * FRAME_APART, 0.0] for k, p in enumerate(points)])
    classes = crowding(shifted)
    return np.split(classes, np.cumsum([len(p) for p in points])[:-1])


def matched(model, batches, tally, refined: bool):
    """Each frame of ``batches`` ((images, FrameSets, ...)) as (the model's localizations, its FrameSets, its index
    in them, matched localization indices, matched true indices), matched as ``tally()`` matches; the network's
    answers alone (``refined`` False) or refined as the model is set."""
    from pixel_spotter.evaluation.localizations import match

    was_training, refine = model.training, model.refine
    model.eval()
    if not refined:
        model.refine = 0  # the network's own answers: a refined localization's come from its fit
    scoring = tally()
    try:
        for images, sets, *_ in batches:
            for i, found in enumerate(model.localize(images)):
                pairs = match(found["xy"], sets.frame(i), scoring.tolerance_px, scoring.method)
                if pairs:
                    yield found, sets, i, *(np.array(k) for k in zip(*pairs))
    finally:
        model.train(was_training)
        model.refine = refine


@torch.inference_mode()
def sigma_factors(model, batches, tally, refined: bool = False) -> torch.Tensor:
    """The factors on the predicted sigmas, one per crowding class, that make the errors of the localizations of
    ``batches`` (validation frames) one sigma RMS in each class: each class's z RMS at factor 1 (the overall one
    for a class with fewer than ``MIN_CALIBRATION`` coordinates; 1 when there is nothing to calibrate). The
    network's (``sigma_scale``), or with ``refined`` those of the refined localizations' sigmas
    (``refined_sigma_scale``, the refinement as set)."""
    scale = model.refined_sigma_scale if refined else model.sigma_scale
    before = scale.clone()
    scale.fill_(1.0)
    squared, counts = np.zeros(len(CROWDING)), np.zeros(len(CROWDING))
    try:
        for found, sets, i, f, t in matched(model, batches, tally, refined):
            if found["sigma"] is None:
                continue
            if refined:  # the localizations whose sigma is a fit's
                keep = found.get("refined", np.zeros(len(found["xy"]), dtype=bool))[f]
                f, t = f[keep], t[keep]
            z = (found["xy"][f] - sets.frame(i)[t]) / np.maximum(found["sigma"][f], 1e-12)
            classes = crowding(found["xy"])[f]
            np.add.at(squared, classes, (z ** 2).sum(axis=1))
            np.add.at(counts, classes, 2)
    finally:
        scale.copy_(before)
    overall = math.sqrt(squared.sum() / counts.sum()) if counts.sum() else 1.0
    factors = [math.sqrt(q / n) if n >= MIN_CALIBRATION else overall for q, n in zip(squared, counts)]
    factors = [v if math.isfinite(v) and 0.01 <= v <= 100 else 1.0 for v in factors]
    return torch.tensor(factors, dtype=model.sigma_scale.dtype)


@torch.inference_mode()
def psf_width_error(model, batches, tally) -> float:
    """The RMS error (px) of the network's PSF widths over its matched localizations of ``batches`` (validation
    frames), at least ``MIN_WIDTH_ERROR``: the refinement's prior width; 0 (no prior) when nothing matched or the
    model or task has no widths."""
    errors = [found["psf_sigma"][f] - sets.psf_sigma[i][sets.mask[i]].double().cpu().numpy()[t]
              for found, sets, i, f, t in matched(model, batches, tally, False)
              if found["psf_sigma"] is not None and sets.psf_sigma is not None]
    errors = np.concatenate(errors) if errors else np.zeros(0)
    value = math.sqrt(float(np.mean(errors ** 2))) if len(errors) else 0.0
    return max(value, MIN_WIDTH_ERROR) if math.isfinite(value) and value > 0 else 0.0
