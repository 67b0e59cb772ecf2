"""Image files -> checked (H, W) float32 arrays (brightness, or photon counts), and answers clamped into the image.

Values are scaled by the range of the file's *type*, never by the data: an 8-bit image divides by 255, a
16-bit PNG by 65535, an integer ``.npy`` by its dtype's maximum, and a float ``.npy`` (or float TIFF) is taken
as it is, any finite values: a noisy image, as training renders it, lies partly below 0 and above 1. Scaling
by the data (e.g. "divide by 255 when the max is above 1") would turn a dim 16-bit pixel or a float image in
0..255 into something else without a word; the pixel task warns instead when a float image lies far outside
the values its model was trained on (``Task.image_doubts``). For a task whose files hold photon counts
(``counts=True``, the spot task) integer arrays and 8-/16-bit PNGs are counts as they are (no scaling by the
type), float arrays any finite values (read noise can make a count negative); the task turns them into the
network's input. What makes an image or an answer doubtful is the task's (``Task.image_doubts`` /
``answer_doubts``); clamping an answer into the image is here.

Every problem is a ``UserError`` with one sentence naming the file, the problem and the fix (NaN and
infinite values among them: no model answers them). numpy and Pillow only (no torch): cheap to import.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError

# A soft-argmax at the border can land a hair outside the image by float round-off (31.000002 of 0..31):
# clamped without a word up to this many pixels, with a warning beyond.
CLAMP_TOLERANCE = 1e-3

# Pillow modes of 8 bits per channel that convert("L") turns into grey 0..255.
_EIGHT_BIT_MODES = {"L", "P", "PA", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L"}


def shown_name(path: Path | str) -> str:
    """The file name for one line of output (control characters, e.g. a newline, shown escaped)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _wrong_size(path: Path, shape: tuple[int, ...], size: tuple[int, int]) -> UserError:
    return UserError(f"image {shown_name(path)} is {'x'.join(map(str, shape))} but the model was trained on "
                     f"{size[0]}x{size[1]} (height x width); resize it or use a run trained at that size")


def _unreadable(path: Path, err: Exception) -> UserError:
    return UserError(f"image {shown_name(path)} cannot be read ({type(err).__name__}); use a PNG/JPEG image or a "
                     ".npy array")


def _checked_float(path: Path, image: np.ndarray, counts: bool = False) -> np.ndarray:
    """A float array as it is, which must be finite (brightness beyond [0, 1] is the task's to judge)."""
    if not np.isfinite(image).all():
        wanted = "photon counts" if counts else "brightness values (0 background, 1 a clean spot)"
        raise UserError(f"image {shown_name(path)} contains NaN or infinite values; replace them with {wanted}")
    largest = float(np.abs(image).max()) if image.size else 0.0
    if largest > float(np.finfo(np.float32).max):  # a float64 the network's float32 would turn into inf
        raise UserError(f"image {shown_name(path)} has values beyond float32's range (up to {largest:g}); scale it "
                        "down")
    return image.astype(np.float32)


def _scaled(path: Path, image: np.ndarray, counts: bool = False) -> np.ndarray:
    """Any numeric array -> float32, integers scaled into [0, 1] by their dtype's range, floats as they are
    (``counts``: unscaled counts)."""
    kind = image.dtype.kind
    if kind == "b" or (counts and kind in "ui"):
        return image.astype(np.float32)
    if kind in "ui":
        if kind == "i" and image.size and image.min() < 0:
            raise UserError(f"image {shown_name(path)} has negative values (down to {int(image.min())}); brightness "
                            f"runs from 0 to {np.iinfo(image.dtype).max} in {image.dtype}, so clip it at 0 or save it "
                            "as an unsigned integer array")
        return (image.astype(np.float64) / np.iinfo(image.dtype).max).astype(np.float32)
    if kind == "f":
        return _checked_float(path, image, counts)
    raise UserError(f"image {shown_name(path)} has dtype {image.dtype}, not a number type; save a bool, integer or "
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
        raise UserError(f"image {shown_name(path)} holds pickled Python objects, which are never loaded; save a "
                        "numeric array (np.save of a uint8, uint16 or float array)")
    if dtype.kind not in "buif" or dtype.names is not None:
        raise UserError(f"image {shown_name(path)} has dtype {dtype}, not a plain number type; save a bool, "
                        "integer or float array")
    squeezed = list(shape)
    while len(squeezed) > 2 and squeezed[0] == 1:  # (1, H, W) -> (H, W)
        squeezed.pop(0)
    while len(squeezed) > 2 and squeezed[-1] == 1:  # (H, W, 1) -> (H, W)
        squeezed.pop()
    if len(squeezed) != 2:
        raise UserError(f"image {shown_name(path)} has shape {'x'.join(map(str, shape)) or '()'}, not a 2-D image; "
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
                raise UserError(f"image {shown_name(path)} has the unsupported pixel mode {mode}; save it as an 8- or "
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
        raise UserError(f"image {shown_name(path)} has values from {image.min()} to {image.max()}, outside the 16-bit "
                        "range 0..65535; save it as a uint16 PNG or a .npy array")
    return (image / 65535.0).astype(np.float32)


def read_image(path: Path | str, size: tuple[int, int], counts: bool = False) -> np.ndarray:
    """The (H, W) float32 image stored in ``path`` (PNG/JPEG or .npy) of ``size`` = (H, W): integer files scaled
    into [0, 1] by their type, float arrays any finite values as they are; with ``counts`` its photon counts as
    stored (no scaling by the file's type)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {shown_name(path)} does not exist or is not a file; check the path")
    if path.suffix.lower() == ".npy":
        return _read_npy(path, size, counts)
    return _read_picture(path, size, counts)


def check_answer(xy, image: np.ndarray, task) -> tuple[tuple[float | None, float | None], str | None]:
    """The model's (x, y) in pixels, made safe: a non-finite coordinate becomes None, a finite one is clamped
    into the image as far as ``task.answer_low`` allows (pixel centres 0..W-1, or a spot's outer pixel edges
    -0.5..W-0.5); a warning says what was changed, or what the task finds doubtful about the answer."""
    height, width = image.shape
    raw = tuple(float(v) for v in xy)
    warnings = []
    if not all(math.isfinite(v) for v in raw):
        warnings.append(f"the model's answer ({raw[0]}, {raw[1]}) is not a finite number; no coordinate given")
    low = task.answer_low
    limits = (float(width - 1) - low, float(height - 1) - low)
    answer = tuple(min(max(v, low), top) + 0.0 if math.isfinite(v) else None for v, top in zip(raw, limits))
    if any(a is not None and abs(a - v) > CLAMP_TOLERANCE for a, v in zip(answer, raw)):
        shown = ", ".join("-" if a is None else f"{a:.3f}" for a in answer)
        edges = f" (its outer pixel edges: x {low:g}..{limits[0]:g}, y {low:g}..{limits[1]:g})" if low else ""
        warnings.append(f"the model's answer ({raw[0]:.3f}, {raw[1]:.3f}) lies outside the {height}x{width} "
                        f"image (height x width){edges}; clamped to ({shown})")
    if None not in answer:
        warnings.append(task.answer_doubts(answer, image))
    return answer, "; ".join(w for w in warnings if w) or None
