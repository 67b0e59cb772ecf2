"""The names of what a run measures, without torch: the config checks, the search and the report (which never
imports torch) agree on them here. The metrics themselves are defined in pixel_spotter/evaluation/metrics.py
(one answer per image) and pixel_spotter/evaluation/localizations.py (a set per frame)."""

METRIC_NAMES = ("mse_px", "mae_px", "rmse_px", "euclid_px", "exact_acc", "within1_acc")
# A frame task's (many emitters per frame): the localization-microscopy challenge's numbers and the share of
# frames found exactly (localizations.Tally.summary); rmse_px is the matched pairs' there.
FRAME_METRIC_NAMES = ("jaccard", "recall", "precision", "f1", "efficiency", "exact_frames", "rmse_nm")
# Which direction is better, for checkpoint monitoring, searches and "best run" choices in reports.
HIGHER_IS_BETTER = {"exact_acc", "within1_acc", "jaccard", "recall", "precision", "f1", "efficiency",
                    "exact_frames"}
# The training loss, also logged per stage (val/loss) and recorded for the best checkpoint (best_val.loss).
LOSS = "loss"
# Metrics a checkpoint, early stopping or a search can watch: the validation loss and every metric above.
MONITORS = (f"val/{LOSS}", *(f"val/{name}" for name in (*METRIC_NAMES, *FRAME_METRIC_NAMES)))
