"""What a data=emitters run is measured against on its own test frames: the classical pipeline
(``spots/classical.py``: matched-filter maxima, then the ML fit in a window, its SNR threshold tuned on the
validation frames) and the frames per second of both, decode included, on the same CPU or device."""

from __future__ import annotations

import time

import torch

from pixel_spotter.data.seeds import STREAMS, sample_seed

THRESHOLDS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0)  # the matched filter's SNR, tuned on val frames


def split_frames(task, datamodule, split: str, limit: int | None = None):
    """(FrameSets, photons (B, H, W)) of the split's frames, the very frames the model was scored on."""
    datamodule.setup()
    count = len(datamodule.datasets[split]) if limit is None else min(limit, len(datamodule.datasets[split]))
    seeds = [sample_seed(datamodule.seed, STREAMS[split], k) for k in range(count)]
    _, truth, photons = task.renderer(seeds, "cpu", bounds=split != "train")
    return truth, photons


def classical_reference(task, datamodule) -> dict:
    """The classical pipeline's test scores (the tally's numbers), its tuned threshold and frames/s."""
    from pixel_spotter.spots.classical import localize, tune_threshold

    val, val_photons = split_frames(task, datamodule, "val")
    sigma = task.sigma_psf
    threshold, _ = tune_threshold(val_photons, [val.frame(i) for i in range(len(val))], sigma, THRESHOLDS,
                                  task.ranges.pixel_size_nm, task.tolerance_nm)
    test, photons = split_frames(task, datamodule, "test")
    start = time.perf_counter()
    found = localize(photons, sigma, threshold)
    seconds = time.perf_counter() - start
    tally = task.tally()
    for i, loc in enumerate(found):
        tally.add(loc.xy.numpy(), test.frame(i), test.frame_bounds(i))
    return {**tally.summary(), "threshold": threshold, "frames_per_s": len(found) / max(seconds, 1e-9)}


@torch.inference_mode()
def model_frames_per_s(model, datamodule, limit: int = 256) -> float:
    """Frames per second of the model on test frames already rendered, network and decode together (best of 3)."""
    images = datamodule.images("test", model.device, limit=limit)
    model.localize(images[:8])  # warm-up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for batch in images.split(64):
            model.localize(batch)
        best = min(best, time.perf_counter() - start)
    return len(images) / best
