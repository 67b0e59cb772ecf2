"""Callbacks every run gets, whatever conf/callbacks says: they keep its record true.

- ``DivergenceGuard`` stops training at the first non-finite training loss, so a diverged run ends in
  seconds and is recorded as 'diverged', never as 'ok' with NaN metrics.
- ``FitClock`` counts training seconds across a kill and a resume.
- ``CheckpointsFollowTheFolder`` makes a copied or moved run folder resume from its own checkpoints.
- ``RngStateInCheckpoint`` stores the random number generators in every checkpoint and restores them on
  resume, so a run killed and resumed draws the same dropout masks (and so ends with the same metrics) as
  one that never stopped. Data order needs no state: it is a function of (seed, epoch) (data.py).
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback


class DivergenceGuard(Callback):
    def __init__(self):
        self.diverged_at: str | None = None  # "epoch E, step S: loss nan", once tripped

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = f"epoch {trainer.current_epoch}, step {trainer.global_step}: training loss {float(loss)}"
            trainer.should_stop = True


class RngStateInCheckpoint(Callback):
    """Only tensors, ints and tuples: loadable with ``weights_only=True``."""

    def state_dict(self) -> dict:
        state = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        random.setstate(state_dict["python"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class FitClock(Callback):
    """Seconds spent in ``trainer.fit``, summed over a run's starts (kept in checkpoints): a resumed run
    reports the training it really took, not just its last part. Time after the last checkpoint of a
    killed attempt is lost work and is not counted."""

    def __init__(self):
        self.before = 0.0  # seconds of earlier starts, restored from the checkpoint
        self._since: float | None = None

    @property
    def seconds(self) -> float:
        return self.before + (time.perf_counter() - self._since if self._since is not None else 0.0)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._since = time.perf_counter()

    def on_fit_end(self, trainer, pl_module) -> None:
        self.before, self._since = self.seconds, None

    def state_dict(self) -> dict:
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before = float(state_dict["seconds"])


class CheckpointsFollowTheFolder(Callback):
    """A run folder copied or moved elsewhere resumes from its own files. A checkpoint stores the paths its
    checkpoint callbacks kept (best, last, the top k) in the folder the run was in then; Lightning would go on
    pointing there, test the original folder's best checkpoint and record ``../<original>/...``. Before the
    callbacks load their state (every on_load_checkpoint runs first), the paths are moved onto the folder the run
    writes now; one whose file the folder lacks is forgotten, so a new best is chosen rather than a missing one."""

    PATHS = ("best_model_path", "kth_best_model_path", "last_model_path")

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        states = checkpoint.get("callbacks") or {}
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key)
            then, now = (state or {}).get("dirpath"), callback.dirpath
            if then and now and os.path.normpath(str(then)) != os.path.normpath(str(now)):
                _move_paths(state, Path(now))


def _move_paths(state: dict, folder: Path) -> None:
    """``state`` (a ModelCheckpoint's) with every path it names moved into ``folder``, or cleared when absent."""
    def moved(path) -> str:
        new = folder / Path(str(path)).name
        return str(new) if path and new.is_file() else ""

    for key in CheckpointsFollowTheFolder.PATHS:
        if key in state:
            state[key] = moved(state[key])
    if not state.get("best_model_path"):
        state["best_model_score"] = None  # forgotten with its file: the next validation sets a new best
    kept = state.get("best_k_models") or {}
    state["best_k_models"] = {moved(path): score for path, score in kept.items() if moved(path)}
    state["dirpath"] = str(folder)
