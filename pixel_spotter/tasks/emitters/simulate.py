"""`pixel-spotter emitters simulate RUN --out movie.tif`: a movie to try `pixel-spotter localize` on, with its
truth. Frames of ``--size`` pixels at ``--density`` emitters per um^2, drawn from the run's own emitter ranges and
recorded by its own camera (``data.camera``: ADU, or photon counts for the ideal camera), written as a multi-page
16-bit TIFF, and the true emitters beside it (``movie.truth.csv``: frame, x [nm], y [nm], intensity [photon], in
the coordinates localize writes). Frames come from a seed stream of their own (``--seed``), none a run trained on.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError

SIMULATE_STREAM = 23
MAX_PIXELS = 2**28  # a movie of at most 256 Mpx (512 MiB as 16-bit)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN", help="a data=emitters run folder: its ranges and camera")
    parser.add_argument("--out", type=Path, required=True, help="the TIFF to write, e.g. movie.tif")
    parser.add_argument("--frames", type=int, default=20, help="frames (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (default: %(default)s)")
    parser.add_argument("--density", type=float, default=1.0, help="emitters per um^2 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frames (default: %(default)s)")


def run_command(args: argparse.Namespace) -> int:
    import tifffile

    from pixel_spotter.data.seeds import sample_seed
    from pixel_spotter.run_folder import atomic_write, temporary_beside
    from pixel_spotter.serving.loading import locate, run_task
    from pixel_spotter.spots.frames import too_crowded
    from pixel_spotter.tasks.emitters.rendering import EmitterSynthesizer

    if not (1 <= args.frames and 8 <= args.size <= 4096 and args.frames * args.size ** 2 <= MAX_PIXELS):
        raise UserError(f"--frames {args.frames} of --size {args.size}: give frames of 8 to 4096 px, at most "
                        f"{MAX_PIXELS:,} pixels in all")
    if not (math.isfinite(args.density) and 0 <= args.density <= 100):
        raise UserError(f"--density {args.density:g}: give emitters per um^2 from 0 to 100")
    folder, _ = locate(args.run)
    task = run_task(folder, *_size(folder))
    if task.name != "emitters":
        raise UserError(f"{args.run} is a data={task.name} run; simulate takes a data=emitters run")
    ranges = replace(task.ranges, density_per_um2=args.density)
    why = too_crowded(ranges, args.size, args.size)
    if why:
        raise UserError(f"--density {args.density:g} --size {args.size}: {why}")
    synth = EmitterSynthesizer(args.size, args.size, ranges, (args.density, args.density), task.camera,
                               task.input_scale)
    frames, recorded = synth.recorded([sample_seed(args.seed, SIMULATE_STREAM, k) for k in range(args.frames)])
    out = args.out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_beside(out)
        try:
            tifffile.imwrite(tmp, recorded.numpy().clip(0, 65535).round().astype(np.uint16), imagej=True)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}") from None
    pixel_nm = task.ranges.pixel_size_nm
    lines = ['"frame","x [nm]","y [nm]","intensity [photon]"']
    for index, frame in enumerate(frames, start=1):
        for (x, y), n in zip(frame.xy.tolist(), frame.photons.tolist()):
            lines.append(f"{index},{(x + 0.5) * pixel_nm:.6g},{(y + 0.5) * pixel_nm:.6g},{n:.6g}")
    truth = out.with_suffix(".truth.csv")
    atomic_write(truth, "\n".join(lines) + "\n")
    print(f"simulate: {args.frames} frames of {args.size}x{args.size}, {len(lines) - 1} emitters, camera "
          f"{task.camera.kind} -> {out}\n          truth -> {truth}")
    return 0


def _size(folder):
    from pixel_spotter.serving.loading import trusted_model_config

    _, height, width = trusted_model_config(folder, frames=True)
    return height, width
