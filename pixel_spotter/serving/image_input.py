"""Image files -> checked (H, W) float32 arrays in [0, 1], and whether an image or an answer is doubtful.

For a ``data=spot`` run (``counts=True``) files hold photon counts instead: integer arrays and 8-/16-bit PNGs
are counts as they are (no scaling by the type), float arrays any finite values (read noise can make a count
negative); the caller divides by the run's ``input_scale``. There is no brightest pixel to check there (the
brightest pixel of a noisy spot image is often noise), and answers are clamped to the outer pixel edges
[-0.5, W - 0.5] (a spot in a border pixel may lie up to half a pixel outside the pixel centres).

Values are scaled by the range of the file's *type*, never by the data: an 8-bit image divides by 255, a
16-bit PNG by 65535, an integer ``.npy`` by its dtype's maximum, and a float ``.npy`` must already be in
[0, 1]. Scaling by the data (e.g. "divide by 255 when the max is above 1") would turn a dim 16-bit pixel or
a float image in 0..255 into something else without a word. Every problem is a ``UserError`` with one
sentence naming the file, the problem and the fix. numpy and Pillow only (no torch): cheap to import.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError

# Training images are a 0 background with one 1.0 pixel. Below a tenth of the full range between the
# brightest pixel and the background (median), no pixel stands out and any answer is a guess.
MIN_CONTRAST = 0.1
# Pixels this close to the maximum count as equally bright: below one step of a 16-bit image (1/65535,
# ~1.5e-5), so distinct 8- and 16-bit levels are never merged, while float round-off is.
TIE_TOLERANCE = 1e-6
# A soft-argmax at the border can land a hair outside the image by float round-off (31.000002 of 0..31):
# clamped without a word up to this many pixels, with a warning beyond.
CLAMP_TOLERANCE = 1e-3
# How many of several equally bright candidates a warning lists (the count is always given).
MAX_LISTED = 3

# Pillow modes of 8 bits per channel that convert("L") turns into grey 0..255.
_EIGHT_BIT_MODES = {"L", "P", "PA", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L"}


def _name(path: Path) -> str:
    """The file name for a one-line message (control characters, e.g. a newline, shown escaped)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _wrong_size(path: Path, shape: tuple[int, ...], size: tuple[int, int]) -> UserError:
    return UserError(f"image {_name(path)} is {'x'.join(map(str, shape))} but the model was trained on "
                     f"{size[0]}x{size[1]} (height x width); resize it or use a run trained at that size")


def _unreadable(path: Path, err: Exception) -> UserError:
    return UserError(f"image {_name(path)} cannot be read ({type(err).__name__}); use a PNG/JPEG image or a "
                     ".npy array")


def _checked_float(path: Path, image: np.ndarray, counts: bool = False) -> np.ndarray:
    """A float array that must be finite and (unless ``counts``) already in [0, 1]."""
    if not np.isfinite(image).all():
        wanted = "photon counts" if counts else "numbers in [0, 1]"
        raise UserError(f"image {_name(path)} contains NaN or infinite values; replace them with {wanted}")
    if counts:
        return image.astype(np.float32)
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:
        hint = ("divide it by 255 or save it as uint8" if low >= 0 and high <= 255
                else "scale it into [0, 1] or save it as an unsigned integer array")
        raise UserError(f"image {_name(path)} is a float image with values from {low:g} to {high:g}, outside "
                        f"[0, 1]; {hint}")
    return image.astype(np.float32)


def _scaled(path: Path, image: np.ndarray, counts: bool = False) -> np.ndarray:
    """Any numeric array -> float32 in [0, 1], scaled by its dtype's range (``counts``: unscaled counts)."""
    kind = image.dtype.kind
    if kind == "b" or (counts and kind in "ui"):
        return image.astype(np.float32)
    if kind in "ui":
        if kind == "i" and image.size and image.min() < 0:
            raise UserError(f"image {_name(path)} has negative values (down to {int(image.min())}); brightness "
                            f"runs from 0 to {np.iinfo(image.dtype).max} in {image.dtype}, so clip it at 0 or save it "
                            "as an unsigned integer array")
        return (image.astype(np.float64) / np.iinfo(image.dtype).max).astype(np.float32)
    if kind == "f":
        return _checked_float(path, image, counts)
    raise UserError(f"image {_name(path)} has dtype {image.dtype}, not a number type; save a bool, integer or "
                    "float array")


