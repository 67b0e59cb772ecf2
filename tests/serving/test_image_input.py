"""image_input: files -> checked arrays, integers scaled into [0, 1] by their type (floats as they are:
test_float_inputs.py), one-line errors, doubtful images/answers."""

import math
import pickle

import numpy as np
import pytest
from PIL import Image

from pixel_spotter.errors import UserError
from pixel_spotter.serving.image_input import check_answer, read_image
from pixel_spotter.tasks import get
from pixel_spotter.tasks.pixel.doubts import MIN_CONTRAST, doubts

SIZE = (4, 5)  # (height, width): not square, so a transposed image is caught
H, W = SIZE
PIXEL, SPOT = get("pixel")(H, W), get("spot")(H, W)  # the two tasks: what an answer may be checked against


def _ramp(dtype, top):
    """A (4, 5) array of `dtype` with 0 at (x=0, y=0) and `top` at (x=4, y=3)."""
    image = np.zeros(SIZE, dtype=dtype)
    image[3, 4] = top
    image[1, 2] = top // 2 if not isinstance(top, (bool, float)) else top
    return image


def _save_npy(path, array):
    np.save(path, array)
    return path


def _save_png(path, array, mode=None):
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
    return path


# (name, writer(tmp_path) -> path, expected value at the top pixel and the middle one)
CASES = {
    "uint8_png": (lambda d: _save_png(d / "a.png", _ramp(np.uint8, 255)), 1.0, 127 / 255),
    "rgb_png": (lambda d: _save_png(d / "a.png", _ramp(np.uint8, 255), "RGB"), 1.0, 127 / 255),
    "uint16_png": (lambda d: _save_png(d / "a.png", _ramp(np.uint16, 65535)), 1.0, 32767 / 65535),
    "dim_uint16_png": (lambda d: _save_png(d / "a.png", _ramp(np.uint16, 200)), 200 / 65535, 100 / 65535),
    "uint16_npy": (lambda d: _save_npy(d / "a.npy", _ramp(np.uint16, 65535)), 1.0, 32767 / 65535),
    "int32_npy": (lambda d: _save_npy(d / "a.npy", _ramp(np.int32, 2**31 - 1)), 1.0, (2**30 - 1) / (2**31 - 1)),
    "int8_npy": (lambda d: _save_npy(d / "a.npy", _ramp(np.int8, 127)), 1.0, 63 / 127),
    "bool_npy": (lambda d: _save_npy(d / "a.npy", _ramp(bool, True)), 1.0, 1.0),
    "float32_npy": (lambda d: _save_npy(d / "a.npy", _ramp(np.float32, 1.0)), 1.0, 1.0),
    "float64_npy": (lambda d: _save_npy(d / "a.npy", _ramp(np.float64, 0.25)), 0.25, 0.25),
    "dim_uint8_npy": (lambda d: _save_npy(d / "a.npy", _ramp(np.uint8, 3)), 3 / 255, 1 / 255),
    "squeezed_npy": (lambda d: _save_npy(d / "a.npy", _ramp(np.uint8, 255)[None, :, :, None]), 1.0, 127 / 255),
}


@pytest.mark.parametrize("case", CASES)
def test_values_are_scaled_by_the_file_type_not_the_data(case, tmp_path):
    write, top, middle = CASES[case]
    image = read_image(write(tmp_path), SIZE)
    assert image.shape == SIZE and image.dtype == np.float32
    assert image[0, 0] == 0
    assert image[3, 4] == pytest.approx(top, abs=1e-6)
    assert image[1, 2] == pytest.approx(middle, abs=1e-6)
    assert 0 <= image.min() and image.max() <= 1


def test_one_bit_png_is_zero_or_one(tmp_path):
    path = _save_png(tmp_path / "a.png", _ramp(np.uint8, 255), "1")
    image = read_image(path, SIZE)
    assert set(np.unique(image)) == {0.0, 1.0} and image[3, 4] == 1


def _float_with(value):
    def write(d):
        image = np.zeros(SIZE, dtype=np.float32)
        image[2, 2] = value
        return _save_npy(d / "bad.npy", image)
    return write


class _Anything:
    pass


