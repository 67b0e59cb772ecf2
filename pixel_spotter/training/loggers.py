"""Loggers: a CSV logger that survives a resume, and how side outputs find the TensorBoard logger.

Lightning's CSVLogger deletes an existing metrics.csv when a new logger starts writing into the same folder
(``_ExperimentWriter._check_log_dir_exists``), so a run killed and resumed with resume=true would keep only
the curves of its last start. ``ResumableCSVLogger`` keeps the rows and appends under the existing header;
the epoch a killed run was in is logged again by the resumed one, and ``RunFolder.read_curves`` lets the
later row win. Where the log lives and what its file is called belong to ``run_folder/``.
"""

from __future__ import annotations

import csv
import logging
import os

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from pixel_spotter.run_folder import CSV_METRICS

log = logging.getLogger(__name__)


class _AppendingWriter(ExperimentWriter):
    NAME_METRICS_FILE = CSV_METRICS

    def _check_log_dir_exists(self) -> None:
        """Instead of deleting an existing metrics file: drop a half-written last line (the writer was
        killed mid-append) and take over its header, so new rows append under the same columns (a new
        column rewrites the file with a wider header, keeping every row: Lightning's own path)."""
        path = self.metrics_file_path
        if not os.path.isfile(path):
            return
        try:
            with open(path, "rb+") as f:
                data = f.read()
                complete = data.rfind(b"\n") + 1
                if complete < len(data):
                    f.truncate(complete)
            header = next(csv.reader([data[:complete].decode("utf-8").splitlines()[0]]), [])
        except (OSError, ValueError, IndexError, csv.Error) as err:
            header = []
            log.warning("%s cannot be continued (%s); starting it again", path, err)
        if header:
            self.metrics_keys = header
        else:  # no complete header line: nothing worth keeping
            os.remove(path)


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that it appends to an existing metrics file instead of deleting it."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def tensorboard_logger(trainer) -> TensorBoardLogger | None:
    """The run's TensorBoard logger among ``trainer.loggers`` (conf/logger), or None without one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
