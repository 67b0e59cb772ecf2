"""The config checks of a frame model (``model=frame_pixels``, ``model=frame_emitters``): one ConfigError line per
bad setting, before anything is built. Training calls it (``training/validation.py``), and so does loading a run
folder, whose config is untrusted (``serving/loading.py``)."""

from __future__ import annotations

from pixel_spotter.models.frame_losses import CHANNELS_OF_LOSS, LOSSES
from pixel_spotter.models.frame_maps import CHANNELS, DECODES, SPLITS


def check_frame_model(model) -> None:
    """ConfigError lines for a frame model's own settings."""
    from pixel_spotter.checks import is_number, require

    loss, decode = model.get("loss", "detection"), model.get("decode", "threshold")
    require(loss in LOSSES, f"model.loss={loss!r} is not a frame model's loss; choose one of {', '.join(LOSSES)}")
    require(decode in DECODES, f"model.decode={decode!r} is unknown; choose one of {', '.join(DECODES)}")
    threshold = model.get("threshold", 0.5)
    require(is_number(threshold) and 0 < threshold < 1,
            f"model.threshold must be a number in (0, 1), got {threshold!r}; e.g. model.threshold=0.5")
    split = model.get("split", 1.0)
    require(is_number(split) and SPLITS[-1] <= split <= 1,
            f"model.split must be a number in [{SPLITS[-1]}, 1] (1: no split), got {split!r}; e.g. model.split=0.6")
    require(isinstance(model.get("tune_threshold", True), bool),
            f"model.tune_threshold must be true or false, got {model.get('tune_threshold')!r}")
    scale = model.get("photon_scale", 1.0)
    require(is_number(scale) and scale > 0,
            f"model.photon_scale must be a number > 0, got {scale!r}; e.g. model.photon_scale=1000")
    refine = model.get("refine", 0)
    require(isinstance(refine, int) and not isinstance(refine, bool) and 0 <= refine <= 50,
            f"model.refine must be an integer of fit steps in [0, 50], got {refine!r}; e.g. model.refine=2 (0: off)")
    require(not refine or loss == "mixture",
            "model.refine fits each emitter from the network's photons, background and PSF width, which only "
            "model.loss=mixture answers; use model.refine=0")
    beyond = model.get("refine_beyond", 0.0)
    require(is_number(beyond) and 0 <= beyond <= 100,
            f"model.refine_beyond must be a distance in px in [0, 100] (0: refine every localization), got "
            f"{beyond!r}; e.g. model.refine_beyond=5")
    input_scale = model.get("input_scale", 1.0)
    require(is_number(input_scale) and input_scale > 0,
            f"data.input_scale must be a number > 0 (model.input_scale takes it), got {input_scale!r}; e.g. "
            "data.input_scale=100")
    outputs, wanted = model.net.get("outputs"), CHANNELS[CHANNELS_OF_LOSS[loss]]
    require(outputs == wanted, f"model.loss={loss} reads {wanted} maps per pixel, but model.net.outputs={outputs!r}; "
                               f"use model.net.outputs={wanted}")
