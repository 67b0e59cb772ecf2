"""The report command on real (tiny) sweeps: its table equals the runs' results.json, failures are
named, the HTML stands alone, every plot is written, and bad input exits 2 with one line."""

from __future__ import annotations

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

from pixel_spotter import report

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.max_epochs=1", "data.height=16", "data.width=16"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sweep(folder: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, "train.py", "-m", *overrides, *TINY, f"hydra.sweep.dir={folder}"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="session")
def sweeps(tmp_path_factory) -> dict[str, Path]:
    """Two real sweeps, run once and side by side: 2 models x 2 lrs, and one job that fails validation."""
    base = tmp_path_factory.mktemp("sweeps")
    good, bad = base / "grid", base / "failing"
    jobs = {"grid": (_sweep(good, "model=cnn,resnet18", "model.lr=1e-4,1e-3"), good),
            "failing": (_sweep(bad, "model=resnet18", "model.net.weights=/does/not/exist"), bad)}
    for name, (proc, _) in jobs.items():
        output, _ = proc.communicate(timeout=600)
        # A sweep with a failed job exits 1 by design (SweepSummary); the grid must succeed outright.
        allowed = (0,) if name == "grid" else (0, 1)
        assert proc.returncode in allowed, f"{name} sweep exited {proc.returncode}:\n{output[-3000:]}"
    return {name: folder for name, (_, folder) in jobs.items()}


def _results(sweep: Path) -> dict[Path, dict]:
    return {p.parent: json.loads(p.read_text()) for p in sweep.rglob("results.json")}


