"""The run folder: the one package that knows its layout, claims it, writes and reads its record, and
finds runs and job numbers. Nothing else in the project names a run file.

    <run>/                     outputs/<time>_<pid>-<rand>/  or  multirun/<time>_<pid>-<rand>/<job#>_<overrides>/
      .hydra/                  config.yaml, hydra.yaml, overrides.yaml: written here, after the folder is claimed
      results.json             the Results record: status running -> ok | failed | diverged; strict JSON
      predictions.csv          x_true,y_true,x_pred,y_pred per test image
      error.txt                the traceback of a run that failed for a reason other than a user error
      checkpoints/             best-epochNNN.ckpt (by val/euclid_px) and last.ckpt (every epoch, for resume)
      tensorboard/             TensorBoard event files
      csv/metrics.csv          the learning curves, one row per logged step; a resumed run appends to it
      run.lock                 flock-ed by the process writing the run; free = nobody is (any more)
    <sweep>/multirun.yaml      the sweep's config: which jobs a sweep has, started or not; what a search searched
    <sweep>/sweep.lock         flock-ed by the process running the sweep
    <sweep>/robustness.csv     `pixel-spotter robustness`: accuracy per corruption and severity (+ robustness.png)
    <sweep>/optuna.db          a search's Optuna study (hparams_search=optuna; SQLite), kept across resumes

A run folder read here may come from anywhere, so reading never trusts it: any content of results.json
reads as a Results record (an unreadable one says why), and a checkpoint path must lie inside the run.

Modules: layout (names, statuses, config resolvers) · record (Results, results.json) · folder (RunFolder:
paths, safe reading, atomic writes, claim) · locks (run and sweep flocks) · resume (how a claimed run starts:
fresh, resumed or skipped) · readers (.hydra/, predictions.csv, CSV log) · jobs
(finding runs, job numbers, a sweep's planned jobs, its config and the search it ran) · robustness_csv
(robustness.csv, written and read back untrusted).
"""

from pixel_spotter.run_folder.folder import RunFolder, temporary_beside
from pixel_spotter.run_folder.folder import _atomic_write as atomic_write
from pixel_spotter.run_folder.jobs import (
    Job,
    Search,
    find_runs,
    is_run_dir,
    job_name,
    natural_key,
    planned_jobs,
    save_sweep_config,
    search_of,
    sweep_jobs,
    sweep_of,
)
from pixel_spotter.run_folder.layout import (
    CHECKPOINTS,
    CSV_LOG,
    CSV_METRICS,
    DIVERGED,
    FAILED,
    INTERRUPTED,
    NOT_STARTED,
    OK,
    PREDICTIONS,
    RESULTS,
    ROBUSTNESS,
    ROBUSTNESS_PLOT,
    RUNNING,
    STUDY,
    SWEEP_CONFIG,
    UNFINISHED,
    UNREADABLE,
    unique_tag,
)
from pixel_spotter.run_folder.locks import hold_lock, lock_sweep
from pixel_spotter.run_folder.record import Results, all_finite
from pixel_spotter.run_folder.resume import Start
from pixel_spotter.run_folder.robustness_csv import REFERENCE_RUN, RobustnessRow, read_robustness, write_robustness

__all__ = [
    "atomic_write",
    "temporary_beside",
    "CHECKPOINTS", "CSV_LOG", "CSV_METRICS", "DIVERGED", "FAILED", "INTERRUPTED", "NOT_STARTED", "OK", "PREDICTIONS",
    "REFERENCE_RUN", "RESULTS", "ROBUSTNESS", "ROBUSTNESS_PLOT", "RUNNING", "STUDY", "SWEEP_CONFIG", "UNFINISHED",
    "UNREADABLE", "Job", "Results", "RobustnessRow", "RunFolder", "Search", "Start",
    "all_finite", "find_runs", "hold_lock", "is_run_dir", "job_name", "lock_sweep", "natural_key", "planned_jobs",
    "read_robustness", "save_sweep_config", "search_of", "sweep_jobs", "sweep_of", "unique_tag", "write_robustness",
]
