"""The robustness benchmark's second grid (blur x noise, float / clipped / 8-bit) and its third reference, the bank
of matched filters over sigma: on hand-made images, through the CSV, in the report's numbers and the plot, and
`pixel-spotter robustness --grid combined` on a real tiny run (slow)."""

from __future__ import annotations

import csv
import math
import time

import pytest
import torch

from pixel_spotter import cli
from pixel_spotter.data import corruptions
from pixel_spotter.data.augment import CLEAN
from pixel_spotter.evaluation import robustness_grid_combined as combined
from pixel_spotter.evaluation.robustness import run_grids
from pixel_spotter.evaluation.robustness_grid import GRID, Subject, benchmark
from pixel_spotter.evaluation.robustness_grid_combined import BLUR_NOISE, RENDERINGS, augment_for_cell, cells
from pixel_spotter.report.plots_robustness import robustness_plot
from pixel_spotter.report.robustness import analyze_robustness, combined_lines, combined_table
from pixel_spotter.run_folder import (
    REFERENCE_RUN,
    ROBUSTNESS,
    ROBUSTNESS_PLOT,
    RobustnessRow,
    read_robustness,
    write_robustness,
)
from pixel_spotter.tasks.pixel.references import (
    ALL_DETECTORS,
    BANK,
    BANK_SIGMAS,
    argmax,
    matched_filter,
    matched_filter_bank,
)
from pixel_spotter.tasks.pixel.rendering import Synthesizer

SIZE = 12
ALL_XY = torch.stack(torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="xy"), -1).reshape(-1, 2)
DATA = dict(height=SIZE, width=SIZE, split="position", fractions=[0.7, 0.15, 0.15], seed=0,
            heldout_quadrant="bottom_right", random_train_size=2500, max_eval_images=None)


def _exact(pred: torch.Tensor, xy: torch.Tensor) -> float:
    return (pred == xy).all(dim=1).float().mean().item()


def _render(blur: float, noise: float, rendering: str = "blur+noise", size: int = SIZE, xy=ALL_XY):
    return Synthesizer(size, size, augment_for_cell(rendering, blur, noise))(xy, list(range(len(xy))))


class _Net:
    """A stand-in for a trained network: argmax, as a float (x, y)."""

    def predict_pixels(self, images):
        return argmax(images).float()


# ------------------------------------------------------------------------------------------- the bank


@pytest.mark.parametrize("sigma", [*BANK_SIGMAS, 0.1, 0.6, 1.1, 2.4])  # on the bank's grid and between
def test_the_bank_is_exact_on_noise_free_blur_of_any_sigma_in_its_range(sigma):
    """Every position of the image, the corners and edges too (where the image cuts the kernel off); on the
    bank's grid it also names the blur itself (Cauchy-Schwarz: the true kernel is the unique maximum)."""
    images = _render(sigma, 0.0)
    xy, chosen = matched_filter_bank(images, return_sigma=True)
    assert torch.equal(xy, ALL_XY), sigma
    if sigma in BANK_SIGMAS:
        assert torch.allclose(chosen, torch.full_like(chosen, sigma)), sigma


def test_the_bank_needs_its_energy_factor_to_compare_sigmas():
    """Without bank_factor the scores of different sigmas are not comparable: the bank then picks the wrong
    blur on a noise-free image (here it would never name sigma 0.5)."""
    from pixel_spotter.tasks.pixel import references

    images = _render(0.5, 0.0)
    raw = torch.stack([references.normalized_correlation(images, s) for s in BANK_SIGMAS]).amax(dim=(2, 3, 4))
    assert (raw.argmax(dim=0) != BANK_SIGMAS.index(0.5)).all()  # what a bank without the factor would pick
    _, chosen = matched_filter_bank(images, return_sigma=True)
    assert (chosen == 0.5).all()