def _read_npy(path: Path, size: tuple[int, int], counts: bool = False) -> np.ndarray:
    # The header first: the dtype and shape are checked before any data is read, and a pickled
    # (object) array is refused without ever being unpickled.
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
    except Exception as err:
        raise _unreadable(path, err) from None
    if dtype.hasobject:
        raise UserError(f"image {_name(path)} holds pickled Python objects, which are never loaded; save a "
                        "numeric array (np.save of a uint8, uint16 or float array)")
    if dtype.kind not in "buif" or dtype.names is not None:
        raise UserError(f"image {_name(path)} has dtype {dtype}, not a plain number type; save a bool, "
                        "integer or float array")
    squeezed = list(shape)
    while len(squeezed) > 2 and squeezed[0] == 1:  # (1, H, W) -> (H, W)
        squeezed.pop(0)
    while len(squeezed) > 2 and squeezed[-1] == 1:  # (H, W, 1) -> (H, W)
        squeezed.pop()
    if len(squeezed) != 2:
        raise UserError(f"image {_name(path)} has shape {'x'.join(map(str, shape)) or '()'}, not a 2-D image; "
                        "save one grey (height, width) array")
    if tuple(squeezed) != tuple(size):
        raise _wrong_size(path, tuple(squeezed), size)
    try:
        image = np.load(path, allow_pickle=False).reshape(squeezed)
    except Exception as err:
        raise _unreadable(path, err) from None
    return _scaled(path, image, counts)


def _read_picture(path: Path, size: tuple[int, int], counts: bool = False) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as picture:
            width, height = picture.size
            if (height, width) != tuple(size):  # before decoding: a huge file is refused cheaply
                raise _wrong_size(path, (height, width), size)
            mode, fmt = picture.mode, picture.format
            if mode in _EIGHT_BIT_MODES:
                return np.asarray(picture.convert("L"), dtype=np.float32) / (1.0 if counts else 255.0)
            if mode == "1":
                return np.asarray(picture, dtype=np.float32)
            if mode in _SIXTEEN_BIT_MODES or (mode == "I" and fmt == "PNG"):
                image = np.asarray(picture).astype(np.int64)
            elif mode == "F":
                image = np.asarray(picture, dtype=np.float32)
            else:
                raise UserError(f"image {_name(path)} has the unsupported pixel mode {mode}; save it as an 8- or "
                                "16-bit grey PNG or as a .npy array")
    except UserError:
        raise
    except Exception as err:
        raise _unreadable(path, err) from None
    if mode == "F":
        return _checked_float(path, image, counts)
    if counts:
        return image.astype(np.float32)
    if image.min() < 0 or image.max() > 65535:
        raise UserError(f"image {_name(path)} has values from {image.min()} to {image.max()}, outside the 16-bit "
                        "range 0..65535; save it as a uint16 PNG or a .npy array")
    return (image / 65535.0).astype(np.float32)


