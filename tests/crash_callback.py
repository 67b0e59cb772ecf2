"""A callback that kills its own process with SIGKILL (no cleanup, like `kill -9` or the OOM killer) when
the environment variable PIXEL_SPOTTER_TEST_KILL is "<job>:<epoch>:<batch>" and this job reaches that
training batch, or "<job>:test:<batch>", that batch of its test. <job> is the sweep job number, or "run" for
a single run. Used by tests/training/test_resume.py, tests/sweeps/test_launchers.py (a parallel sweep's
worker killed) and tests/sweeps/test_shared_prefix.py (a job killed in its test)."""

import os
import signal

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback


def _spec():
    spec = os.environ.get("PIXEL_SPOTTER_TEST_KILL")
    if not spec:
        return None
    job, epoch, batch_no = spec.split(":")
    num = HydraConfig.get().job.get("num") if HydraConfig.initialized() else None
    return (epoch, int(batch_no)) if job == ("run" if num is None else str(num)) else None


class KillAt(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        spec = _spec()
        if spec and spec[0] != "test" and (trainer.current_epoch, batch_idx) == (int(spec[0]), spec[1]):
            os.kill(os.getpid(), signal.SIGKILL)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if _spec() == ("test", batch_idx):  # "<job>:test:<batch>": during the test, after training ended
            os.kill(os.getpid(), signal.SIGKILL)