@pytest.mark.parametrize("blur, noise", [(0.5, 0.15), (1.0, 0.05), (2.0, 0.015)])
def test_the_bank_is_never_better_than_the_matched_filter_told_the_blur_by_more_than_noise(blur, noise):
    """Told the blur, the matched filter is the maximum-likelihood detector; the bank must also guess the blur.
    Same 576 images for both (24x24, every position): the bank may win a few images by luck, never by more
    than 2 standard errors of a rate (~4 pp at 50 %). And it is a real detector: far better than argmax where
    blur spreads the spot (measured 24x24: argmax 30-60 points lower at blur >= 1)."""
    xy = torch.stack(torch.meshgrid(torch.arange(24), torch.arange(24), indexing="xy"), -1).reshape(-1, 2)
    images = _render(blur, noise, size=24, xy=xy)
    told, bank = _exact(matched_filter(images, blur), xy), _exact(matched_filter_bank(images), xy)
    assert bank <= told + 2 * math.sqrt(0.25 / len(xy)), (bank, told)
    if blur >= 1:
        assert bank > _exact(argmax(images), xy) + 0.2, bank


# ------------------------------------------------------------------------------------------- the grid


def test_each_cell_renders_what_augment_renders():
    """Blur and noise of exactly the cell's values, nothing else; the sensor stage is the Augment's own: the
    clipped image is the float one clipped, the 8-bit one that rounded to 255 levels (same seeds)."""
    for rendering, blur, noise in cells():
        augment = augment_for_cell(rendering, blur, noise)
        assert (augment.blur_sigma, augment.noise_std) == ((blur, blur), (noise, noise))
        assert all(getattr(augment, k) == getattr(CLEAN, k) for k in ("blob_sigma", "background", "intensity",
                                                                       "distractors"))
        assert (augment.sensor_clip, augment.sensor_bits) == (RENDERINGS[rendering].get("sensor_clip", False),
                                                              RENDERINGS[rendering].get("sensor_bits"))
    float_, clipped, eight = (_render(1.0, 0.1, r) for r in RENDERINGS)
    assert float_.min() < 0 and float_.max() > 0  # the noise leaves [0, 1] ...
    assert torch.equal(clipped, corruptions.clip(float_))  # ... the sensor stage brings it back
    assert torch.equal(eight, corruptions.quantize(corruptions.clip(float_), 8))


def test_the_grid_runs_from_noise_free_to_where_the_matched_filter_fails():
    for blur, noises in BLUR_NOISE.items():
        assert 0.5 <= blur <= 2 and noises[0] == 0 and list(noises) == sorted(set(noises)), blur
    assert sorted(BLUR_NOISE) == [0.5, 1.0, 1.5, 2.0]
    ends = [noises[-1] for _, noises in sorted(BLUR_NOISE.items())]
    assert ends == sorted(ends, reverse=True)  # more blur spreads the spot: less noise before it is lost


def _combined_rows(grid, repeats=2) -> list[RobustnessRow]:
    return combined.benchmark_combined([Subject("run", "argmax-net", _Net(), DATA)], repeats=repeats, grid=grid)


def test_the_combined_benchmark_scores_every_cell_three_ways():
    rows = _combined_rows({0.5: (0.0, 0.15), 2.0: (0.0,)})
    keys = {(r.corruption, r.severity, r.severity2, r.model) for r in rows}
    assert keys == {(c, b, n, m) for c in RENDERINGS for b, n in ((0.5, 0.0), (0.5, 0.15), (2.0, 0.0))
                    for m in (*ALL_DETECTORS, "argmax-net")}
    n_pos = {r.n for r in rows if r.severity2 == 0}
    assert len(n_pos) == 1 and {r.n for r in rows if r.severity2 > 0} == {2 * n_pos.pop()}  # noise-free: once
    references = [r for r in rows if r.run == REFERENCE_RUN and r.severity2 == 0 and r.corruption != "blur+noise 8-bit"]
    assert all(r.exact_acc == 1.0 for r in references)  # all three exact without noise, float or clipped
    net = {(r.corruption, r.severity, r.severity2): r.exact_acc for r in rows if r.model == "argmax-net"}
    arg = {(r.corruption, r.severity, r.severity2): r.exact_acc for r in rows if r.model == "argmax"}
    assert net == arg  # the runs see the very same images as the references


