"""A callback that kills its own process with SIGKILL (no cleanup, like `kill -9` or the OOM killer) when
the environment variable PIXEL_SPOTTER_TEST_KILL is "<job>:<epoch>:<batch>" and this job reaches that
batch. <job> is the sweep job number, or "run" for a single run. Used by tests/training/test_resume.py and
tests/sweeps/test_launchers.py (a parallel sweep's worker killed)."""

import os
import signal

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback


class KillAt(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        spec = os.environ.get("PIXEL_SPOTTER_TEST_KILL")
        if not spec:
            return
        job, epoch, batch_no = spec.split(":")
        num = HydraConfig.get().job.get("num") if HydraConfig.initialized() else None
        me = "run" if num is None else str(num)
        if job == me and (trainer.current_epoch, batch_idx) == (int(epoch), int(batch_no)):
            os.kill(os.getpid(), signal.SIGKILL)