def read_image(path: Path | str, size: tuple[int, int], counts: bool = False) -> np.ndarray:
    """The (H, W) float32 image in [0, 1] stored in ``path`` (PNG/JPEG or .npy) of ``size`` = (H, W); with
    ``counts`` its photon counts as stored (any finite values, no scaling by the file's type)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {_name(path)} does not exist or is not a file; check the path")
    if path.suffix.lower() == ".npy":
        return _read_npy(path, size, counts)
    return _read_picture(path, size, counts)


def _positions(mask: np.ndarray) -> list[tuple[int, int]]:
    """(x, y) of the true pixels, row by row."""
    return [(int(col), int(row)) for row, col in np.argwhere(mask)]


def doubts(image: np.ndarray) -> str | None:
    """One sentence when ``image`` has no single clear brightest pixel, else None."""
    peak, background = float(image.max()), float(np.median(image))
    if peak - background < MIN_CONTRAST:
        return (f"no pixel is clearly brighter than the rest (max {peak:.3f}, background {background:.3f}), "
                "so the answer is a guess")
    ties = _positions(image >= peak - TIE_TOLERANCE)
    if len(ties) > 1:
        listed = ", ".join(f"({x}, {y})" for x, y in ties[:MAX_LISTED])
        more = ", ..." if len(ties) > MAX_LISTED else ""
        return (f"{len(ties)} pixels are equally bright ({peak:.3f}) at {listed}{more}, so there is no single "
                "answer")
    return None


MIN_SPOT_SNR = 5.0  # below this matched-filter signal-to-noise a spot is as likely a noise peak (data=spot)


def spot_doubts(counts: np.ndarray) -> str | None:
    """One sentence when a photon-count image (data=spot) has no spot clearly above its Poisson noise: the
    largest signal-to-noise of a 1.5 px matched filter (``spots.detect``; background the image's median, noise
    its square root, at least 1 photon) is below ``MIN_SPOT_SNR``, where detections are often noise peaks."""
    import torch

    from pixel_spotter.spots.detect import matched_filter

    image = torch.from_numpy(np.asarray(counts, dtype=np.float64))[None, None]
    background = float(np.median(counts))
    snr = float(matched_filter(image, 1.5).max()) / math.sqrt(max(background, 1.0))
    if snr < MIN_SPOT_SNR:
        return (f"no spot clearly above the noise (matched-filter signal-to-noise {snr:.1f} < {MIN_SPOT_SNR:g}), "
                "so the answer may be a noise peak or a guess")
    return None


def check_answer(xy, image: np.ndarray, spot: bool = False) -> tuple[tuple[float | None, float | None], str | None]:
    """The model's (x, y) in pixels, made safe: a non-finite coordinate becomes None, a finite one is clamped
    into the image; a warning says what was changed, or that a clear brightest pixel was missed. ``spot``
    (photon-count images of a sub-pixel spot): clamped to the outer pixel edges [-0.5, W - 0.5] instead of
    the pixel centres [0, W - 1], and no brightest-pixel check (noise makes the brightest pixel a poor guide)."""
    height, width = image.shape
    raw = tuple(float(v) for v in xy)
    warnings = []
    if not all(math.isfinite(v) for v in raw):
        warnings.append(f"the model's answer ({raw[0]}, {raw[1]}) is not a finite number; no coordinate given")
    low = -0.5 if spot else 0.0
    limits = (float(width - 1) - low, float(height - 1) - low)
    answer = tuple(min(max(v, low), top) + 0.0 if math.isfinite(v) else None for v, top in zip(raw, limits))
    if any(a is not None and abs(a - v) > CLAMP_TOLERANCE for a, v in zip(answer, raw)):
        shown = ", ".join("-" if a is None else f"{a:.3f}" for a in answer)
        edges = f" (its outer pixel edges: x {low:g}..{limits[0]:g}, y {low:g}..{limits[1]:g})" if spot else ""
        warnings.append(f"the model's answer ({raw[0]:.3f}, {raw[1]:.3f}) lies outside the {height}x{width} "
                        f"image (height x width){edges}; clamped to ({shown})")
    if not spot and None not in answer and doubts(image) is None:
        row, col = np.unravel_index(int(np.argmax(image)), image.shape)
        rounded = tuple(math.floor(a + 0.5) for a in answer)
        if rounded != (int(col), int(row)):
            warnings.append(f"the model's answer ({answer[0]:.3f}, {answer[1]:.3f}) is not the brightest pixel "
                            f"({int(col)}, {int(row)})")
    return answer, "; ".join(warnings) or None
