"""Picasso (Schnitzbauer et al., Nature Protocols 2017; ``pip install -e '.[picasso]'``) as a reference on the
density benchmark's frames: its own identification (``picasso.localize.identify``, net-gradient maxima in a box)
and its Poisson maximum-likelihood Gaussian fit (``fit(..., fitting_method="gaussmle")``, PSF width free), run
headless on a TIFF movie loaded with ``picasso.io.load_movie``, as a user runs it. Its one setting that matters,
the minimum net gradient, is chosen on the validation frames (the best efficiency); the box is its default, 7.

The frames are handed over in photons, written as 16-bit counts above a baseline of ``BASELINE`` (so read noise's
negative photons survive), with Picasso's camera settings saying so (sensitivity 1, gain 1).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np

BOX = 7  # Picasso's default box (px)
BASELINE = 100.0
MIN_NET_GRADIENTS = (50, 100, 150, 250, 500, 1000, 1500, 2000, 3000, 5000, 8000, 12000, 20000)


class _Silence(contextlib.ExitStack):
    """Picasso's imports and fits print notices (audio backends, CPU use) on both streams: keep ours clean."""

    def __enter__(self):
        super().__enter__()
        self.enter_context(contextlib.redirect_stdout(io.StringIO()))
        self.enter_context(contextlib.redirect_stderr(io.StringIO()))
        return self


def _fit_all(photons, lowest: float):
    """Picasso's localizations of (B, H, W) photons, identified above ``lowest``: a DataFrame (frame, x, y,
    net_gradient, ...)."""
    import tifffile

    with _Silence():
        from picasso import io as picasso_io
        from picasso import localize as picasso_localize

        counts = np.clip(np.rint(np.asarray(photons, dtype=np.float64) + BASELINE), 0, 65535).astype(np.uint16)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "frames.tif"
            tifffile.imwrite(path, counts)
            movie, _ = picasso_io.load_movie(str(path))
            found = picasso_localize.identify(movie, lowest, BOX, return_info=False)
            camera = {"Baseline": BASELINE, "Sensitivity": 1.0, "Gain": 1.0, "Pixelsize": 100.0}
            locs, _ = picasso_localize.fit(movie, camera_info=camera, identifications=found, box=BOX,
                                           fitting_method="gaussmle", multiprocess=False)
    return locs


def _per_frame(locs, frames: int, min_net_gradient: float) -> list[np.ndarray]:
    """Each frame's (K, 2) (x, y) of Picasso's table (its columns frame, x, y, net_gradient) above the gradient."""
    out = [np.zeros((0, 2)) for _ in range(frames)]
    if locs is None:
        return out
    frame, x, y, gradient = (np.asarray(locs[k], dtype=np.float64) for k in ("frame", "x", "y", "net_gradient"))
    keep = (gradient >= min_net_gradient) & np.isfinite(x) & np.isfinite(y)
    for i in range(frames):
        mine = keep & (frame == i)
        out[i] = np.stack([x[mine], y[mine]], axis=1)
    return out


def warm_up() -> None:
    """Picasso compiles its fit (numba) on first use: do it before anything is timed."""
    rng = np.random.default_rng(0)
    _fit_all(rng.poisson(10.0, size=(2, 16, 16)).astype(np.float64), MIN_NET_GRADIENTS[0])


def tune(val_photons, val_truth, sigma_psf: float, tally) -> dict:
    """The minimum net gradient (of ``MIN_NET_GRADIENTS``) whose localizations of the validation frames have the
    best efficiency: fitted once at the lowest, then filtered."""
    warm_up()
    locs = _fit_all(val_photons, MIN_NET_GRADIENTS[0])
    best, best_e = MIN_NET_GRADIENTS[0], -np.inf
    for gradient in MIN_NET_GRADIENTS:
        scores = tally()
        for i, found in enumerate(_per_frame(locs, len(val_truth), gradient)):
            scores.add(found, val_truth[i])
        e = scores.summary().get("efficiency", -np.inf)
        if e > best_e:
            best, best_e = gradient, e
    return {"min_net_gradient": float(best), "box": BOX}


def localize(photons, sigma_psf: float, settings: dict) -> list[np.ndarray]:
    """Each frame's (K, 2) pixel (x, y), pixel centres at integers (Picasso's convention is ours)."""
    locs = _fit_all(photons, settings["min_net_gradient"])
    return _per_frame(locs, len(photons), settings["min_net_gradient"])