ERRORS = {
    "nan": (_float_with(np.nan), "NaN"),
    "inf": (_float_with(np.inf), "infinite"),
    "negative_int": (lambda d: _save_npy(d / "bad.npy", np.full(SIZE, -3, dtype=np.int16)), "negative"),
    "3d_array": (lambda d: _save_npy(d / "bad.npy", np.zeros((3, *SIZE), dtype=np.uint8)), "not a 2-D image"),
    "1d_array": (lambda d: _save_npy(d / "bad.npy", np.zeros(20, dtype=np.uint8)), "not a 2-D image"),
    "complex": (lambda d: _save_npy(d / "bad.npy", np.zeros(SIZE, dtype=complex)), "not a plain number type"),
    "structured": (lambda d: _save_npy(d / "bad.npy", np.zeros(SIZE, dtype=[("a", "u1"), ("b", "f4")])),
                   "not a plain number type"),
    "pickled_object": (lambda d: _save_npy(d / "bad.npy", np.array([[_Anything()] * W] * H, dtype=object)),
                       "pickled"),
    "text_as_png": (lambda d: (d / "bad.png").write_text("not an image") and d / "bad.png", "cannot be read"),
    "text_as_npy": (lambda d: (d / "bad.npy").write_text("not an array") and d / "bad.npy", "cannot be read"),
    "missing": (lambda d: d / "bad.png", "does not exist"),
    "wrong_size_png": (lambda d: _save_png(d / "bad.png", np.zeros((50, 50), dtype=np.uint8)),
                       "is 50x50 but the model was trained on 4x5 (height x width)"),
    "transposed_npy": (lambda d: _save_npy(d / "bad.npy", np.zeros((W, H), dtype=np.uint8)),
                       "is 5x4 but the model was trained on 4x5"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_bad_images_are_one_line_naming_the_file(case, tmp_path):
    write, expected = ERRORS[case]
    path = write(tmp_path)
    with pytest.raises(UserError) as err:
        read_image(path, SIZE)
    message = str(err.value)
    assert expected in message and str(path) in message
    assert "\n" not in message and ";" in message  # the problem; the fix


def test_pickled_npy_is_never_unpickled(tmp_path, monkeypatch):
    path = _save_npy(tmp_path / "obj.npy", np.array([[_Anything()] * W] * H, dtype=object))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(UserError, match="pickled"):
        read_image(path, SIZE)


def test_sixteen_bit_values_above_eight_bit_range_are_not_rescaled_by_the_data(tmp_path):
    """The old loader divided by 255 whenever max > 1: a 16-bit 1000 came out as ~3.9, not 0.015."""
    path = _save_png(tmp_path / "a.png", np.full(SIZE, 1000, dtype=np.uint16))
    assert read_image(path, SIZE).max() == pytest.approx(1000 / 65535)


def _one_pixel(x, y, value=1.0, background=0.0):
    image = np.full(SIZE, background, dtype=np.float32)
    image[y, x] = value
    return image


def test_doubts_blank_image():
    message = doubts(np.zeros(SIZE, dtype=np.float32))
    assert "no pixel is clearly brighter" in message and "max 0.000" in message and "background 0.000" in message


def test_doubts_flat_grey_image():
    message = doubts(np.full(SIZE, 0.5, dtype=np.float32))
    assert "no pixel is clearly brighter" in message and "max 0.500, background 0.500" in message


def test_doubts_faint_pixel_below_the_contrast_threshold():
    assert "no pixel is clearly brighter" in doubts(_one_pixel(1, 1, value=0.5 + MIN_CONTRAST / 2, background=0.5))
    assert doubts(_one_pixel(1, 1, value=0.5 + MIN_CONTRAST * 2, background=0.5)) is None


def test_doubts_two_equal_pixels_lists_them_as_x_y():
    image = _one_pixel(3, 0)
    image[2, 1] = 1.0
    message = doubts(image)
    assert "2 pixels are equally bright" in message and "(3, 0), (1, 2)" in message


def test_doubts_many_equal_pixels_lists_three():
    image = np.zeros(SIZE, dtype=np.float32)
    image[0, :] = 1.0
    message = doubts(image)
    assert "5 pixels" in message and "(0, 0), (1, 0), (2, 0), ..." in message and "(3, 0)" not in message


def test_one_clear_pixel_has_no_doubt():
    assert doubts(_one_pixel(4, 3)) is None
    assert doubts(_one_pixel(4, 3, value=1.0, background=0.2)) is None


def test_check_answer_accepts_the_right_pixel():
    assert check_answer((3.9, 1.2), _one_pixel(4, 1), PIXEL) == ((3.9, 1.2), None)


def test_check_answer_clamps_outside_answers_and_says_the_raw_value():
    (x, y), warning = check_answer((-2.5, 7.25), np.zeros(SIZE, dtype=np.float32), PIXEL)
    assert (x, y) == (0.0, H - 1.0)
    assert "(-2.500, 7.250) lies outside the 4x5 image" in warning and "clamped to (0.000, 3.000)" in warning


def test_check_answer_clamps_round_off_at_the_border_silently():
    (x, y), warning = check_answer((W - 1 + 1e-5, -1e-6), _one_pixel(W - 1, 0), PIXEL)
    assert (x, y) == (W - 1.0, 0.0) and warning is None
    assert math.copysign(1, y) == 1  # no "-0.000"


@pytest.mark.parametrize("xy", [(math.nan, 1.0), (1.0, math.inf), (-math.inf, math.nan)])
def test_check_answer_replaces_non_finite_coordinates_by_none(xy):
    answer, warning = check_answer(xy, _one_pixel(1, 1), PIXEL)
    assert "not a finite number" in warning
    for raw, got in zip(xy, answer):
        assert got is None if not math.isfinite(raw) else got == raw


def test_check_answer_warns_when_the_clear_brightest_pixel_is_missed():
    answer, warning = check_answer((1.0, 2.0), _one_pixel(4, 3), PIXEL)
    assert answer == (1.0, 2.0)
    assert warning == "the model's answer (1.000, 2.000) is not the brightest pixel (4, 3)"


def test_check_answer_does_not_judge_doubtful_images():
    """With no single clear answer there is nothing to disagree with (doubts() warns instead)."""
    image = _one_pixel(0, 0)
    image[3, 4] = 1.0
    assert check_answer((2.0, 1.5), image, PIXEL) == ((2.0, 1.5), None)


def test_returned_coordinates_are_always_inside_or_none():
    rng = np.random.default_rng(0)
    image = _one_pixel(2, 2)
    for xy in rng.normal(0, 20, size=(200, 2)).tolist() + [(math.nan, 1e300), (-1e300, math.inf)]:
        (x, y), _ = check_answer(xy, image, PIXEL)
        assert x is None or 0 <= x <= W - 1
        assert y is None or 0 <= y <= H - 1


# ---- photon counts (data=spot runs): no scaling by the type, any finite floats, answers to the outer edges


def test_counts_are_read_as_they_are(tmp_path):
    counts = np.array([[0, 3, 7000, 65535, 12]] * 4, dtype=np.uint16)
    for path in (_save_npy(tmp_path / "c.npy", counts), _save_png(tmp_path / "c.png", counts)):
        image = read_image(path, SIZE, counts=True)
        assert image.dtype == np.float32 and np.array_equal(image, counts.astype(np.float32))
    floats = np.full(SIZE, -3.5)  # read noise: negative counts are counts too
    floats[1, 2] = 2500.25
    assert np.array_equal(read_image(_save_npy(tmp_path / "f.npy", floats), SIZE, counts=True),
                          floats.astype(np.float32))
    eight = np.full(SIZE, 9, dtype=np.uint8)
    assert read_image(_save_png(tmp_path / "e.png", eight), SIZE, counts=True).max() == 9.0  # not / 255


def test_counts_refuse_nan_and_wrong_sizes_in_one_line(tmp_path):
    floats = np.zeros(SIZE)
    floats[0, 0] = np.inf
    with pytest.raises(UserError, match="NaN or infinite values; replace them with photon counts"):
        read_image(_save_npy(tmp_path / "n.npy", floats), SIZE, counts=True)
    with pytest.raises(UserError, match="is 5x4 but the model was trained on 4x5"):
        read_image(_save_npy(tmp_path / "t.npy", np.zeros((5, 4))), SIZE, counts=True)


def test_spot_answers_are_clamped_to_the_outer_pixel_edges_without_brightest_pixel_checks():
    image = np.full(SIZE, 10.0, dtype=np.float32)
    image[0, 0] = 500.0  # the brightest pixel, far from the answer: no warning for spot images
    assert check_answer((-0.4, H - 0.6), image, SPOT) == ((-0.4, H - 0.6), None)
    (x, y), warning = check_answer((-0.9, 9.0), image, SPOT)
    assert (x, y) == (-0.5, H - 0.5)
    assert "lies outside the 4x5 image" in warning and "outer pixel edges: x -0.5..4.5, y -0.5..3.5" in warning
    assert "clamped to (-0.500, 3.500)" in warning

