"""Real learning, not just running: a short seeded CPU training of the best model localizes held-out
positions exactly. A change that breaks learning (loss, readout, data labels, metrics) fails here."""

import pytest

from pixel_spotter.train import run


@pytest.mark.parametrize("split", ["position", "quadrant"])
def test_heatmap_finds_unseen_pixels_exactly(make_cfg, split):
    record = run(make_cfg("model=heatmap", f"data.split={split}", "data.height=32", "data.width=32",
                          "trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=0"))
    assert record.test_overlap == 0.0  # every test position is new to the model
    assert record.test["exact_acc"] >= 0.99
    assert record.test["euclid_px"] < 0.1
