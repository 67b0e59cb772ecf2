"""The Bayes floor of ``data=spot``: the smallest RMSE any estimator can reach on its test images, per photon count.

    pixel-spotter spots floor [hydra overrides...] [--spots 1530] [--photons 100 200 ...] [--seed 0]
                              [--fixed background=10 sigma_psf=1] [--check] [--prior test|image] [--threads 1]

(hydra overrides of the data, e.g. data.height=16, go first, or after ``--``.)

Renders the test images exactly as ``tasks.spot.metrics.per_photons`` does (``conf/data/spot.yaml``'s mix, or what the
overrides make it: the test positions, then per-image seeds ``sample_seed(seed, STREAMS['test'], k)`` for
k = 0, 1, ... at every N, the k-th image at test position k mod P), takes the first ``--spots`` per N, and prints
per N the 2D CRLB rmse (sqrt(mean of CRLB_xx + CRLB_yy), as ``tasks.spot.metrics``) and, as ratios to it:

- floor: the 2D RMSE of the posterior mean told each image's N, b and sigma_psf (``bayes.posterior``) under
  the true prior of the positions (uniform over the test pixels): no estimator, told them or not, can have a
  lower mean squared error on these images in expectation; +- its standard error (delta method);
- E[var]: sqrt of the mean posterior variance, the same quantity estimated another way (a check: the two
  agree within the standard error when the likelihood and prior are the images' own);
- ML fit (``fit_ml``, told sigma_psf) and centroid (radius max(2, ceil(3 sigma_psf_max))) on the same images;
- lost: the fraction of spots whose floor error exceeds 3x their own CRLB sd (sqrt(CRLB_xx + CRLB_yy)),
  spots that even the ideal estimator cannot place near the truth (mostly undetectable ones), and their
  share of the floor's squared error (share).

A floor/CRLB above a target ratio at some N proves that no model can meet it there. ``--prior image`` spreads
the prior over every pixel instead of the test pixels: no longer a bound for every estimator, but what the same
oracle reaches without knowing where test spots can be, as no model trained on the honest split knows.
``--check`` repeats the posterior with twice the coarse resolution, half the fine step and a wider fine box on
the same images.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time

import torch
from hydra.utils import instantiate

from pixel_spotter.data.seeds import STREAMS, sample_seed
from pixel_spotter.errors import UserError
from pixel_spotter.spots.bayes import posterior
from pixel_spotter.spots.crlb import crlb_xy
from pixel_spotter.spots.fit import centroid, fit_ml
from pixel_spotter.tasks.spot.rendering import SpotSynthesizer
from pixel_spotter.training.compose import compose
from pixel_spotter.training.validation import validate

FINER = {"coarse": 8, "fine": 0.25, "extent": 8.0}  # --check's quadrature: every step halved, box wider


def datamodule(seed: int = 0, overrides=()):
    """The ``data=spot`` PixelDataModule of ``conf/`` (with hydra ``overrides``), set up."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose("data=spot", f"seed={seed}", *overrides, output_dir=tmp)
    validate(cfg)
    dm = instantiate(cfg.data)
    dm.setup()
    return dm


def ratio_se(errors: torch.Tensor, bounds: torch.Tensor) -> tuple[float, float]:
    """sqrt(mean errors / mean bounds) and its standard error (delta method; errors and bounds per spot,
    paired, so their covariance counts)."""
    n = len(errors)
    e, c = errors.mean(), bounds.mean()
    ratio = float((e / c).sqrt())
    if n < 2:
        return ratio, math.nan
    cov = torch.cov(torch.stack([errors / e, bounds / c]))  # relative (co)variances
    var_log = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]) / n  # of log(e / c)
    return ratio, 0.5 * ratio * math.sqrt(max(var_log, 0.0))


def images(dm, photons: float, spots: int, **fixed: float):
    """(counts (S, H, W) float64, truth) of the first ``spots`` test images at ``photons``, as per_photons draws."""
    params = dm.task.params.fixed(photons=photons, **fixed)
    positions = dm.positions["test"]
    keys = range(spots)
    xy = positions[torch.tensor([k % len(positions) for k in keys], dtype=torch.long)]
    synth = SpotSynthesizer(dm.height, dm.width, params)
    return synth.counts(xy, [sample_seed(dm.seed, STREAMS["test"], k) for k in keys]), params