def _report(tmp_path: Path, *folders: Path) -> Path:
    out = tmp_path / "report"
    assert report.main([*map(str, folders), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def grid_report(sweeps, tmp_path_factory) -> Path:
    return _report(tmp_path_factory.mktemp("grid_report"), sweeps["grid"])


def _csv(out: Path) -> tuple[list[str], list[dict]]:
    with (out / "runs.csv").open() as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _md_table(out: Path) -> list[dict]:
    """The Runs table of report.md as dicts keyed by header."""
    section = (out / "report.md").read_text().split("## Runs", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    split = lambda ln: [c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]  # noqa: E731
    headers = split(lines[0])
    return [dict(zip(headers, split(ln))) for ln in lines[2:]]


def _numbers(record: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


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
            assert float(row[key]) == pytest.approx(value, rel=1e-12), key
        assert row["model"] == record["model"] and row["status"] == record["status"]


def test_csv_varying_columns_first(grid_report):
    header, rows = _csv(grid_report)
    varies = [len({row[k] for row in rows}) > 1 for k in header]
    assert any(varies) and not all(varies)
    assert varies == sorted(varies, reverse=True), "a constant column comes before a varying one"
    assert varies[header.index("model")] and varies[header.index("lr")]


def test_table_sorted_best_first_with_values_of_results_json(sweeps, grid_report):
    records = list(_results(sweeps["grid"]).values())
    table = _md_table(grid_report)
    assert len(table) == len(records)
    expected = sorted(records, key=lambda r: r["test"]["euclid_px"])
    for row, record in zip(table, expected):
        assert row["model"] == record["model"]
        assert float(row["lr"]) == pytest.approx(record["lr"])
        assert row["mean Euclid (px)"] == f"{record['test']['euclid_px']:.3f}"
        assert row["RMSE (px)"] == f"{record['test']['rmse_px']:.3f}"
        assert row["exact %"] == f"{100 * record['test']['exact_acc']:.1f}"
        assert row["weights used"] == record["weights_used"]
    # exactly one best (★) per model, and it is that model's lowest test error
    for model in {r["model"] for r in records}:
        marked = [row for row in table if row["model"] == model and "★" in row["rank"]]
        best = min((r for r in records if r["model"] == model), key=lambda r: r["test"]["euclid_px"])
        assert len(marked) == 1 and marked[0]["mean Euclid (px)"] == f"{best['test']['euclid_px']:.3f}"


def test_summary_is_computed_from_the_runs(sweeps, grid_report):
    records = list(_results(sweeps["grid"]).values())
    text = (grid_report / "report.md").read_text()
    best = min(records, key=lambda r: r["test"]["euclid_px"])
    summary = text.split("## Summary", 1)[1]
    assert "Best run overall" in summary and f"{best['test']['euclid_px']:.3f} px" in summary
    assert "Effect of lr" in summary
    resnet = next(r for r in records if r["model"] == "resnet18")
    assert resnet["weights_used"] in summary  # says what weights ResNet18 really used


def test_failed_job_is_named(sweeps, grid_report, tmp_path):
    failed = list(_results(sweeps["failing"]).values())
    assert len(failed) == 1 and failed[0]["status"] == "failed"
    # alone (a sweep where nothing finished) and next to the grid (two folders, one report)
    for n_runs, folders in ((1, [sweeps["failing"]]), (5, [sweeps["grid"], sweeps["failing"]])):
        out = _report(tmp_path / str(n_runs), *folders)
        assert failed[0]["error"] in (out / "report.md").read_text()
        statuses = [row["status"] for row in _md_table(out)]
        assert len(statuses) == n_runs and sum(s.startswith("failed") for s in statuses) == 1
        assert statuses[-1].startswith("failed")  # runs that did not finish sort last
        _, rows = _csv(out)
        assert len(rows) == n_runs and sum(r["status"] == "failed" for r in rows) == 1


def test_unfinished_job_does_not_crash(sweeps, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweeps["grid"], copy, ignore=shutil.ignore_patterns("*.ckpt"))
    victim = sorted(copy.glob("*/results.json"))[0]
    victim.unlink()  # as if the job were still running or had been killed
    out = _report(tmp_path, copy)
    table = _md_table(out)
    assert len(table) == 4 and table[-1]["status"].startswith("unfinished")
    assert table[-1]["run"] == victim.parent.name.split("_")[0]


def test_html_is_self_contained(grid_report):
    page = (grid_report / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "url(" not in page and "@import" not in page
    assert len(sources) == len(list((grid_report / "plots").glob("*.png")))


def test_every_plot_is_written(sweeps, grid_report):
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
    code = ("import sys; from pixel_spotter import report; "
            f"assert report.main([{str(sweeps['grid'])!r}, '--out', {str(tmp_path / 'out')!r}]) == 0; "
            "print('lightning' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"
    assert {p: p.stat().st_mtime_ns for p in sweeps["grid"].rglob("*") if p.is_file()} == before


def test_scalars_come_from_tensorboard(sweeps):
    run_dir = next(p.parent for p in sweeps["grid"].glob("*/results.json"))
    curves = report.read_scalars(run_dir / "tensorboard")
    for tag in ("train/loss", "val/loss", "train/rmse_px", "val/rmse_px"):
        epochs, values = curves[tag]
        assert list(epochs) == [1.0] and all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("entry, missing", [(["-m", "pixel_spotter.report"], True),
                                            (["-m", "pixel_spotter.cli", "report"], False)])
def test_bad_input_exits_2_with_one_line(tmp_path, entry, missing):
    folder = tmp_path / "does-not-exist" if missing else tmp_path  # missing, or there but holding no runs
    proc = subprocess.run([sys.executable, *entry, str(folder)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert str(folder) in proc.stderr
    assert not (tmp_path / "report.md").exists()


# --------------------------------------------------------------- summary logic on synthetic records (fast)


def _run(run_id: str, model: str, euclid: float | None, lr=1e-3, epochs=16, status="ok",
         **data) -> report.Run:
    record = {"status": status, "model": model, "lr": lr, "max_epochs": epochs, "seed": 0,
              "weights_used": "random init", "test_overlap": data.pop("overlap", 0.0),
              "data": {"height": 50, "width": 50, "split": "position", **data}}
    if euclid is not None:
        record["test"] = {"euclid_px": euclid, "exact_acc": 0.5, "within1_acc": 0.8}
    return report.Run(path=Path(f"/x/{run_id}_job"), id=run_id, record=record)


def test_columns_tell_apart_runs_that_differ_in_data():
    runs = report.annotate([_run("0", "cnn", 1.0), _run("1", "cnn", 2.0, height=32, width=32),
                            _run("2", "cnn", 3.0, split="quadrant", heldout_quadrant="top_left")])
    headers, rows = report.table(runs)
    assert "image" in headers and "heldout_quadrant" in headers
    assert "32×32" in rows[1][headers.index("image")]
    assert rows[2][headers.index("heldout_quadrant")] == "top_left"
    assert rows[0][headers.index("heldout_quadrant")] == "—"  # a position split holds no quadrant out
    same = report.annotate([_run("0", "cnn", 1.0), _run("1", "cnn", 2.0)])
    assert "image" not in report.table(same)[0] and "heldout_quadrant" not in report.table(same)[0]


def test_claim_and_effects_follow_the_numbers():
    runs = report.annotate([_run("0", "cnn", 2.0, lr=1e-4), _run("1", "cnn", 1.0, lr=1e-3),
                            _run("2", "resnet18", 4.0, lr=1e-4), _run("3", "resnet18", 3.0, lr=1e-3)])
    claim = " ".join(report.summary_claim(runs))
    assert "did not beat" in claim and "2.000 px (200%) higher" in claim  # best 3.0 vs best 1.0
    assert "trained from scratch" in claim
    effects = " ".join(report.summary_factors(runs))
    assert "lr 0.001 → 1.000 px" in effects and "50% lower" in effects
    assert "Effect of epochs: not measurable" in effects
    # only one model: no comparison is claimed
    assert report.summary_claim(report.annotate(runs[:2])) == []


def test_overlap_is_compared_with_the_position_split():
    runs = report.annotate([_run("0", "cnn", 0.5, split="random", overlap=0.9), _run("1", "cnn", 2.0)])
    text = " ".join(report.summary_overlap(runs))
    assert "90.0% of its test images" in text and "75% smaller" in text
    leaky_only = report.annotate([_run("0", "cnn", 0.5, split="random", overlap=0.9)])
    alone = " ".join(report.summary_overlap(leaky_only))
    assert "90.0%" in alone and "no position-split run" in alone
    # the leaky run is listed but never picked as the model's best
    assert report.best_runs(runs)["cnn"].id == "1"


def test_data_settings_are_ranked_apart():
    quadrant = {"split": "quadrant", "heldout_quadrant": "bottom_right"}
    runs = report.annotate([_run("0", "cnn", 1.0), _run("1", "heatmap", 2e-5), _run("2", "cnn", 0.8),
                            _run("3", "cnn", 20.0, **quadrant), _run("4", "heatmap", 0.5, **quadrant)])
    headers, rows = report.setting_table(runs)
    assert headers[0] == "model" and any(h.startswith("split=quadrant") for h in headers)
    cells = {row[0]: dict(zip(headers, row)) for row in rows}
    position = next(h for h in headers if h.startswith("split=position") and h.endswith("mean Euclid (px)"))
    quad = next(h for h in headers if h.startswith("split=quadrant") and h.endswith("mean Euclid (px)"))
    assert cells["cnn"][position] == "0.800" and cells["cnn"][quad] == "20.000"  # each setting's own best
    assert cells["heatmap"][position] == "2.0e-05"  # tiny errors are not rounded to 0.000
    text = " ".join(report.summary_settings(runs))
    assert "Best on **split=quadrant" in text and "`#4` (heatmap" in text and "then cnn 20.000 px" in text
    # the maps and histograms get one best run per (model, setting)
    assert {(m, r.id) for (m, _), r in report.best_by_setting(runs).items()} == {
        ("cnn", "2"), ("heatmap", "1"), ("cnn", "3"), ("heatmap", "4")}
    # one setting only: nothing extra
    same = report.annotate([_run("0", "cnn", 1.0), _run("1", "heatmap", 0.1)])
    assert report.setting_table(same) is None and report.summary_settings(same) == []


def test_seed_repeats_report_their_spread():
    runs = []
    for seed, (err, exact) in enumerate([(0.1, 0.9), (0.3, 0.5), (0.2, 0.7)]):
        run = _run(str(seed), "heatmap", err)
        run.record.update(seed=seed, train_seconds=2.0 + seed)
        run.record["test"]["exact_acc"] = exact
        runs.append(run)
    text = " ".join(report.summary_seeds(report.annotate(runs)))
    assert "Over 3 seeds (heatmap" in text and "exact 50.0–90.0 %" in text
    assert "0.100–0.300 px" in text and "train time 2.0–4.0 s" in text
    assert report.summary_seeds(report.annotate(runs[:1])) == []  # one seed: no spread to report


def test_report_with_two_splits_has_per_setting_table_and_maps(tmp_path):
    from pixel_spotter import report_plots

    rng = np.random.default_rng(0)
    runs = []
    for i, (model, split) in enumerate([("cnn", "position"), ("heatmap", "position"), ("cnn", "quadrant")]):
        folder = tmp_path / f"{i}_job"
        folder.mkdir()
        xy = rng.integers(0, 8, size=(20, 2))
        pred = xy + rng.normal(0, 0.3 * (i + 1), size=xy.shape)
        np.savetxt(folder / "predictions.csv", np.column_stack([xy, pred]), delimiter=",",
                   header="x_true,y_true,x_pred,y_pred", comments="")
        run = _run(str(i), model, float(np.hypot(*(pred - xy).T).mean()), split=split, height=8, width=8)
        run.path = folder
        runs.append(run)
    runs = report.annotate(runs)
    per_setting = report.best_by_setting(runs)
    plots = dict((p.name, caption) for caption, p in
                 report_plots.make_all(runs, report.best_runs(runs), tmp_path / "plots", per_setting))
    assert "error_map.png" in plots and "per data setting" in plots["error_map.png"]
    doc = report.build_document(runs, [tmp_path], [], tmp_path)
    assert ("h2", "Best run per model and data setting") in doc


@pytest.mark.slow
@pytest.mark.parametrize("content, status", [
    (b"[1, 2]", "unreadable"),
    (b"\x00\xff\xfe binary \x89PNG", "unreadable"),
    (b'{"status": "ok", "test": "great"}', "unreadable"),
    (b'"ok"', "unreadable"),
    (b'{"status": "ok", "model": "cnn", "test": {"euclid_px": NaN, "exact_acc": 1.0}}', "diverged"),
])
def test_report_and_sweep_summary_survive_any_record(sweeps, tmp_path, capsys, content, status):
    from omegaconf import OmegaConf

    from pixel_spotter.hydra_callbacks import SweepSummary

    copy = tmp_path / "sweep"
    shutil.copytree(sweeps["grid"], copy, ignore=shutil.ignore_patterns("*.ckpt"))
    records = _results(copy)
    best = min(records, key=lambda p: records[p]["test"]["euclid_px"])  # the one that would be ranked first
    (best / "results.json").write_bytes(content)
    out = _report(tmp_path, copy)
    table = _md_table(out)
    row = next(r for r in table if r["run"] == best.name.split("_")[0])
    assert row["status"].startswith(status) and "★" not in row["rank"]
    assert table[-1] is row  # not ranked: listed after every run that finished ok
    assert f"`#{row['run']}`" not in (out / "report.md").read_text().split("**Best run overall**", 1)[1].split("\n")[0]

    with pytest.raises(SystemExit) as exit_:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(copy)}}}))
    assert exit_.value.code == 1
    printed = capsys.readouterr().out
    assert "4 jobs, 3 ok, 1 not ok" in printed and f"  {status}" in printed
