"""The report: its numbers (the Analysis of real and synthetic runs) equal what the runs recorded, failures are
named and never ranked, the CSV holds the records' very values, the HTML stands alone, every plot is written
and linked, and bad input exits 2 with one line. Numbers are asserted on the Analysis, not on rendered text."""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixel_spotter import cli
from pixel_spotter.report import analyze, collect, euclid_errors, narrative, read_curves, render
from pixel_spotter.report.cli import parse_pairs
from pixel_spotter.report.load import ReportInputError, Run
from pixel_spotter.run_folder import CSV_METRICS, RunFolder

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# sweeps (conftest, shared by the session): two real sweeps, 2 models x 2 lrs, and one job that fails validation


def _results(sweep: Path) -> dict[Path, dict]:
    """Each run folder's record, as the run wrote it."""
    return {p.parent: json.loads(p.read_text()) for p in sweep.rglob("results.json")}


def _report(tmp_path: Path, *folders: Path) -> Path:
    out = tmp_path / "report"
    assert cli.main(["report", *map(str, folders), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def grid_report(sweeps, tmp_path_factory) -> Path:
    return _report(tmp_path_factory.mktemp("grid_report"), sweeps["grid"])


def _csv(out: Path) -> tuple[list[str], list[dict]]:
    with (out / "runs.csv").open() as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _numbers(record: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


# ------------------------------------------------------------------------------- real sweeps: numbers


def test_ranking_and_best_per_model_equal_the_records(sweeps):
    records = _results(sweeps["grid"])
    a = analyze(collect([sweeps["grid"]]))
    assert [e.path for e in a.runs] == sorted(records, key=lambda p: records[p]["test"]["euclid_px"])
    assert [e.rank for e in a.runs] == [1, 2, 3, 4]
    for e in a.runs:
        assert e.test() == records[e.path]["test"]["euclid_px"] and e.record["lr"] == records[e.path]["lr"]
        assert e.record["weights_used"] == records[e.path]["weights_used"]
    assert a.models == ["cnn", "resnet18"]
    for model in a.models:
        mine = [p for p in records if records[p]["model"] == model]
        assert a.best[model].path == min(mine, key=lambda p: records[p]["test"]["euclid_px"])
        assert [e.path for e in a.runs if e.best_of_model and e.model == model] == [a.best[model].path]
    assert a.overall.test() == min(r["test"]["euclid_px"] for r in records.values())


def test_factor_effects_and_comparison_equal_the_records(sweeps):
    records = list(_results(sweeps["grid"]).values())
    a = analyze(collect([sweeps["grid"]]))
    assert not a.effects["max_epochs"] and {e.model for e in a.effects["lr"]} == {"cnn", "resnet18"}
    for effect in a.effects["lr"]:
        expected = {r["lr"]: r["test"]["euclid_px"] for r in records if r["model"] == effect.model}
        assert [(v, n) for v, _, n in effect.means] == [(lr, 1) for lr in sorted(expected)]
        assert {v: m for v, m, _ in effect.means} == pytest.approx(expected)
        assert effect.best == min(expected, key=expected.get)
    (c,) = a.comparisons  # default: every model against cnn
    assert (c.challenger, c.baseline) == ("resnet18", "cnn")
    assert c.difference == pytest.approx(a.best["resnet18"].test() - a.best["cnn"].test())
    assert c.weights_used == sorted({r["weights_used"] for r in records if r["model"] == "resnet18"})
    # both best runs were tested on the same positions (one seed): the per-image difference is there
    errors = {m: a.best[m].errors for m in ("resnet18", "cnn")}
    assert c.paired.n == len(errors["cnn"])
    assert c.paired.mean == pytest.approx(errors["resnet18"].mean() - errors["cnn"].mean())
    assert c.matched.n == 2 and c.matched.wins in (0, 1, 2)


def test_failed_job_is_named_and_listed_last(sweeps, tmp_path):
    failed = list(_results(sweeps["failing"]).values())
    assert len(failed) == 1 and failed[0]["status"] == "failed"
    # alone (a sweep where nothing finished) and next to the grid (two folders, one report)
    for folders in ([sweeps["failing"]], [sweeps["grid"], sweeps["failing"]]):
        a = analyze(collect(folders))
        assert [e.status for e in a.runs] == ["ok"] * (len(a.runs) - 1) + ["failed"]
        assert a.runs[-1].model not in a.best or a.best[a.runs[-1].model] is not a.runs[-1]
        assert any(failed[0]["error"] in line for line in narrative.problems(a))
    out = _report(tmp_path, sweeps["grid"], sweeps["failing"])
    assert failed[0]["error"] in (out / "report.md").read_text()
    _, rows = _csv(out)
    assert len(rows) == 5 and [r["status"] for r in rows][-1] == "failed"


def test_unfinished_job_does_not_crash(sweeps, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweeps["grid"], copy, ignore=shutil.ignore_patterns("*.ckpt"))
    victim = sorted(_results(copy))[0]
    RunFolder(victim).results_file.unlink()  # as if the job were still running or had been killed
    a = analyze(collect([copy]))
    assert len(a.runs) == 4 and a.runs[-1].status == "unfinished"
    assert a.runs[-1].id == victim.name.split("_")[0]
    _report(tmp_path, copy)


def test_curves_come_from_the_csv_log(sweeps, tmp_path):
    run_dir = tmp_path / "run"  # a copy without TensorBoard's files: the curves are the CSV log's
    original = next(iter(_results(sweeps["grid"])))
    shutil.copytree(original, run_dir, ignore=shutil.ignore_patterns(RunFolder(original).tensorboard.name))
    curves, (same, _) = read_curves(run_dir), RunFolder(original).read_curves()
    assert set(curves) == set(same) and all(np.array_equal(curves[t][1], same[t][1]) for t in curves)
    for tag in ("train/loss", "val/loss", "train/rmse_px", "val/rmse_px"):
        epochs, values = curves[tag]
        assert list(epochs) == [1.0] and all(math.isfinite(v) for v in values)
    log = RunFolder(run_dir).csv_log
    shutil.rmtree(log)
    log.mkdir()
    (log / CSV_METRICS).write_bytes(b"\xff\xfe planted\n")  # an unreadable log is a note, not a crash
    run = collect([run_dir])[0]
    assert run.curves == {} and any("learning curves unreadable" in note for note in run.notes)


# ---------------------------------------------------------------------------- real sweeps: rendering


def test_csv_rows_equal_results_json(sweeps, grid_report):
    records = _results(sweeps["grid"])
    header, rows = _csv(grid_report)
    assert len(rows) == len(records) == 4
    assert {Path(r["path"]) for r in rows} == set(records)
    for row in rows:
        record = records[Path(row["path"])]
        numbers = _numbers(record)
        assert {"test.euclid_px", "test.exact_acc", "lr", "params", "train_seconds"} <= set(numbers)
        for key, value in numbers.items():
            assert float(row[key]) == value, key  # repr-exact: the very number of the record
        assert row["model"] == record["model"] and row["status"] == record["status"]


def test_csv_varying_columns_first(grid_report):
    header, rows = _csv(grid_report)
    varies = [len({row[k] for row in rows}) > 1 for k in header]
    assert any(varies) and not all(varies)
    assert varies == sorted(varies, reverse=True), "a constant column comes before a varying one"
    assert varies[header.index("model")] and varies[header.index("lr")]


def test_html_is_self_contained(grid_report):
    page = (grid_report / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "url(" not in page and "@import" not in page
    assert len(sources) == len(list((grid_report / "plots").glob("*.png")))


def test_every_plot_is_written_and_linked(sweeps, grid_report):
    models = {r["model"] for r in _results(sweeps["grid"]).values()}
    expected = {"error_map.png", "error_hist.png"} | {
        f"{kind}_{m}.png" for m in models for kind in ("curves", "grid", "scatter", "overlay")}
    written = {p.name for p in (grid_report / "plots").glob("*.png")}
    assert expected <= written
    for name in written:
        data = (grid_report / "plots" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    linked = set(re.findall(r"\]\((plots/[^)]+)\)", (grid_report / "report.md").read_text()))
    assert {f"plots/{n}" for n in written} == linked


def test_report_only_reads_the_runs(sweeps, tmp_path):
    # it works from the files runs left; it never retrains (Lightning is not even imported) nor writes there
    before = {p: p.stat().st_mtime_ns for p in sweeps["grid"].rglob("*") if p.is_file()}
    # the report package alone (the other commands' imports are theirs)
    code = ("import argparse, sys; from pixel_spotter import report; parser = argparse.ArgumentParser(); "
            "report.add_arguments(parser); "
            f"args = parser.parse_args([{str(sweeps['grid'])!r}, '--out', {str(tmp_path / 'out')!r}]); "
            "assert report.run_command(args) == 0; print('lightning' in sys.modules, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False False"
    assert {p: p.stat().st_mtime_ns for p in sweeps["grid"].rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("case", ["missing", "empty", "bad compare"])
def test_bad_input_exits_2_with_one_line(tmp_path, case):
    folder = tmp_path / "does-not-exist" if case == "missing" else tmp_path
    extra = ["--compare", "resnet18"] if case == "bad compare" else []
    proc = subprocess.run([sys.executable, "-m", "pixel_spotter.cli", "report", str(folder), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert ("resnet18" if extra else str(folder)) in proc.stderr
    assert not (tmp_path / "report.md").exists()


def test_no_run_file_name_in_the_report_package():
    """Everything about the run folder goes through pixel_spotter.run_folder."""
    names = ("results.json", "predictions.csv", ".hydra", "checkpoints", "tensorboard", "robustness.csv")
    for source in (ROOT / "pixel_spotter" / "report").rglob("*.py"):
        strings = [node.value for node in ast.walk(ast.parse(source.read_text()))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)]  # f-string parts included
        assert not [n for n in names for text in strings if n in text], source.name


# --------------------------------------------------------------------------- synthetic records (fast)


def _run(run_id: str, model: str, euclid: float | None, lr=1e-3, epochs=16, status="ok", path=None,
         **data) -> Run:
    record = {"status": status, "model": model, "lr": lr, "max_epochs": epochs, "seed": data.pop("seed", 0),
              "weights_used": data.pop("weights", "random init"), "test_overlap": data.pop("overlap", 0.0),
              "data": {"height": 50, "width": 50, "split": "position", **data}}
    if euclid is not None:
        record["test"] = {"euclid_px": euclid, "exact_acc": 0.5, "within1_acc": 0.8}
    return Run(path=path or Path(f"/x/{run_id}_job"), id=run_id, record=record)


def _with_predictions(folder: Path, run_id: str, model: str, true: np.ndarray, pred: np.ndarray, **kw) -> Run:
    """A run whose test predictions are on disk (written through the run folder); its error is their mean."""
    RunFolder(folder).write_predictions([(*t, *p) for t, p in zip(true, pred)])
    table = np.column_stack([true, np.round(pred, 4)])
    return _run(run_id, model, float(euclid_errors(table).mean()), path=folder, height=8, width=8, **kw)


def test_euclid_errors_is_the_metric():
    torch = pytest.importorskip("torch")
    from pixel_spotter.evaluation.metrics import EuclideanError

    table = np.array([[1, 2, 1.5, 2.5], [0, 0, 3, 4], [7, 7, 7, 7]], dtype=float)
    assert euclid_errors(table) == pytest.approx([math.hypot(0.5, 0.5), 5.0, 0.0])
    metric = EuclideanError()
    metric.update(torch.tensor(table[:, 2:]), torch.tensor(table[:, :2]))
    assert float(metric.compute()) == pytest.approx(euclid_errors(table).mean())


def test_analysis_does_not_depend_on_input_order():
    runs = [_run("0", "cnn", 2.0, lr=1e-4), _run("1", "cnn", 1.0), _run("2", "heatmap", 0.5),
            _run("3", "cnn", None, status="failed"), _run("4", "heatmap", 0.7, lr=1e-4)]
    a, b = analyze(runs), analyze(runs[::-1])
    assert [e.id for e in a.runs] == [e.id for e in b.runs] == ["2", "4", "1", "0", "3"]
    assert {m: e.id for m, e in a.best.items()} == {m: e.id for m, e in b.best.items()} == {"cnn": "1", "heatmap": "2"}
    assert a.n_ok == 4 and a.runs[-1].rank == 5 and not a.runs[-1].best_of_model


def test_columns_tell_apart_runs_that_differ_in_data():
    a = analyze([_run("0", "cnn", 1.0), _run("1", "cnn", 2.0, height=32, width=32),
                 _run("2", "cnn", 3.0, split="quadrant", heldout_quadrant="top_left")])
    assert ("image", "image") in a.extra_columns and ("setting", "heldout_quadrant") in a.extra_columns
    table = render.runs_table(a)
    rows = [dict(zip(table.headers, row)) for row in table.rows]
    assert rows[1]["image"] == "32×32" and rows[2]["heldout_quadrant"] == "top_left"
    assert rows[0]["heldout_quadrant"] == "—"  # a position split holds no quadrant out
    same = analyze([_run("0", "cnn", 1.0), _run("1", "cnn", 2.0)])
    assert same.extra_columns == [] and "image" not in render.runs_table(same).headers


def test_claim_and_effects_follow_the_numbers():
    runs = [_run("0", "cnn", 2.0, lr=1e-4), _run("1", "cnn", 1.0, lr=1e-3),
            _run("2", "resnet18", 4.0, lr=1e-4), _run("3", "resnet18", 3.0, lr=1e-3)]
    a = analyze(runs)
    (c,) = a.comparisons
    assert (c.challenger, c.baseline, c.challenger_best.id, c.baseline_best.id) == ("resnet18", "cnn", "3", "1")
    assert c.difference == pytest.approx(2.0) and c.relative_pct == pytest.approx(200)
    assert c.paired is None  # no predictions on disk
    assert (c.matched.n, c.matched.wins, c.matched.mean_difference) == (2, 0, pytest.approx(2.0))
    cnn = next(e for e in a.effects["lr"] if e.model == "cnn")
    assert cnn.means == [(1e-4, 2.0, 1), (1e-3, 1.0, 1)] and cnn.best == 1e-3 and cnn.change_pct == pytest.approx(50)
    assert a.effects["max_epochs"] == []
    text = " ".join(narrative.summary(a))
    assert "did not beat" in text and "blog post, 2025, claims" in text and "trained from scratch" in text
    assert "Effect of epochs: not measurable" in text
    assert analyze(runs[:2]).comparisons == []  # only one model: nothing to compare


def test_comparisons_are_an_option():
    runs = [_run("0", "cnn", 2.0), _run("1", "heatmap", 1.0), _run("2", "resnet18", 3.0)]
    default = analyze(runs)
    assert [(c.challenger, c.baseline) for c in default.comparisons] == [("heatmap", "cnn"), ("resnet18", "cnn")]
    text = narrative.comparisons(default)
    assert sum("blog post, 2025, claims" in line for line in text) == 1  # the claim belongs to resnet18 vs cnn only
    assert any(line.startswith("**heatmap vs cnn**: the best heatmap run `#1`") for line in text)
    chosen = analyze(runs, compare=[("heatmap", "resnet18"), ("coordconv", "cnn")])
    (c,) = chosen.comparisons
    assert (c.challenger, c.baseline, c.difference) == ("heatmap", "resnet18", pytest.approx(-2.0))
    assert chosen.not_compared == [("coordconv", "cnn")]
    assert analyze([r for r in runs if r.model != "cnn"]).comparisons == []  # no cnn: no default pairs
    assert parse_pairs(None) is None
    assert parse_pairs(["resnet18:cnn,heatmap:cnn", "resnet18:cnn"]) == [("resnet18", "cnn"), ("heatmap", "cnn")]
    for bad in ("resnet18", "cnn:cnn", "a:b:c", ":cnn"):
        with pytest.raises(ReportInputError):
            parse_pairs([bad])


def test_paired_differences_on_the_same_positions(tmp_path):
    rng = np.random.default_rng(0)
    true = np.array([(x, y) for x in range(8) for y in range(8)])[rng.permutation(64)[:30]]
    pred_b, pred_c = true + rng.normal(0, 1.0, true.shape), true + rng.normal(0, 0.3, true.shape)
    baseline = _with_predictions(tmp_path / "0", "0", "cnn", true, pred_b)
    order = rng.permutation(len(true))  # the same positions, listed in another order
    challenger = _with_predictions(tmp_path / "1", "1", "resnet18", true[order], pred_c[order])
    (c,) = analyze([baseline, challenger]).comparisons
    err = lambda p: np.hypot(*(np.round(p, 4) - true).T)  # noqa: E731
    diff = err(pred_c) - err(pred_b)
    assert c.paired.n == 30 and c.paired.mean == pytest.approx(diff.mean())
    assert c.paired.half_width == pytest.approx(1.96 * diff.std(ddof=1) / math.sqrt(30))
    assert c.paired.significant == (abs(diff.mean()) > c.paired.half_width)
    other = _with_predictions(tmp_path / "2", "2", "resnet18", true[:-1], pred_c[:-1])
    assert analyze([baseline, other]).comparisons[0].paired is None  # not the same test set


def test_overlap_is_compared_with_the_position_split():
    a = analyze([_run("0", "cnn", 0.5, split="random", overlap=0.9), _run("1", "cnn", 2.0)])
    (check,) = a.overlaps
    assert check.run.id == "0" and [r.id for r in check.references] == ["1"] and check.reference_mean == 2.0
    assert a.best["cnn"].id == "1"  # the leaky run is listed but never picked as the model's best
    assert "75% smaller" in " ".join(narrative.overlap(a))
    alone = analyze([_run("0", "cnn", 0.5, split="random", overlap=0.9)])
    assert alone.overlaps[0].references == [] and alone.overlaps[0].reference_mean is None


def test_data_settings_are_ranked_apart():
    quadrant = {"split": "quadrant", "heldout_quadrant": "bottom_right"}
    a = analyze([_run("0", "cnn", 1.0), _run("1", "heatmap", 2e-5), _run("2", "cnn", 0.8),
                 _run("3", "cnn", 20.0, **quadrant), _run("4", "heatmap", 0.5, **quadrant)])
    assert a.settings_vary and a.settings == ["split=position", "split=quadrant, heldout_quadrant=bottom_right"]
    assert {key: e.id for key, e in a.by_setting.items()} == {
        ("cnn", "split=position"): "2", ("heatmap", "split=position"): "1",
        ("cnn", "split=quadrant, heldout_quadrant=bottom_right"): "3",
        ("heatmap", "split=quadrant, heldout_quadrant=bottom_right"): "4"}
    table = render.setting_table(a)
    cells = {row[0]: dict(zip(table.headers, row)) for row in table.rows}
    assert cells["heatmap"]["split=position: mean Euclid (px)"] == "2.0e-05"  # tiny errors are not rounded to 0
    same = analyze([_run("0", "cnn", 1.0), _run("1", "heatmap", 0.1)])
    assert not same.settings_vary and render.setting_table(same) is None and narrative.settings(same) == []


def test_head_to_head_compares_runs_of_the_same_data_setting_only():
    quadrant = {"split": "quadrant", "heldout_quadrant": "bottom_right"}
    # heatmap's best run overall is on the quadrant split, cnn's on the position split: never compared
    a = analyze([_run("0", "cnn", 1.0), _run("1", "heatmap", 0.5), _run("2", "cnn", 9.0, **quadrant),
                 _run("3", "heatmap", 0.1, **quadrant)])
    assert [(c.setting, c.challenger_best.id, c.baseline_best.id, c.difference) for c in a.comparisons] == [
        ("split=position", "1", "0", -0.5), ("split=quadrant, heldout_quadrant=bottom_right", "3", "2", -8.9)]
    disjoint = analyze([_run("0", "cnn", 1.0), _run("1", "heatmap", 0.5, **quadrant)], compare=[("heatmap", "cnn")])
    assert disjoint.comparisons == [] and disjoint.not_compared == [("heatmap", "cnn")]
    assert "no finished runs on a common data setting" in " ".join(narrative.comparisons(disjoint))


def test_seed_repeats_report_their_spread():
    runs = []
    for seed, (err, exact) in enumerate([(0.1, 0.9), (0.3, 0.5), (0.2, 0.7)]):
        run = _run(str(seed), "heatmap", err, seed=seed)
        run.record.update(train_seconds=2.0 + seed)
        run.record["test"]["exact_acc"] = exact
        runs.append(run)
    (spread,) = analyze(runs).seed_spreads
    assert (spread.model, spread.n_seeds, spread.exact, spread.euclid, spread.train_seconds) == (
        "heatmap", 3, (0.5, 0.9), (0.1, 0.3), (2.0, 4.0))
    assert "exact 50.0–90.0 %" in " ".join(narrative.seeds(analyze(runs)))
    assert analyze(runs[:1]).seed_spreads == []  # one seed: no spread to report


def test_two_splits_get_per_setting_maps(tmp_path):
    from pixel_spotter.report import plots

    rng = np.random.default_rng(0)
    runs = []
    for i, (model, split) in enumerate([("cnn", "position"), ("heatmap", "position"), ("cnn", "quadrant")]):
        true = rng.integers(0, 8, size=(20, 2))
        runs.append(_with_predictions(tmp_path / f"{i}_job", str(i), model, true,
                                      true + rng.normal(0, 0.3 * (i + 1), size=true.shape), split=split))
    a = analyze(runs)
    made = {p.name: caption for caption, p in plots.make_all(a, tmp_path / "plots")}
    assert "error_map.png" in made and "per data setting" in made["error_map.png"]
    assert render.setting_table(a) is not None


@pytest.mark.slow
@pytest.mark.parametrize("content, status", [
    (b"[1, 2]", "unreadable"),
    (b"\x00\xff\xfe binary \x89PNG", "unreadable"),
    (b'{"status": "ok", "test": "great"}', "unreadable"),
    (b'"ok"', "unreadable"),
    (b'{"status": "ok", "model": "cnn", "test": {"euclid_px": NaN, "exact_acc": 1.0}}', "diverged"),
    (b'{"status": "ok", "model": "cnn", "test": {"euclid_px": -5.0, "exact_acc": 1.0}}', "unreadable"),
    (b'{"status": "ok", "model": "cnn", "test": {"euclid_px": 0.1, "exact_acc": 3.0}}', "unreadable"),
])
def test_report_and_sweep_summary_survive_any_record(sweeps, tmp_path, capsys, content, status):
    from omegaconf import OmegaConf

    from pixel_spotter.sweeps.summary import SweepSummary

    copy = tmp_path / "sweep"
    shutil.copytree(sweeps["grid"], copy, ignore=shutil.ignore_patterns("*.ckpt"))
    records = _results(copy)
    best = min(records, key=lambda p: records[p]["test"]["euclid_px"])  # the one that would be ranked first
    RunFolder(best).results_file.write_bytes(content)
    _report(tmp_path, copy)
    a = analyze(collect([copy]))
    entry = a.runs[-1]  # not ranked: listed after every run that finished ok
    assert entry.path == best and entry.status == status and not entry.best_of_model
    assert a.overall is not entry and entry not in a.best.values()

    with pytest.raises(SystemExit) as exit_:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(copy)}}}))
    assert exit_.value.code == 1
    printed = capsys.readouterr().out
    assert "4 jobs, 3 ok, 1 not ok" in printed and f"  {status}" in printed


def _spot_rows(bound: float, model: float) -> list[dict]:
    return [{"photons": n, "crlb_rmse_px": bound / n ** 0.5, "model": model, "centroid": 2 * model, "ml_fit": 1.0,
             "sigma_unknown": 1.0 + n / 1e4} for n in (200, 1000)]


def test_spot_runs_get_one_bound_table_per_test_set_and_planted_rows_are_dropped(tmp_path):
    from pixel_spotter.tasks.spot import report_section as spots

    same_a, same_b, other = _run("0", "spot_patch", 0.1), _run("1", "spot_patch", 0.2), _run("2", "spot_patch", 0.3)
    same_a.record["per_photons"] = _spot_rows(2.0, 1.04)
    same_b.record["per_photons"] = _spot_rows(2.0, 1.20) + [{"photons": "many"}, {"crlb_rmse_px": 1}, 7]
    other.record["per_photons"] = _spot_rows(5.0, 1.5)
    planted = _run("3", "cnn", 0.4)
    planted.record["per_photons"] = {"photons": 1}  # not a list: no spot section for this run, no exception
    a = analyze([same_a, same_b, other, planted])
    groups = spots.by_test_set(spots.spot_series(a.runs))
    assert [[label for label, _ in g] for g in groups] == [["#0 spot_patch", "#1 spot_patch"], ["#2 spot_patch"]]
    assert all(len(rows) == 2 for g in groups for _, rows in g)  # the planted rows were dropped
    headers, body = spots.table(groups[0])
    assert headers[2:] == ["CRLB if σ_psf unknown (× CRLB)", "#0 spot_patch: RMSE/CRLB", "#1 spot_patch: RMSE/CRLB",
                           "centroid: RMSE/CRLB", "ml_fit: RMSE/CRLB"]
    assert body[0] == ["200", f"{2.0 / 200 ** 0.5:.4f}", "1.020", "1.040", "1.200", "2.080", "1.000"]
    same_a.record["per_photons"][1]["sigma_unknown"] = "x"  # planted: a dash, not an exception
    assert spots.table(spots.by_test_set(spots.spot_series(analyze([same_a]).runs))[0])[1][1][2] == "—"
    assert spots.plot(groups[1], tmp_path / "spots.png").stat().st_size > 0
    from datetime import datetime

    context = render.context(a, [tmp_path], [], tmp_path, datetime.now())
    assert [s["title"] for s in context["sections"]] == ["Sub-pixel spots"]
    assert len(context["sections"][0]["tables"]) == 2
    assert render.context(analyze([_run("4", "cnn", 1.0)]), [tmp_path], [], tmp_path, datetime.now())["sections"] == []
