"""`pixel-spotter emitters bench RUN [RUN ...]`: the density benchmark of many emitters per frame. At each density
(emitters per um^2) it renders ``--val-frames`` validation and ``--frames`` test frames of ``--size`` pixels from
each run's own emitter ranges and camera (only the density fixed), and scores on the same test frames, side by
side:

- each run's frame model (its threshold and split re-chosen on that density's validation frames),
- the classical pipeline (``spots/classical.py``, its SNR threshold chosen on the same validation frames),
- Picasso's identify + gaussmle (``picasso_reference.py``), when the ``picasso`` extra is installed,

as the SMLM Challenge 2016 scores (Jaccard index, RMSE of the matched pairs, efficiency; matched within the run's
``data.tolerance_nm``), plus the matched pairs' RMSE over their single-emitter Cramér–Rao bound (a lower bound in
crowded frames), the efficiency and that ratio each with its 95 % interval over resampled test frames
(``evaluation/intervals.py``: the ratio is a few close pairs' on 100 frames), the same ratio over the isolated
emitters alone (no other within twice the tolerance: where that bound is the bound) and frames per second on this
machine, the best of two passes over the test frames (the network
and its decode, the network run by ``--runtime``, ``serving/frame_runtime.py``, as many frames a pass as that
runtime is fastest with; the classical pipeline; Picasso as a
user runs it: the frames written as a TIFF and loaded with its own reader, then identified and fitted).

Output: ``emitters.csv`` (``COLUMNS``) and ``emitters.md`` in ``--out``, and the table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

from pixel_spotter.serving.frame_runtime import RUNTIMES, frames_per_pass

COLUMNS = ("density_per_um2", "method", "frames", "emitters", "tp", "fp", "fn", "jaccard", "recall", "precision",
           "rmse_nm", "efficiency", "efficiency_low", "efficiency_high", "rmse_over_bound", "rmse_over_bound_low",
           "rmse_over_bound_high", "isolated_over_bound",
           "error_over_joint_bound", "efficient_over_bound", "z_rms", "frames_per_s", "threshold",
           "split", "runtime")
DENSITIES = (0.25, 0.5, 1.0, 2.0, 4.0)
VAL_STREAM, TEST_STREAM = 21, 22  # the benchmark's own seed streams: frames no run trained or was tested on
MAX_PIXELS = 2**26  # per density, for its validation or its test frames: 512 MiB of float64 photons
TIMING_REPEATS = 2  # each method's frames/s: the best of this many passes over the test frames


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="data=emitters run folders")
    parser.add_argument("--densities", default=",".join(f"{d:g}" for d in DENSITIES),
                        help="emitters per um^2, comma-separated (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=500, help="test frames per density (default: %(default)s; "
                        "fewer make RMSE / CRLB a draw of a few close pairs and Picasso's frames/s its fixed cost)")
    parser.add_argument("--val-frames", type=int, default=None, help="validation frames per density, to choose "
                        "the thresholds on (default: as many as --frames; more make the choice less noisy)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the benchmark's frames (default: %(default)s)")
    parser.add_argument("--border-nm", type=float, default=None, help="leave out localizations and true emitters "
                        "this close to the frame's edge, as the challenge did with 450 (default: the run's "
                        "data.border_nm, none)")
    parser.add_argument("--no-picasso", action="store_true", help="leave Picasso out even when it is installed")
    parser.add_argument("--refine", type=int, default=None, help="steps of the models' maximum-likelihood "
                        "refinement (0: the network alone; default: each run's model.refine)")
    parser.add_argument("--out", type=Path, default=None, help="where to write emitters.csv and emitters.md "
                        "(default: the first RUN)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto", help="what runs the models' networks: "
                        "PyTorch, or ONNX Runtime (the export extra) on the same weights; auto: onnxruntime when "
                        "installed and it answers as PyTorch does (default: %(default)s)")


def _densities(text: str) -> list[float]:
    from pixel_spotter.errors import UserError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise UserError(f"--densities {text!r}: give emitters per um^2 > 0, comma-separated, e.g. 0.25,1,4")
    return values


def _frames(synth, seed: int, stream: int, count: int):
    from pixel_spotter.data.seeds import sample_seed

    test = stream == TEST_STREAM
    return synth([sample_seed(seed, stream, k) for k in range(count)], "cpu", bounds=test, joint_bounds=test)


def _row(density, method, truth, tally, seconds, threshold) -> dict:
    from pixel_spotter.evaluation.intervals import frame_bootstrap

    summary = tally.summary()
    row = {"density_per_um2": density, "method": method, "frames": len(truth), "emitters": int(truth.counts.sum()),
           "frames_per_s": len(truth) / max(seconds, 1e-9), "threshold": threshold}
    row.update({k: summary.get(k) for k in COLUMNS if k in summary})
    for name, (low, high) in frame_bootstrap(tally).items():  # 95 % over resampled test frames
        row.update({f"{name}_low": low, f"{name}_high": high})
    return row


def _timed(localize, repeats: int = TIMING_REPEATS):
    """(what ``localize()`` answers, its best wall time of ``repeats``): one pass is at the mercy of the machine."""
    best, found = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        found = localize()
        best = min(best, time.perf_counter() - start)
    return found, best


def _score(tally, found_xy, truth, sigmas=None):
    for i, xy in enumerate(found_xy):
        tally.add(xy, truth.frame(i), truth.frame_bounds(i), None if sigmas is None else sigmas[i],
                  joint_bounds=truth.frame_joint_bounds(i))
    return tally


def bench_density(runs, task, density: float, frames: int, size: int, seed: int, picasso: bool,
                  border_nm: float | None = None, val_frames: int | None = None) -> list[dict]:
    """Every method's row at one density, on frames rendered from ``task``'s ranges and camera (``frames`` test
    frames, ``val_frames`` validation frames, default as many); ``runs``: (name, model, runtime) of each run."""
    import torch

    from pixel_spotter.spots.classical import localize, tune_threshold
    from pixel_spotter.tasks.emitters.references import THRESHOLDS
    from pixel_spotter.tasks.emitters.rendering import EmitterSynthesizer
    from pixel_spotter.tasks.emitters.task import EmittersTask

    bench_task = EmittersTask(size, size, emitters=(replace(task.ranges, density_per_um2=density), (density, density)),
                              camera=task.camera, input_scale=task.input_scale, tolerance_nm=task.tolerance_nm,
                              border_nm=task.border_nm if border_nm is None else border_nm)
    synth = EmitterSynthesizer(size, size, bench_task.ranges, bench_task.density, task.camera, task.input_scale)
    val_images, val, val_photons = _frames(synth, seed, VAL_STREAM, val_frames or frames)
    images, truth, photons = _frames(synth, seed, TEST_STREAM, frames)
    rows = []
    for name, model, runtime in runs:
        threshold, split = model.tune_decode([(val_images, val)], bench_task.tally)
        if model.refine:  # the PSF width prior and the refined sigmas' factors: on the same validation frames (the
            model.calibrate_refinement(lambda: [(val_images, val)], bench_task.tally)  # network's: the run's own)
        with torch.inference_mode():
            model.localize(images[:4])  # warm-up
            frames_a_pass = frames_per_pass(runtime, size, size)  # as `pixel-spotter localize` runs by default
            found, seconds = _timed(lambda m=model, k=frames_a_pass: [f for batch in images.split(k)
                                                                      for f in m.localize(batch)])
        tally = _score(bench_task.tally(), [f["xy"] for f in found], truth, [f["sigma"] for f in found])
        rows.append({**_row(density, name, truth, tally, seconds, threshold), "split": split, "runtime": runtime})
    sigma = bench_task.sigma_psf
    val_truth = [val.frame(i) for i in range(len(val))]
    threshold, _ = tune_threshold(val_photons, val_truth, sigma, THRESHOLDS, task.ranges.pixel_size_nm,
                                  task.tolerance_nm)
    found, seconds = _timed(lambda: [loc.xy.numpy() for loc in localize(photons, sigma, threshold)])
    rows.append(_row(density, "classical", truth, _score(bench_task.tally(), found, truth), seconds, threshold))
    if picasso:
        from pixel_spotter.tasks.emitters import picasso_reference

        settings = picasso_reference.tune(val_photons, val_truth, sigma, bench_task.tally)
        found, seconds = _timed(lambda: picasso_reference.localize(photons, sigma, settings))
        rows.append(_row(density, "picasso", truth, _score(bench_task.tally(), found, truth), seconds,
                         settings["min_net_gradient"]))
    return rows


def _load(runs: list[Path], runtime: str = "torch"):
    """([(name, model, the runtime of its network)], the first run's task); why a run's network is PyTorch's under
    ``--runtime auto`` is printed once."""
    from pixel_spotter.errors import UserError
    from pixel_spotter.serving.frame_runtime import use_runtime
    from pixel_spotter.serving.loading import load_model, locate, run_task

    loaded, task = [], None
    for path in runs:
        folder, _ = locate(path)
        record = folder.read()
        if not record.ok:
            raise UserError(f"run {path} has status '{record.status}'; the benchmark needs a run that finished ok")
        model, size = load_model(path, frames=True)
        run_task_ = run_task(folder, *size)
        if run_task_.name != "emitters":
            raise UserError(f"run {path} is a data={run_task_.name} run; the density benchmark takes data=emitters "
                            "runs")
        task = task or run_task_
        model.input_scale = run_task_.input_scale  # the refinement fits photons: what the run's input is scaled by
        model.apply_decode(record.decode)  # its sigma calibration (the threshold is chosen again per density)
        used, why = use_runtime(model, runtime, *size)
        if why:
            print(f"note: {path}'s network runs on PyTorch: {why}", file=sys.stderr)
        loaded.append((f"{record.model or 'model'} ({folder.path.name})", model, used))
    return loaded, task


def _markdown(rows: list[dict]) -> str:
    headers = ["density (/µm²)", "method", "Jaccard", "RMSE (nm)", "efficiency (95 % interval)",
               "RMSE / CRLB (95 % interval)", "RMSE / CRLB, isolated", "error / joint CRLB (RMS)",
               "RMSE / CRLB at the joint CRLB", "z RMS",
               "frames/s"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]

    def f(value, spec):
        return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "—"

    def within(r, name, spec):  # the value, and its interval over resampled test frames when there is one
        low, high = r.get(f"{name}_low"), r.get(f"{name}_high")
        span = f" ({f(low, spec)} to {f(high, spec)})" if low is not None and high is not None else ""
        return f(r.get(name), spec) + span

    for r in rows:
        lines.append(f"| {r['density_per_um2']:g} | {r['method']} | {f(r.get('jaccard'), '.3f')} | "
                     f"{f(r.get('rmse_nm'), '.1f')} | {within(r, 'efficiency', '.1f')} | "
                     f"{within(r, 'rmse_over_bound', '.2f')} | {f(r.get('isolated_over_bound'), '.2f')} | "
                     f"{f(r.get('error_over_joint_bound'), '.2f')} | {f(r.get('efficient_over_bound'), '.2f')} | "
                     f"{f(r.get('z_rms'), '.2f')} | "
                     f"{f(r.get('frames_per_s'), '.0f')} |")
    return "\n".join(lines) + "\n"


def write(rows: list[dict], out: Path) -> tuple[Path, Path]:
    import io

    from pixel_spotter.run_folder import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    csv_path, md_path = out / "emitters.csv", out / "emitters.md"
    atomic_write(csv_path, buffer.getvalue())  # beside the target, then renamed: never half a table
    atomic_write(md_path, _markdown(rows))
    return csv_path, md_path


def picasso_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("picasso") is not None


def run_command(args: argparse.Namespace) -> int:
    from pixel_spotter.cli import progress
    from pixel_spotter.errors import UserError

    densities = _densities(args.densities)
    if not 1 <= args.frames <= 100_000:
        raise UserError(f"--frames {args.frames}: give 1 to 100000 frames per density")
    if not 16 <= args.size <= 1024:
        raise UserError(f"--size {args.size}: give a frame side of 16 to 1024 pixels")
    if args.frames * args.size ** 2 > MAX_PIXELS:  # the frames of one density are rendered at once
        raise UserError(f"--frames {args.frames} of {args.size}x{args.size} is {args.frames * args.size ** 2:,} "
                        f"pixels per density, above {MAX_PIXELS:,}; fewer or smaller frames")
    val_frames = args.frames if args.val_frames is None else args.val_frames
    if not 1 <= val_frames <= 100_000:
        raise UserError(f"--val-frames {val_frames}: give 1 to 100000 validation frames per density")
    if val_frames * args.size ** 2 > MAX_PIXELS:
        raise UserError(f"--val-frames {val_frames} of {args.size}x{args.size} is {val_frames * args.size ** 2:,} "
                        f"pixels per density, above {MAX_PIXELS:,}; fewer or smaller frames")
    if args.border_nm is not None and not (math.isfinite(args.border_nm) and 0 < args.border_nm < args.size * 25):
        raise UserError(f"--border-nm {args.border_nm:g}: give a border in nm > 0 that leaves part of the frame")
    runs, task = _load(args.runs, args.runtime)
    from pixel_spotter.spots.frames import too_crowded

    for density in densities:  # before any rendering: the reason is the one line
        why = too_crowded(replace(task.ranges, density_per_um2=density), args.size, args.size)
        if why:
            raise UserError(f"--densities {density:g} --size {args.size}: {why}")
    if args.refine is not None:
        if not 0 <= args.refine <= 50:
            raise UserError(f"--refine {args.refine}: give 0 to 50 fit steps")
        for _, model, _ in runs:
            model.refine = args.refine
    picasso = not args.no_picasso and picasso_available()
    from pixel_spotter.benchmarks.timing import busy_machine

    busy = busy_machine()
    if busy:
        print(f"note: {busy}", file=sys.stderr)
    rows = []
    with progress(densities, desc="emitters bench", unit="density") as bar:
        for density in bar:
            rows += bench_density(runs, task, density, args.frames, args.size, args.seed, picasso, args.border_nm,
                                  val_frames)
    csv_path, md_path = write(rows, args.out or args.runs[0])
    print(_markdown(rows), end="")
    if not picasso:
        print("(Picasso left out: " + ("--no-picasso" if args.no_picasso else
              "not installed; pip install -e '.[picasso]' adds it") + ")")
    print(f"emitters bench: {csv_path}\n                {md_path}")
    return 0
