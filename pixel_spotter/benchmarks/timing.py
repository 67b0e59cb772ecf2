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


BUSY_PER_CORE = 0.5  # a 1-minute load average above this per core: other work is sharing the cores


def busy_machine() -> str | None:
    """Why speeds measured now would not be an idle machine's (other work holding the cores, by the 1-minute load
    average, read before the benchmark's own work starts), or None. On 2 cores a benchmark that shared them once
    recorded 3-5x fewer frames/s, with nothing else to show for it."""
    import os

    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this system
        return None
    cores = os.cpu_count() or 1
    if load <= BUSY_PER_CORE * cores:
        return None
    return (f"the machine is busy (load average {load:.1f} on {cores} cores): the frames/s measured now may be far "
            "lower than an idle machine's; compare speeds measured with nothing else running")