def test_clipped_and_8bit_rows_differ_from_float_ones_only_where_noise_leaves_0_1():
    """Noise-free, a blurred spot lies in [0, 1]: clipping changes nothing. With noise sigma 0.15 about half the
    pixels are clipped at 0, a positive floor that wide kernels sum up: the bank falls far behind (measured on
    these 84 images: 88 % float, 62 % clipped, 63 % 8-bit), while the matched filter told the blur barely moves
    (89 %, 92 %, 92 %)."""
    rows = _combined_rows({0.5: (0.0, 0.15)}, repeats=4)
    acc = {(r.corruption, r.severity2, r.model): r.exact_acc for r in rows}
    for model in (*ALL_DETECTORS, "argmax-net"):
        assert acc[("blur+noise clipped", 0.0, model)] == acc[("blur+noise", 0.0, model)]
    assert acc[("blur+noise clipped", 0.15, BANK)] < acc[("blur+noise", 0.15, BANK)] - 0.15
    assert acc[("blur+noise 8-bit", 0.15, BANK)] < acc[("blur+noise", 0.15, BANK)] - 0.15


def test_run_grids_runs_the_grids_asked_for(monkeypatch):
    monkeypatch.setattr(combined, "BLUR_NOISE", {1.0: (0.0, 0.05)})
    subjects = [Subject("run", "argmax-net", _Net(), DATA)]
    single = run_grids(subjects, "single", repeats=1, device="cpu")
    assert single == benchmark(subjects, repeats=1) and all(r.severity2 is None for r in single)
    assert {r.corruption for r in single} == set(GRID)
    both = run_grids(subjects, "both", repeats=1, device="cpu")
    assert both[:len(single)] == single and {r.corruption for r in both[len(single):]} == set(RENDERINGS)
    assert run_grids(subjects, "combined", repeats=1, device="cpu") == both[len(single):]


# ---------------------------------------------------------------------------------- CSV, report, plot


def _made_up(corruption="blur+noise clipped") -> list[RobustnessRow]:
    """References: argmax 50 %, the bank 100 % but 60 % at (1, 0.05), matched_filter 100 %; run 0 follows the
    bank but 30 points lower at (2, 0.01); run 1 is argmax."""
    rows = []
    for blur, noise in ((1.0, 0.0), (1.0, 0.05), (2.0, 0.0), (2.0, 0.01)):
        bank = 0.6 if (blur, noise) == (1.0, 0.05) else 1.0
        run0 = bank - (0.3 if (blur, noise) == (2.0, 0.01) else 0.0)
        for run, model, acc in ((REFERENCE_RUN, "argmax", 0.5), (REFERENCE_RUN, BANK, bank),
                                (REFERENCE_RUN, "matched_filter", 1.0), ("0", "heatmap", run0), ("1", "cnn", 0.5)):
            rows.append(RobustnessRow(run, model, "12x12 position seed=0", corruption, blur, 40, acc,
                                      math.sqrt(acc * (1 - acc) / 40), 0.5, severity2=noise))
    return rows


def test_combined_rows_round_trip_through_the_csv(tmp_path):
    rows = [RobustnessRow(REFERENCE_RUN, "argmax", "t", "noise", 0.1, 5, 0.4, 0.2, 1.0), *_made_up()]
    write_robustness(tmp_path, rows)
    assert "severity2" in (tmp_path / ROBUSTNESS).read_text().splitlines()[0]
    back, problem = read_robustness(tmp_path)
    assert problem is None and back == rows


def test_an_older_csv_without_severity2_still_reads(tmp_path):
    (tmp_path / ROBUSTNESS).write_text("run,model,test_set,corruption,severity,n,exact_acc,exact_se,euclid_px\n"
                                       "reference,argmax,t,blur,1.5,39,1,0,0\n0,heatmap,t,blur,1.5,39,0.5,0.08,\n")
    back, problem = read_robustness(tmp_path)
    assert problem is None and [(r.model, r.severity, r.severity2, r.euclid_px) for r in back] == \
        [("argmax", 1.5, None, 0.0), ("heatmap", 1.5, None, None)]
    analysis = analyze_robustness((back, []))
    assert analysis.rows == back and analysis.combined == [] and combined_table(analysis) is None


@pytest.mark.parametrize("value", ["nan", "x", "1e9"])
def test_a_planted_severity2_reads_as_unreadable(tmp_path, value):
    (tmp_path / ROBUSTNESS).write_text("run,model,test_set,corruption,severity,n,exact_acc,exact_se,euclid_px,"
                                       f"severity2\nr,m,t,blur+noise,1,5,0.5,0,0,{value}\n")
    rows, problem = read_robustness(tmp_path)
    assert rows is None and problem.startswith(f"{ROBUSTNESS} unreadable: line 2"), problem