def prior_pixels(dm, prior: str) -> torch.Tensor:
    """The pixels (P, 2) the posterior's uniform prior covers: ``test``, the test positions (the true prior: a
    lower bound for every estimator), or ``image``, every pixel (the posterior mean of an estimator that, like
    every model trained on the honest split, does not know which pixels the test spots are in: not a bound on
    estimators that do know, but the fair comparison for a model)."""
    if prior == "test":
        return dm.positions["test"]
    if prior == "image":
        rows, cols = torch.meshgrid(torch.arange(dm.height), torch.arange(dm.width), indexing="ij")
        return torch.stack([cols.flatten(), rows.flatten()], dim=1)
    raise ValueError(f"prior must be 'test' or 'image', not {prior!r}")


def rows(dm, photons=(100, 200, 500, 1000, 2000, 5000), spots: int = 1530, check: bool = False,
         prior: str = "test", **fixed: float):
    """One row per photon count (see the module docstring), each yielded when computed; ``fixed``: e.g.
    background=10, sigma_psf=1; ``prior``: see ``prior_pixels``."""
    pixels = prior_pixels(dm, prior)
    for n in photons:
        yield _row(dm, float(n), spots, check, pixels, fixed)


def run(dm, photons=(100, 200, 500, 1000, 2000, 5000), spots: int = 1530, check: bool = False,
        prior: str = "test", **fixed: float) -> list[dict]:
    """The rows of ``rows`` as a list."""
    return list(rows(dm, photons, spots, check, prior, **fixed))


def _row(dm, n: float, spots: int, check: bool, pixels: torch.Tensor, fixed: dict) -> dict:
    start = time.perf_counter()
    (counts, truth), params = images(dm, n, spots, **fixed)
    if float(truth.read_noise.abs().max()) > 0:
        raise ValueError("the floor's likelihood is Poisson only: set data.spot.read_noise=0")
    var_x, var_y = crlb_xy(truth.xy, truth.photons, truth.background, truth.sigma_psf, dm.height, dm.width)
    bound = var_x + var_y
    post = posterior(counts, truth.photons, truth.background, truth.sigma_psf, pixels)
    sq = ((post.mean - truth.xy) ** 2).sum(dim=1)
    radius = max(2, math.ceil(3 * params.sigma_psf[1]))
    estimates = {"ml_fit": fit_ml(counts, truth.sigma_psf).xy, "centroid": centroid(counts, radius=radius)}
    floor, floor_se = ratio_se(sq, bound)
    row = {"photons": n, "spots": len(sq), "crlb_rmse_px": float(bound.mean().sqrt()),
           "floor": floor, "floor_se": floor_se,
           "floor_var": float((post.var.sum(dim=1).mean() / bound.mean()).sqrt()),
           "lost": float((sq > 9 * bound).double().mean()),
           "lost_share": float(sq[sq > 9 * bound].sum() / sq.sum()),
           "refined": float(post.refined.double().mean())}
    for name, xy in estimates.items():
        row[name] = ratio_se(((xy - truth.xy) ** 2).sum(dim=1), bound)[0]
    if check:
        finer = posterior(counts, truth.photons, truth.background, truth.sigma_psf, pixels, **FINER)
        row["floor_finer"] = ratio_se(((finer.mean - truth.xy) ** 2).sum(dim=1), bound)[0]
        row["max_shift_over_post_sd"] = float(((finer.mean - post.mean).norm(dim=1)
                                               / finer.var.sum(dim=1).sqrt()).max())
    row["seconds"] = time.perf_counter() - start
    return row


