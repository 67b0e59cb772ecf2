import math

import pytest
import torch

from pixel_spotter.evaluation.metrics import METRIC_NAMES, pixel_metrics


def _compute(preds, target):
    metrics = pixel_metrics("test")
    metrics.update(torch.tensor(preds, dtype=torch.float), torch.tensor(target, dtype=torch.float))
    return {k.split("/")[1]: float(v) for k, v in metrics.compute().items()}


def test_names_are_stage_prefixed():
    assert set(pixel_metrics("val").keys()) == {f"val/{n}" for n in METRIC_NAMES}


def test_hand_made_predictions():
    target = [[10, 10], [0, 0], [5, 7], [3, 3]]
    preds = [[10.4, 9.6], [3, 4], [5.6, 7], [3, 4.2]]  # exact, 5 px off, rounds wrong, 1.2 px off in y
    got = _compute(preds, target)
    sq = [0.16, 0.16, 9, 16, 0.36, 0, 0, 1.44]
    ab = [0.4, 0.4, 3, 4, 0.6, 0, 0, 1.2]
    assert got["mse_px"] == pytest.approx(sum(sq) / 8)
    assert got["rmse_px"] == pytest.approx(math.sqrt(sum(sq) / 8))
    assert got["mae_px"] == pytest.approx(sum(ab) / 8)
    assert got["euclid_px"] == pytest.approx((math.hypot(0.4, 0.4) + 5 + 0.6 + 1.2) / 4)
    assert got["exact_acc"] == pytest.approx(1 / 4)  # (5.6 -> 6) and (4.2 -> 4) are misses
    assert got["within1_acc"] == pytest.approx(2 / 4)  # 0.57 px and 0.6 px


def test_accumulates_over_batches_like_one_batch():
    gen = torch.Generator().manual_seed(0)
    preds, target = torch.rand(100, 2, generator=gen) * 49, torch.randint(0, 50, (100, 2), generator=gen).float()
    metrics = pixel_metrics("val")
    for p, t in zip(preds.split(7), target.split(7)):
        metrics.update(p, t)
    batched = {k: float(v) for k, v in metrics.compute().items()}
    whole = pixel_metrics("val")
    whole.update(preds, target)
    assert batched == pytest.approx({k: float(v) for k, v in whole.compute().items()})
