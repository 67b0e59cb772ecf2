"""What a run is, for resume: its whole composed config, less where it writes and how it is started. A run
folder continues only under the config that began it, so an edited config file (conf/model/cnn.yaml, an
experiment) is refused with the keys that differ, not silently continued under the new values."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

# Not identity: where the run writes, whether it resumes, the threads it is given, the metric it returns to a
# search, how a sweep shares its epochs (none change what it computes), and its epoch budget (resume.py decides
# what a new budget means).
NOT_IDENTITY = ("output_dir", "resume", "threads_per_job", "optimized_metric", "share", "trainer.max_epochs",
                "hydra")
SHOWN = 4  # differences named in one line; the rest are counted
ABSENT = "(absent)"


def flat(cfg: DictConfig) -> dict[str, str]:
    """Every leaf of ``cfg`` as {dotted key: its value as written (interpolations unresolved)}, less NOT_IDENTITY."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    leaves: dict[str, str] = {}

    def walk(value, key: str) -> None:
        if key in NOT_IDENTITY:
            return
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        else:
            leaves[key] = repr(value)

    walk(raw, "")
    return leaves


def _resolved(cfg: DictConfig, key: str):
    """The value at ``key`` with interpolations resolved, or a marker when it cannot be (Hydra's own resolvers,
    which only a running job has)."""
    try:
        return repr(OmegaConf.to_container(OmegaConf.create({"v": OmegaConf.select(cfg, key)}), resolve=True)["v"])
    except Exception:
        return object()  # equal to nothing


def differences(then: DictConfig, now: DictConfig) -> list[str]:
    """``key: was A, now B`` for every identity key whose value differs between two composed configs. Values
    are compared as written; where they are written differently but resolve to the same value (a key that became
    an interpolation with the old value as its default, e.g. the checkpoint's ``monitor``), they are the same."""
    old, new = flat(then), flat(now)
    keys = sorted(set(old) | set(new))
    return [f"{k}: was {old.get(k, ABSENT)}, now {new.get(k, ABSENT)}" for k in keys
            if old.get(k) != new.get(k) and not (k in old and k in new and _resolved(then, k) == _resolved(now, k))]


def describe(diff: list[str]) -> str:
    """The first few differences, and how many more there are."""
    more = f" and {len(diff) - SHOWN} more" if len(diff) > SHOWN else ""
    return "; ".join(diff[:SHOWN]) + more
