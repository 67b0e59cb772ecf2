"""Wall-clock inference timing: milliseconds per image, batched and one image at a time."""

from __future__ import annotations

import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def ms_per_image(fn, images: torch.Tensor, batch_size: int, repeats: int = 3, max_images: int | None = None) -> float:
    """Best-of-``repeats`` time for ``fn`` over ``images`` in batches, in ms per image.

    ``fn`` maps a batch to predictions; one warm-up batch runs first. ``max_images`` bounds the work
    (one-image latency over a whole test set would take too long for big networks).
    """
    if max_images is not None:
        images = images[:max_images]
    batches = list(images.split(batch_size))
    fn(batches[0])
    best = float("inf")
    for _ in range(repeats):
        _sync(images.device)
        start = time.perf_counter()
        for batch in batches:
            fn(batch)
        _sync(images.device)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(images)
