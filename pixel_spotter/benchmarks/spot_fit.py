"""How fast is the maximum-likelihood fit, and how close do it and the centroid come to the Cramér–Rao bound?

    pixel-spotter spots bench [--spots 2000] [--size 32] [--photons 200 1000 5000] [--repeats 3] [--threads 1]

Simulates spots uniformly at least 3 px from the border of size x size images (background 10 photons/pixel,
sigma_psf 1 px unless told), fits them, and prints per photon count the 2D RMSE of each estimator divided by
the CRLB's RMSE bound (1.0 is the limit; the Monte Carlo standard error of a ratio is about
1 / (2 sqrt(spots))), the fit's convergence rate, and the fit's images/s (best of ``repeats`` runs).
"""

from __future__ import annotations

import argparse
import time

import torch

from pixel_spotter.errors import UserError
from pixel_spotter.spots.crlb import crlb_xy, rmse_bound
from pixel_spotter.spots.fit import centroid, fit_ml
from pixel_spotter.spots.psf import random_positions, simulate


def _rmse(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return float(((estimate - truth) ** 2).sum(dim=1).mean().sqrt())


def run(spots: int = 2000, size: int = 32, photons=(200, 1000, 5000), background: float = 10.0,
        sigma_psf: float = 1.0, seed: int = 0, repeats: int = 3, device: str = "cpu") -> list[dict]:
    """One row per photon count: rmse/crlb of the ML fit and of the centroid, converged fraction, images/s."""
    gen = torch.Generator(device=device).manual_seed(seed)
    rows = []
    for n in photons:
        xy = random_positions(spots, size, size, margin=3.0, generator=gen, device=device)
        images = simulate(xy, n, background, sigma_psf, size, size, generator=gen)
        bound = float(rmse_bound(*crlb_xy(xy, n, background, sigma_psf, size, size)))
        seconds = []
        for _ in range(repeats):
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
            result = fit_ml(images, sigma_psf)
            if device != "cpu":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
        rows.append({"photons": n, "crlb_rmse_px": bound, "ml_rmse_over_crlb": _rmse(result.xy, xy) / bound,
                     "centroid_rmse_over_crlb": _rmse(centroid(images, radius=3), xy) / bound,
                     "ml_converged": float(result.converged.double().mean()), "ml_images_per_s": spots / min(seconds)})
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spots", type=int, default=2000, help="spots per photon count (default 2000)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--photons", type=float, nargs="+", default=[200, 1000, 5000],
                        help="photon counts (default 200 1000 5000)")
    parser.add_argument("--background", type=float, default=10.0, help="photons per pixel (default 10)")
    parser.add_argument("--sigma-psf", type=float, default=1.0, help="PSF width in pixels (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the positions and the noise (default 0)")
    parser.add_argument("--repeats", type=int, default=3, help="timings of the fit; the best counts (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _check(args: argparse.Namespace) -> None:
    """Each bad value is a UserError naming it and a good one."""
    checks = [(args.spots >= 1, f"--spots must be at least 1, got {args.spots}; e.g. --spots 2000"),
              (args.size >= 8, f"--size must be at least 8 pixels (spots stay 3 px from the border), got "
                               f"{args.size}; e.g. --size 32"),
              (min(args.photons) > 0, f"--photons must all be > 0, got {args.photons}; e.g. --photons 200 1000"),
              (args.background > 0, f"--background must be > 0, got {args.background}; e.g. --background 10"),
              (args.sigma_psf > 0, f"--sigma-psf must be > 0, got {args.sigma_psf}; e.g. --sigma-psf 1"),
              (args.repeats >= 1, f"--repeats must be at least 1, got {args.repeats}; e.g. --repeats 3"),
              (args.threads is None or args.threads >= 1,
               f"--threads must be at least 1, got {args.threads}; e.g. --threads 1")]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise UserError(f"--device must be cpu or cuda, got {args.device!r}; e.g. --device cpu")
    if args.device != "cpu" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: no CUDA device here; use --device cpu")


def run_command(args: argparse.Namespace) -> int:
    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.spots} spots, {args.size}x{args.size} px, background {args.background:g}/px, sigma_psf "
          f"{args.sigma_psf:g} px, {args.device} ({torch.get_num_threads()} threads), standard error of a ratio "
          f"~{0.5 / args.spots ** 0.5:.3f}")
    header = ("photons", "CRLB rmse px", "ML/CRLB", "centroid/CRLB", "converged", "ML images/s")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (8, 13, 8, 14, 10, 12))))
    for row in run(args.spots, args.size, args.photons, args.background, args.sigma_psf, args.seed,
                   repeats=args.repeats, device=args.device):
        print(f"{row['photons']:>8g} {row['crlb_rmse_px']:>13.4f} {row['ml_rmse_over_crlb']:>8.3f} "
              f"{row['centroid_rmse_over_crlb']:>14.3f} {row['ml_converged']:>10.3f} {row['ml_images_per_s']:>12.0f}")
    return 0
