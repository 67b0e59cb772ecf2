"""Per-image seeds: every image's randomness comes from its own generator seeded by ``sample_seed(seed, stream,
draw)``, so an image depends on nothing but its seed: not on its batch, the batch size or the device count, and a
resumed run renders the very images an uninterrupted one would."""

MASK64 = (1 << 64) - 1
STREAMS = {"train": 0, "val": 1, "test": 2}  # separate seed streams: val/test noise never repeats training's
ROBUSTNESS_STREAM = 3  # `pixel-spotter robustness` renders its test images from this stream


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def sample_seed(seed: int, stream: int, draw: int) -> int:
    """The seed of one image: a hash of (run seed, split stream, draw number), < 2**63."""
    return _splitmix64(_splitmix64(_splitmix64(seed) ^ stream) ^ draw) >> 1
