"""results.json: the typed Results record; strict JSON out, any content in (never a trace)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from pixel_spotter.run_folder.layout import DIVERGED, FAILED, OK, RESULTS, RUNNING, UNREADABLE


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_dict(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and (v is None or _number(v)) for k, v in value.items())


def _optional(check):
    return lambda value: value is None or check(value)


@dataclass
class Results:
    """results.json: what ran, what it cost and what it scored; complete on its own (the report needs
    nothing else to rank runs). Metric values are floats, or None where the run produced a non-finite one."""

    status: str = RUNNING
    error: str | None = None
    model: str | None = None
    net: str | None = None
    job_num: int | None = None
    overrides: list = field(default_factory=list)
    lr: float | None = None
    max_epochs: int | None = None
    seed: int | None = None
    data: dict = field(default_factory=dict)
    weights_requested: str | None = None
    weights_used: str | None = None
    epochs_run: int | None = None
    resumed_from: str | None = None  # the checkpoint this (last) start continued from
    shared_from: int | None = None  # the job of its sweep that trained these epochs (an epoch sweep trains once)
    params: int | None = None
    train_seconds: float | None = None
    inference_ms_per_image: dict = field(default_factory=dict)
    test_overlap: float | None = None
    best_checkpoint: str | None = None  # relative to the run folder
    best_val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    # data=spot only (tasks/spot/metrics.py): the reference estimators on the same test images, {name: {rmse_px,
    # rmse2d_px, rmse_over_crlb, images_per_s, ...}}; the model's images/s (batched, 1000 /
    # inference_ms_per_image.batched); RMSE/CRLB per photon count of the model and the references.
    references: dict = field(default_factory=dict)
    images_per_s: float | None = None
    # frame models only: how localizations were read from the network's maps, e.g. {"threshold": 0.4}, the
    # detection threshold chosen on the validation frames (the test is scored with it)
    decode: dict = field(default_factory=dict)
    # data=emitters: the test's calibration curve of the predicted sigmas (evaluation.localizations.Tally
    # .calibration), [{sigma_nm, rms_error_nm, coordinates}, ...] per bin of predicted sigma
    calibration: list = field(default_factory=list)
    per_photons: list = field(default_factory=list)
    device: str | None = None
    versions: dict = field(default_factory=dict)
    hardware: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        """Strict JSON: a non-finite number becomes null (and a run with one is never 'ok')."""
        return json.dumps(_finite(self.as_dict()), indent=2, default=str, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Results:
        """Parse untrusted text; never raises. Anything malformed reads as status 'unreadable' with the reason."""
        try:
            raw = json.loads(text, parse_constant=float)  # tolerate NaN/Infinity written by older versions
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
            return cls(status=UNREADABLE, error=f"{RESULTS} is not valid JSON ({_short(err)})")
        if not isinstance(raw, dict):
            return cls(status=UNREADABLE, error=f"{RESULTS} holds a {type(raw).__name__}, not an object")
        wrong = [name for name, check in _CHECKS.items() if name in raw and not check(raw[name])]
        if wrong:
            return cls(status=UNREADABLE, error=f"{RESULTS} has fields of the wrong type: {', '.join(wrong)}")
        record = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        if record.status not in (RUNNING, OK, FAILED, DIVERGED):
            return cls(status=UNREADABLE, error=f"{RESULTS} has an unknown status {_short(record.status)!r}")
        if record.ok and not _all_finite([record.test, record.best_val]):
            record.status, record.error = DIVERGED, "non-finite metrics recorded under status ok"
        if record.ok and not record.test:
            record.status, record.error = UNREADABLE, f"{RESULTS} says ok but holds no test metrics"
        if record.ok and (impossible := _impossible({"test": record.test, "best_val": record.best_val})):
            record.status = UNREADABLE
            record.error = (f"{RESULTS} records impossible metrics ({impossible}); it was edited or written by a "
                            "bug, so it is not ranked: retrain the run")
        return record


_CHECKS = {
    "status": lambda v: isinstance(v, str),
    "error": _optional(lambda v: isinstance(v, str)),
    "model": _optional(lambda v: isinstance(v, str)),
    "net": _optional(lambda v: isinstance(v, str)),
    "job_num": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "overrides": lambda v: isinstance(v, list) and all(isinstance(o, str) for o in v),
    "lr": _optional(_number),
    "max_epochs": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "seed": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "data": lambda v: isinstance(v, dict),
    "weights_requested": _optional(lambda v: isinstance(v, str)),
    "weights_used": _optional(lambda v: isinstance(v, str)),
    "epochs_run": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "resumed_from": _optional(lambda v: isinstance(v, str)),
    "shared_from": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "params": _optional(lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "train_seconds": _optional(_number),
    "inference_ms_per_image": _metric_dict,
    "test_overlap": _optional(_number),
    "best_checkpoint": _optional(lambda v: isinstance(v, str)),
    "best_val": _metric_dict,
    "test": _metric_dict,
    "references": lambda v: isinstance(v, dict) and all(_metric_dict(x) for x in v.values()),
    "images_per_s": _optional(_number),
    "decode": _metric_dict,
    "per_photons": lambda v: isinstance(v, list) and all(_metric_dict(x) for x in v),
    "calibration": lambda v: isinstance(v, list) and all(_metric_dict(x) for x in v),
    "device": _optional(lambda v: isinstance(v, str)),
    "versions": lambda v: isinstance(v, dict) and all(isinstance(x, (str, type(None))) for x in v.values()),
    "hardware": lambda v: isinstance(v, dict) and all(isinstance(x, (str, int, type(None))) for x in v.values()),
}
assert set(_CHECKS) == {f.name for f in fields(Results)}, "every Results field needs a type check"


def _finite(value):
    """A copy of ``value`` with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


SHARES = ("jaccard", "recall", "precision", "f1", "exact_frames", "z_within_1")  # a frame task's, in [0, 1]
COUNTS = ("tp", "fp", "fn", "z_rms")


def _impossible(metrics: dict[str, dict]) -> str | None:
    """The first metric value no run can measure (an error or distance below 0, an accuracy outside 0..1), as
    ``test.euclid_px = -3``; None when all are possible. Names follow evaluation/metric_names.py."""
    for where, values in metrics.items():
        for name, value in values.items():
            if value is None:
                continue
            below_zero = (name.endswith(("_px", "_nm", "_over_crlb", "_over_bound")) or name in COUNTS) and value < 0
            share = name.endswith("_acc") or name in SHARES
            if below_zero or (share and not 0 <= value <= 1) or (name == "efficiency" and value > 100):
                return f"{where}.{name} = {value:g}"
    return None


def _all_finite(metric_dicts: list[dict]) -> bool:
    return all(v is not None and math.isfinite(v) for d in metric_dicts for v in d.values())


def all_finite(metrics: dict) -> bool:
    """True when every value of a metric dict is a finite number (the test for 'diverged')."""
    return _all_finite([metrics])


def _short(text, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
