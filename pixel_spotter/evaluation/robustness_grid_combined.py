"""The robustness benchmark's second grid: blur and noise together (optics, then the sensor's noise), each cell
rendered three ways by the augment's own sensor stage (``data.augment.Augment``: ``sensor_clip``,
``sensor_bits``): float as training renders it, clipped to [0, 1] as a camera records it, and clipped + 8-bit
as a PNG holds it. Next to the runs, three references: argmax, the matched filter told the true blur (a bound)
and the bank of matched filters over sigma (realizable: told nothing). ``robustness_grid.py`` holds the first
grid (one corruption at a time) and what both share; ``robustness.py`` is the command.
"""

from __future__ import annotations

from pixel_spotter.evaluation.robustness_grid import (
    DEFAULT_REPEATS,
    Subject,
    by_test_set,
    cell_rows,
    score_cell,
    test_positions,
)


def _steps(step: float, count: int = 9) -> tuple[float, ...]:
    """0, step, ..., (count - 1) step, rounded so that they print as written (0.003, not 0.0030000000000000001)."""
    return tuple(round(i * step, 6) for i in range(count))


# blur sigma (px) -> noise sigmas (image range [0, 1]): from 0 in 8 even steps to the first step at which the
# matched filter told the true blur is below 50 % exact. Found by measuring it: matched_filter on every position
# of a 50x50 image once (augment_for_cell("blur+noise", ...), image k seeded sample_seed(0, ROBUSTNESS_STREAM, k):
# 2500 images per value, standard error <= 1 pp; clipped and 8-bit images score 1-5 pp lower):
# blur 0.5: 52.2 % at noise 0.18, 45.8 % at 0.19 (grid end 0.2: 39.8 %); blur 1: 54.6 % at 0.07, 46.2 % at
# 0.075 (0.08: 38.9 %); blur 1.5: 52.7 % at 0.0375, 48.4 % at 0.04 (the end); blur 2: 58.1 % at 0.02, 49.9 %
# at 0.0225 (0.024: 46.4 %). Noise sigma 0 is the blur alone (each row's first cell is noise-free).
BLUR_NOISE: dict[float, tuple[float, ...]] = {
    0.5: _steps(0.025),  # 0 ... 0.2
    1.0: _steps(0.01),  # 0 ... 0.08
    1.5: _steps(0.005),  # 0 ... 0.04
    2.0: _steps(0.003),  # 0 ... 0.024
}
# corruption name in robustness.csv -> the sensor stage's Augment fields
RENDERINGS: dict[str, dict] = {
    "blur+noise": {},
    "blur+noise clipped": {"sensor_clip": True},
    "blur+noise 8-bit": {"sensor_clip": True, "sensor_bits": 8},
}


def augment_for_cell(rendering: str, blur: float, noise: float):
    """The data.augment.Augment that blurs every image by exactly ``blur`` px, adds noise of exactly ``noise``,
    then applies ``rendering``'s sensor stage, and nothing else: what ``augment`` renders for those draws."""
    from pixel_spotter.data.augment import Augment

    return Augment(blur_sigma=(float(blur), float(blur)), noise_std=(float(noise), float(noise)),
                   **RENDERINGS[rendering])


def cells(grid: dict[float, tuple[float, ...]] | None = None) -> list[tuple[str, float, float]]:
    """(rendering, blur, noise) of every cell, rendering by rendering, blur by blur, noise growing."""
    grid = BLUR_NOISE if grid is None else grid
    return [(rendering, blur, noise) for rendering in RENDERINGS for blur, noises in grid.items() for noise in noises]


def benchmark_combined(subjects: list[Subject], repeats: int = DEFAULT_REPEATS, device: str = "cpu",
                       batch_size: int = 1024, grid: dict[float, tuple[float, ...]] | None = None) -> list:
    """RobustnessRows (corruption = the rendering, severity = blur sigma, severity2 = noise sigma): per test set
    and cell, the three references, then every run on that test set, all scored on the same images. The
    noise field of image k is the same in every cell (only its strength changes); a noise-free cell is
    deterministic and renders each position once."""
    from pixel_spotter.cli import progress
    from pixel_spotter.tasks.pixel.references import ALL_DETECTORS
    from pixel_spotter.tasks.pixel.rendering import Synthesizer

    groups = by_test_set(subjects)
    todo = cells(grid)
    rows = []
    bar = progress(total=len(groups) * len(todo), desc="robustness blur+noise", unit="cell")
    for label, mine in groups.items():
        d = mine[0].data
        positions = test_positions(d)
        for rendering, blur, noise in todo:
            draws = len(positions) * (repeats if noise > 0 else 1)
            synth = Synthesizer(d["height"], d["width"], augment_for_cell(rendering, blur, noise))
            tallies = score_cell(mine, positions, synth, draws, d["seed"], ALL_DETECTORS, blur, device, batch_size)
            rows += cell_rows(tallies, mine, ALL_DETECTORS, label, rendering, blur, noise)
            bar.update()
    bar.close()
    return rows