def test_the_report_compares_each_run_with_the_better_realizable_reference():
    single = [RobustnessRow(REFERENCE_RUN, "argmax", "12x12 position seed=0", "noise", 0.0, 40, 1.0, 0.0, 0.0)]
    r = analyze_robustness(([*single, *_made_up()], []))
    assert r.rows == single and len(r.combined) == 20  # the single grid's numbers never see the combined rows
    [summary] = r.combined_summaries
    assert summary.reference == BANK  # argmax is realizable too, but worse; matched_filter is told the blur
    assert [(g.run, round(g.max_gap_pp, 6), g.blur, g.noise) for g in summary.gaps] == \
        [("0", 30.0, 2.0, 0.01), ("1", 50.0, 1.0, 0.0)]
    assert round(summary.told_gaps[("0", "heatmap")].max_gap_pp, 6) == 40.0  # below the bound at (1, 0.05)
    [line] = combined_lines(r)
    assert line == ("**blur+noise clipped**: better realizable reference `matched_filter_bank`; closest: `#0` heatmap "
                    "at most 30.0 pp below it (at blur σ 2, noise σ 0.01); then `#1` cnn at most 50.0 pp below it "
                    "(at blur σ 1, noise σ 0).")
    table = combined_table(r)
    assert table.rows[0] == ["blur+noise clipped", "#0 heatmap", BANK, "30.0", "blur σ 2, noise σ 0.01", "40.0",
                             "blur σ 1, noise σ 0.05"]


def test_the_plot_has_a_panel_per_blur_and_rendering(tmp_path, monkeypatch):
    from pixel_spotter.report import plots_robustness

    figures = []
    real_save = plots_robustness.save
    monkeypatch.setattr(plots_robustness, "save", lambda fig, path: figures.append(fig) or real_save(fig, path))
    single = [RobustnessRow(REFERENCE_RUN, "argmax", "12x12 position seed=0", "noise", s, 40, 1.0, 0.0, 0.0)
              for s in (0.0, 0.1)]
    path = robustness_plot([*single, *(r for c in RENDERINGS for r in _made_up(c))], tmp_path / ROBUSTNESS_PLOT)
    assert path.is_file() and path.stat().st_size > 1000
    titles = [ax.get_title() for ax in figures[0].axes if ax.has_data()]
    assert titles[0] == "noise" and len(titles) == 1 + 2 * 3  # one corruption, then 2 blurs x 3 renderings
    assert titles[1:4] == ["blur σ 1 px + noise, float", "blur σ 1 px + noise, clipped",
                           "blur σ 1 px + noise, clipped + 8-bit"]


# ------------------------------------------------------------------------------------ a real run (slow)


@pytest.mark.slow
def test_robustness_grid_combined_on_a_trained_run(heatmap_run_16, tmp_path, capsys):
    out = tmp_path / "out"
    start = time.perf_counter()
    status = cli.main(["robustness", str(heatmap_run_16), "--out", str(out), "--repeats", "1", "--grid", "combined"])
    seconds = time.perf_counter() - start
    assert status == 0, capsys.readouterr().err
    with (out / ROBUSTNESS).open() as f:
        rows = list(csv.DictReader(f))
    expected = {(c, b, n) for c, b, n in cells()}
    for model in (*ALL_DETECTORS, "heatmap"):
        mine = [r for r in rows if r["model"] == model]
        assert {(r["corruption"], float(r["severity"]), float(r["severity2"])) for r in mine} == expected, model
    assert all(int(r["n"]) == 39 for r in rows)  # 16x16 positions, 15 % of them; --repeats 1
    assert (out / ROBUSTNESS_PLOT).stat().st_size > 1000
    print(f"combined grid on a 16x16 run: {seconds:.1f} s")


@pytest.mark.parametrize("value", ["all", "single,combined"])
def test_an_unknown_grid_exits_2(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as stop:
        cli.main(["robustness", str(tmp_path), "--grid", value])
    assert stop.value.code == 2 and "--grid" in capsys.readouterr().err
