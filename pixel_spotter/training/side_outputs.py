"""What a run writes besides its record, as Lightning callbacks: the LightningModule holds no report state.

- ``TestPredictions``: predictions.csv, (true, predicted) pixel of every test image, from the outputs the
  module's ``test_step`` returns (the model runs once). Not config: ``build()`` always adds it, like the
  callbacks of ``run_callbacks.py``, because predictions.csv is part of the run folder the report reads (per
  image errors, sample figures); a run finished ok without it would be a silently poorer record, and there
  is nothing in it for a user to configure.
- ``SampleFigure`` and ``HparamsRecord``: TensorBoard's test/sample_predictions figure and HPARAMS tab
  (settings with their final ``hp/...`` metrics). Config (conf/callbacks/default.yaml): nothing else reads
  them, so ``~callbacks.sample_figure`` loses nothing the record needs. Without a TensorBoard logger
  (``~logger``, ``~logger.tensorboard``, fast_dev_run) they do nothing.

Hand-over of the record: the figure and HPARAMS are written for a run that finished ok, with its final
metrics, and those are known only after ``trainer.test``: ``run()`` measures best_val on the weights the test
loaded, then completes the record. So ``run()`` hands the complete record over, calling ``on_record`` on
every ``RecordHook`` callback as the last step of recording. A callback given the Results object before the
test and reading it in ``on_test_end`` would see it half filled: an ordering trap this design avoids.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from lightning.pytorch.callbacks import Callback

from pixel_spotter.evaluation.figures import overlay_figure
from pixel_spotter.run_folder import Results, RunFolder
from pixel_spotter.training.loggers import tensorboard_logger


class RecordHook(Callback):
    """A callback that also receives the run's complete record; ``run()`` calls ``on_record`` once, after
    the test, with the final Results (whatever its status)."""

    def on_record(self, trainer, pl_module, record: Results) -> None:
        pass


def record_hooks(trainer, pl_module, record: Results) -> None:
    """Hand the complete record to every RecordHook of ``trainer``."""
    for callback in trainer.callbacks:
        if isinstance(callback, RecordHook):
            callback.on_record(trainer, pl_module, record)


class _TestPredictionsCollector(Callback):
    """Collects (true px, predicted px) of the last test run from what ``test_step`` returns."""

    def __init__(self):
        self._batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._batches = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if "true_px" in outputs:  # a frame model answers sets: no one (true, predicted) pixel per image
            self._batches.append((outputs["true_px"].cpu(), outputs["pred_px"].cpu()))

    def predictions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(true (N, 2) long, predicted (N, 2) float) pixel positions of the last test run."""
        if not self._batches:
            return torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, 2)
        true, pred = zip(*self._batches)
        return torch.cat(true), torch.cat(pred)


class TestPredictions(_TestPredictionsCollector):
    """Writes predictions.csv of the run folder ``run_dir`` at the end of each test (the best checkpoint's)."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, run_dir):
        super().__init__()
        self.folder = RunFolder(run_dir)

    def on_test_end(self, trainer, pl_module) -> None:
        if getattr(pl_module, "frames", False):  # sets per image: not this file's one row per image
            return
        true, pred = self.predictions()
        self.folder.write_predictions(torch.cat([true.float(), pred.float()], dim=1).tolist())


class SampleFigure(_TestPredictionsCollector, RecordHook):
    """TensorBoard figure test/sample_predictions: ``n`` test images from best to worst, of a run that ended ok."""

    def __init__(self, n: int = 8):
        super().__init__()
        self.n = n

    def on_record(self, trainer, pl_module, record: Results) -> None:
        tensorboard = tensorboard_logger(trainer)
        if tensorboard is None or not record.ok or getattr(pl_module, "frames", False):
            return
        true, pred = self.predictions()
        fig = overlay_figure(true.numpy(), pred.numpy(), record.data["height"], record.data["width"], n=self.n,
                             title=f"{record.model}: test samples (best to worst)")
        tensorboard.experiment.add_figure("test/sample_predictions", fig, global_step=trainer.global_step)
        plt.close(fig)
        tensorboard.experiment.flush()


class HparamsRecord(RecordHook):
    """TensorBoard HPARAMS tab: this run's settings with its final metrics (``hp/best_val_...``, ``hp/test_...``),
    written once, for a run that ended ok (the module logs no hyperparameters itself)."""

    def on_record(self, trainer, pl_module, record: Results) -> None:
        tensorboard = tensorboard_logger(trainer)
        if tensorboard is None or not record.ok:
            return
        params = {"model": record.model, "lr": record.lr, "max_epochs": record.max_epochs,
                  "epochs_run": record.epochs_run, "batch_size": record.data.get("batch_size"),
                  "split": record.data.get("split"), "weights": record.weights_used, "seed": record.seed,
                  "params": record.params}
        metrics = {f"hp/{stage}_{k}": v for stage, values in (("best_val", record.best_val), ("test", record.test))
                   for k, v in values.items()}
        tensorboard.log_hyperparams(params, metrics)
        tensorboard.experiment.flush()