def _fixed(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or key not in ("background", "sigma_psf") or not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"--fixed takes background=<photons/px> or sigma_psf=<px>, each a number "
                                         f"> 0, not {text!r}")
    return key, number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spots", type=int, default=1530,
                        help="test images per photon count (default 1530: 10 at each of the 153 test positions "
                             "of the 32x32 mix; about 2 minutes on one thread)")
    parser.add_argument("--photons", type=float, nargs="+", default=None,
                        help="photon counts (default data.eval_photons: 100 200 500 1000 2000 5000)")
    parser.add_argument("--seed", type=int, default=0, help="the run seed (test positions and image seeds)")
    parser.add_argument("--fixed", type=_fixed, nargs="+", default=[], metavar="KEY=VALUE",
                        help="fix background and/or sigma_psf instead of drawing them, e.g. background=10")
    parser.add_argument("--check", action="store_true", help="also a finer quadrature on the same images")
    parser.add_argument("--prior", choices=("test", "image"), default="test",
                        help="where the posterior believes spots can be: the test pixels (default: the true prior, "
                             "a bound for every estimator) or any pixel (what a model trained on the other pixels "
                             "can know; not a bound, the fair comparison)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides of the data, e.g. data.spot.sigma_psf=[1,1] "
                        "(before the options, or after --)")


def _checked_datamodule(args: argparse.Namespace):
    """The data=spot datamodule of the arguments; a bad value or override is a UserError (one line)."""
    from hydra.errors import HydraException

    if args.spots < 2:
        raise UserError(f"--spots must be at least 2 (a standard error needs two), got {args.spots}; e.g. --spots 100")
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}; e.g. --threads 1")
    try:
        dm = datamodule(args.seed, args.overrides)
    except HydraException as err:  # a bad override: one line, not a traceback
        raise UserError(" ".join(str(err).split())) from None
    if max(dm.task.params.read_noise) > 0:
        raise UserError("the floor's likelihood is Poisson only: drop the read noise with data.spot.read_noise=0")
    return dm


def _header(dm, args: argparse.Namespace, fixed: dict) -> list[str]:
    p = dm.task.params.fixed(**fixed)
    positions = len(dm.positions["test"])
    header = ["N", "spots", "CRLB px", "floor", "+-", "E[var]", "ML fit", "centroid", "lost", "share", "seconds"]
    widths = [6, 6, 8, 7, 6, 7, 7, 9, 6, 6, 8]
    if args.check:
        header[-1:-1], widths[-1:-1] = ["finer", "shift/sd"], [7, 9]
    lines = [f"data=spot {dm.height}x{dm.width}, background {p.background[0]:g}-{p.background[1]:g}/px "
             f"({'log-' if p.log_uniform else ''}uniform), sigma_psf {p.sigma_psf[0]:g}-{p.sigma_psf[1]:g} px "
             f"(uniform), seed {dm.seed}: {args.spots} test images per N at {positions} test positions "
             f"({args.spots / positions:g} each)",
             "ratios to the CRLB rmse; floor: posterior mean told N, b, sigma_psf (Bayes: no estimator does better), "
             "+- standard error; lost: floor error > 3 CRLB sd (share: of the floor's squared error)",
             " ".join(f"{h:>{w}}" for h, w in zip(header, widths))]
    if args.prior == "image":
        lines.append("prior: any pixel of the image (not a bound: the posterior mean of an estimator that does not "
                     "know the test pixels)")
    return lines


def _cells(row: dict, check: bool) -> str:
    cells = [f"{row['photons']:>6g}", f"{row['spots']:>6d}", f"{row['crlb_rmse_px']:>8.4f}",
             f"{row['floor']:>7.3f}", f"{row['floor_se']:>6.3f}", f"{row['floor_var']:>7.3f}",
             f"{row['ml_fit']:>7.3f}", f"{row['centroid']:>9.3f}", f"{row['lost']:>6.3f}",
             f"{row['lost_share']:>6.3f}"]
    if check:
        cells += [f"{row['floor_finer']:>7.3f}", f"{row['max_shift_over_post_sd']:>9.3f}"]
    return " ".join([*cells, f"{row['seconds']:>8.1f}"])


def run_command(args: argparse.Namespace) -> int:
    from pixel_spotter.cli import progress

    dm = _checked_datamodule(args)
    torch.set_num_threads(args.threads)
    fixed = dict(args.fixed)
    photons = args.photons or dm.task.eval_photons
    print("\n".join(_header(dm, args, fixed)), flush=True)
    with progress(total=len(photons), desc="spots floor", unit="N") as bar:
        for row in rows(dm, photons, args.spots, args.check, args.prior, **fixed):
            bar.write(_cells(row, args.check), file=sys.stdout)
            sys.stdout.flush()
            bar.update()
    return 0
