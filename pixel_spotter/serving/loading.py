"""Loading a trained run from an untrusted run folder: only pixel_spotter's own classes are built from its
config, weights load with ``weights_only=True``, and its task is named, never built from a ``_target_``.
The one loading path of predict, export and robustness."""

from __future__ import annotations

from pathlib import Path

from pixel_spotter import tasks
from pixel_spotter.errors import UserError, unwrapped_user_errors
from pixel_spotter.run_folder import RunFolder

# A run folder may come from anywhere: only these are ever built from its config (anything else could be
# any callable in any installed package). The network must be a torch module from pixel_spotter.models.
MODULE_TARGET = "pixel_spotter.models.regressor.CoordinateRegressor"
NET_PACKAGE = "pixel_spotter.models."
# a frame model's run (data=pixels, data=emitters) answers a set per image, which predict and export do not take
FRAME_MODULE_TARGET = "pixel_spotter.models.frame_localizer.FrameLocalizer"


def locate(target: Path) -> tuple[RunFolder, Path]:
    """(run folder, checkpoint): the best checkpoint that results.json records, or a checkpoint file given
    explicitly, which must sit in its run's checkpoints/ folder (its config is needed to rebuild the net)."""
    if target.is_dir():
        folder = RunFolder(target)
        return folder, folder.best_checkpoint()
    if target.is_file():
        folder = RunFolder(target.resolve().parent.parent)
        if target.resolve().parent != folder.checkpoints.resolve():
            raise UserError(f"{target} is not inside a run's {folder.checkpoints.name}/ folder; pass the run "
                            "folder, or a checkpoint inside it")
        return folder, target
    raise UserError(f"{target} does not exist; pass a run folder (outputs/<time>) or a checkpoint inside one")


def trusted_model_config(folder: RunFolder, frames: bool = False) -> tuple[dict, int, int]:
    """The run's model config, resolved, after checking that it builds only pixel_spotter's own classes: a
    one-answer model's (predict, export, robustness), or with ``frames`` a frame model's (localize)."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf
    from torch import nn

    cfg = folder.load_config()
    try:
        model = OmegaConf.to_container(cfg.model, resolve=True)
        height, width = cfg.data.height, cfg.data.width
    except Exception as err:
        raise UserError(f"{folder.config_file} has no usable model/data section ({type(err).__name__}); "
                        "the run folder is corrupt: retrain") from None
    if not (isinstance(height, int) and isinstance(width, int) and 2 <= height <= 10_000 and 2 <= width <= 10_000):
        raise UserError(f"{folder.config_file} gives an impossible image size {height!r}x{width!r}; retrain")
    module_target = model.get("_target_") if isinstance(model, dict) else None
    if module_target == FRAME_MODULE_TARGET and not frames:
        raise UserError(f"{folder.path} is a frame model's run: it answers a set of emitters per image, and "
                        "predict, export and robustness take runs that answer one (x, y) per image (pixel-spotter "
                        "localize takes it)")
    if module_target == MODULE_TARGET and frames:
        raise UserError(f"{folder.path} is a run of a model that answers one (x, y) per image; localize takes a "
                        "frame model's run (data=emitters model=frame_emitters)")
    wanted = FRAME_MODULE_TARGET if frames else MODULE_TARGET
    net = model.get("net") if isinstance(model, dict) else None
    targets = _targets(model)
    net_target = net.get("_target_") if isinstance(net, dict) else None
    allowed = module_target == wanted and isinstance(net_target, str) and \
        net_target.startswith(NET_PACKAGE) and targets == [wanted, net_target]
    if allowed:
        try:
            allowed = issubclass(get_class(net_target), nn.Module)
        except Exception:
            allowed = False
    if not allowed:
        raise UserError(f"{folder.config_file} asks to build {', '.join(map(str, targets)) or 'nothing'}; "
                        f"only {wanted} around a network from {NET_PACKAGE}* is built here, so this "
                        "run folder is refused (it may be tampered with)")
    if frames:  # its decode settings drive loops (the refinement's steps): checked as training checks them
        from pixel_spotter.models.frame_checks import check_frame_model

        try:
            check_frame_model(OmegaConf.create(model))
        except UserError as err:
            raise UserError(f"{folder.config_file}: {err}; the run folder is corrupt: retrain") from None
    if "weights" in net:
        net["weights"] = "none"  # the checkpoint brings the weights; never download or read another file
    return model, height, width


def run_task(folder: RunFolder, height: int, width: int):
    """The task of the run in ``folder`` (``data.task``, or what an older config implies), built from its
    checked data settings: what predict accepts and export probes with."""
    from omegaconf import DictConfig

    where = folder.config_file
    data = folder.load_config().get("data")
    if not isinstance(data, DictConfig):
        raise UserError(f"{where} has no usable data section; the run folder is corrupt: retrain")
    try:
        task = tasks.get(tasks.name_of(data))
    except UserError as err:
        raise UserError(f"{where}: {err}; the run folder is corrupt: retrain") from None
    return task.from_run_config(data, height, width, str(where))


def _targets(node) -> list:
    """Every _target_ in a config tree, depth first."""
    if isinstance(node, dict):
        found = [node["_target_"]] if "_target_" in node else []
        return found + [t for key, value in node.items() if key != "_target_" for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


def load_model(target: Path, frames: bool = False):
    """The run's CoordinateRegressor (with ``frames``: its FrameLocalizer) with its best weights, in eval mode on
    the CPU. Safe on an untrusted
    run folder: the config may only name pixel_spotter's classes, and weights load with weights_only=True
    (tensors and plain containers; a pickled object in the checkpoint is refused, never run)."""
    import torch
    from hydra.utils import instantiate

    folder, ckpt = locate(Path(target))
    model_cfg, height, width = trusted_model_config(folder, frames)
    with unwrapped_user_errors():
        model = instantiate(model_cfg, height=height, width=width)
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(state)
    except Exception as err:
        raise UserError(f"checkpoint {ckpt} cannot be loaded safely ({type(err).__name__}); it is corrupt, "
                        "from another model, or holds more than weights: retrain, or pass the run folder it "
                        "came from") from None
    return model.eval(), (height, width)


