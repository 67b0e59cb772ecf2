"""The task interface: what differs between kinds of image, owned in one place per kind.

A task renders an image and its truth from (position, seed), turns a batch into what the network's step takes,
adds its own measurements to a run's record (a bound, reference estimators), and states the input contract of
predict and export (images in [0, 1] or photon counts, how files are scaled, where an answer may lie, when an
image or an answer is doubtful, which images an export is checked on). Training, serving, evaluation and the
report call these methods and never ask which task they hold.

Adding a task: a package ``pixel_spotter/tasks/<name>/`` whose ``task.py`` defines ``TASK`` (a subclass of
``Task``), plus ``conf/data/<name>.yaml`` with ``task: <name>``. Nothing else needs to know its name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from pixel_spotter.errors import UserError


class Task:
    name: ClassVar[str]
    counts: ClassVar[bool] = False  # files hold photon counts (True) or brightness scaled into [0, 1] (False)
    answer_low: ClassVar[float] = 0.0  # an answer's lowest coordinate: 0 (pixel centres) or -0.5 (outer edges)
    robustness: ClassVar[bool] = False  # whether `pixel-spotter robustness`'s corruption grid applies to it
    # a frame task: each image holds a set of emitters (its truth a ``frame_sets.FrameSets``, its model a frame
    # model, scored by ``evaluation.localizations``) rather than one (x, y)
    frames: ClassVar[bool] = False
    # data settings this task takes besides the generic ones (split, batch sizes, seed ...), with defaults
    settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, height: int, width: int, **settings):
        self.height, self.width = int(height), int(width)

    # -- config, before anything is built (ConfigError sentences in the style of training/validation.py)
    @classmethod
    def check_config(cls, data, model) -> None:
        """Task-specific checks of the composed ``data`` and ``model`` config nodes."""

    @classmethod
    def weights_images(cls, data) -> bool:
        """Whether ``step_batch`` adds per-image loss weights under this ``data`` config (what model.huber_bounds
        needs: errors in units of each image's bound)."""
        return False

    # -- training and testing
    def bind(self, positions: dict[str, torch.Tensor]) -> None:
        """The datamodule's honest split, (N, 2) pixel positions per split name, once it is made (a frame task
        draws its emitters' pixels from them)."""

    def tally(self):
        """A frame task's ``evaluation.localizations.Tally`` for one pass over a split (its tolerance and pixel
        size)."""
        raise NotImplementedError

    def render(self, split: str, xy: torch.Tensor, seeds: list[int]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(images (B, 1, H, W) float32, targets (B, 2) normalized to [0, 1], truth or None) of ``split``; a frame
        task's targets are a ``frame_sets.FrameSets``."""
        raise NotImplementedError

    def step_batch(self, images: torch.Tensor, target: torch.Tensor, truth) -> tuple:
        """What the network's step gets: (images, target) plus, for tasks that weight images, per-image weights."""
        return images, target

    def record_results(self, record, datamodule, model) -> None:
        """Add the task's own measurements (bound, references) to a finished, ok run's ``record``."""

    # -- serving: the input contract of predict and export
    def network_input(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) arrays as read from files -> the network's float32 input."""
        return batch.astype(np.float32)

    def image_doubts(self, image: np.ndarray) -> str | None:
        """One sentence when an input image gives the model nothing clear to find, else None."""
        return None

    def answer_doubts(self, answer: tuple[float | None, float | None], image: np.ndarray) -> str | None:
        """One sentence when a (clamped, finite) answer contradicts what the image plainly shows, else None."""
        return None

    def probe_images(self, limit: int) -> tuple[np.ndarray, str]:
        """(network inputs (N, 1, H, W) float32, a description) that an export must answer as PyTorch does."""
        raise NotImplementedError

    def contract(self) -> dict:
        """This task's fields of an export contract (value range, scaling of files, output meaning, ...)."""
        raise NotImplementedError

    @classmethod
    def from_contract(cls, contract: dict) -> Task:
        """The task an export contract describes (already checked by serving.exported.read_contract)."""
        return cls(contract["height"], contract["width"])

    @classmethod
    def from_run_config(cls, data, height: int, width: int, where: str) -> Task:
        """The task of an untrusted run folder's ``data`` section: built from checked values, never from a
        ``_target_``; ``where`` names the file in errors."""
        return cls(height, width)


def task_settings(task: type[Task], settings: dict) -> dict:
    """The data settings ``task`` takes, checked: another task's setting is one ConfigError line. The corruption
    settings (``data.augment`` from the augment group, ``data.augment_eval``) are in every data config; a task
    that takes none gets them dropped, provided they ask for no corruption at all."""
    from pixel_spotter.checks import require

    settings = dict(settings)
    if "augment" not in task.settings:
        augment = settings.pop("augment", None)
        settings.pop("augment_eval", None)
        require(augment is None or augment.identity,
                f"the {task.name} task renders its own images and noise; the corruptions of augment= do not apply "
                "to it: use augment=none")
    unknown = sorted(set(settings) - set(task.settings))
    if unknown:
        from pixel_spotter.errors import ConfigError

        raise ConfigError(f"data.{unknown[0]} is not a setting of the {task.name} task; its settings are "
                          f"{', '.join(task.settings) or 'none'} (data=... picks the task)")
    return settings


def from_run_section(where: str, section: str, build):
    """``build()`` of a task's settings from a run's ``data.<section>`` (untrusted), its failures as one line that
    names the folder's file: a checked problem in its own words, anything else by its type."""
    try:
        return build()
    except UserError as err:
        raise UserError(f"{where}: {err}; the run folder is corrupt: retrain") from None
    except Exception as err:
        raise UserError(f"{where} has an unusable data.{section} section ({type(err).__name__}); the run folder is "
                        "corrupt: retrain") from None
