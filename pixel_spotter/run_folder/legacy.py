"""Run folders written before the package took its areas (before version 0.2) name classes where they used to
live. Their configs are read through this table, so such a folder still predicts, exports, reports and resumes.

Only ``_target_`` strings found here are rewritten, each to the class that replaced it; everything else is left
as written (and still checked by whoever builds from it: an unknown target is refused there, not here). A config
written before tasks had names gets the ``data.task`` it was (``tasks.name_of``), so resume compares like with like.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

MOVED = {
    "pixel_spotter.module.CoordinateRegressor": "pixel_spotter.models.regressor.CoordinateRegressor",
    "pixel_spotter.data.PixelDataModule": "pixel_spotter.data.datamodule.PixelDataModule",
    "pixel_spotter.synthesis.Augment": "pixel_spotter.data.augment.Augment",
    "pixel_spotter.spot_synthesis.SpotParams": "pixel_spotter.tasks.spot.rendering.SpotParams",
    "pixel_spotter.side_outputs.SampleFigure": "pixel_spotter.training.side_outputs.SampleFigure",
    "pixel_spotter.side_outputs.HparamsRecord": "pixel_spotter.training.side_outputs.HparamsRecord",
    "pixel_spotter.loggers.ResumableCSVLogger": "pixel_spotter.training.loggers.ResumableCSVLogger",
    "pixel_spotter.hydra_callbacks.SweepSummary": "pixel_spotter.sweeps.summary.SweepSummary",
}


def _rewritten(node):
    if isinstance(node, dict):
        return {key: MOVED.get(value, value) if key == "_target_" and isinstance(value, str) else _rewritten(value)
                for key, value in node.items()}
    if isinstance(node, list):
        return [_rewritten(value) for value in node]
    return node


def modernize(cfg: DictConfig) -> DictConfig:
    """``cfg`` (a run's config tree) with every ``_target_`` that names a moved class rewritten; interpolations
    stay unresolved, as written; ``data.task`` filled in where the config predates it."""
    from pixel_spotter.tasks import name_of

    tree = _rewritten(OmegaConf.to_container(cfg, resolve=False))
    data = tree.get("data")
    if isinstance(data, dict) and "task" not in data:
        data["task"] = name_of(data)
    return OmegaConf.create(tree)
