"""Entry point: `python train.py [overrides]` or `python train.py -m model=cnn,resnet18` (see README)."""

import sys

import hydra
from omegaconf import DictConfig

import pixel_spotter  # noqa: F401  (registers the run_folder.* resolvers that conf/hydra uses)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from pixel_spotter.training.run import main as run_main  # imported late so `--help` stays fast

    return run_main(cfg)


if __name__ == "__main__":
    from pixel_spotter.sweeps.launchers import missing_extra

    if message := missing_extra(sys.argv[1:]):
        sys.exit(message)
    main()
