"""Narrative: the report's sentences, read from an Analysis (nothing is computed here but wording).

Sentences use the two bits of Markdown the renderer understands: `code` and **bold**.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pixel_spotter.report.analysis import Analysis, Comparison, Entry, FactorEffect, SearchRanking
from pixel_spotter.report.fmt import epochs_text, format_px, metric, pct, setting, span
from pixel_spotter.report.robustness import SEVERITY_NAMES, gap_sentence
from pixel_spotter.run_folder import ROBUSTNESS

# The "Pixel Spotter" blog post (2025) claims its pre-trained ResNet18 "outperformed the baseline model
# significantly": that pair's comparison says so, and which weights the challenger really used.
CLAIM = ("resnet18", "cnn")
FACTOR_NAMES = {"lr": ("lr", "learning rates"), "max_epochs": ("epochs", "epoch counts")}


def intro(folders: list[Path], generated: datetime) -> str:
    return (f"Runs from {', '.join(f'`{f}`' for f in folders)}; generated {generated:%Y-%m-%d %H:%M}. "
            "Test-set metrics in pixels (x = column, y = row). Sorted best first by test mean Euclidean "
            "error; ★ marks each model's best run. Inference times are per image, as measured on each "
            "run's device.")


def describe(e: Entry) -> str:
    return (f"`#{e.id}` ({e.model}, lr {setting(e.record.get('lr'))}, {epochs_text(e.record.get('max_epochs'))}"
            + (f", {e.group}" if e.group else "") + f"): {format_px(e.test())} px mean Euclidean error, "
            f"{pct(e.test('exact_acc'))}% exact, {pct(e.test('within1_acc'))}% within 1 px")


def best(a: Analysis) -> list[str]:
    if not a.best:
        return ["No run finished, so there is nothing to rank."]
    lines = [f"**Best run overall**: {describe(a.overall)}."]
    if len(a.best) > 1 and not a.settings_vary:  # else the per-setting lines below say it better
        lines += [f"Best {model}: {describe(e)}." for model, e in a.best.items()]
    if a.overlaps:
        lines.append("Best runs are chosen among runs whose test positions were never seen in training "
                     "(random-split runs are listed but not picked).")
    return lines


def settings(a: Analysis) -> list[str]:
    """The winner of each data setting, when runs were made on several (e.g. both splits)."""
    if not a.settings_vary:
        return []
    lines = []
    for name in a.settings:
        mine = sorted((e for (_, s), e in a.by_setting.items() if s == name), key=lambda e: e.test())
        text = f"Best on **{name}**: {describe(mine[0])}"
        if len(mine) > 1:
            text += "; then " + ", ".join(f"{e.model} {format_px(e.test())} px / {pct(e.test('exact_acc'))}%"
                                          for e in mine[1:])
        lines.append(text + ".")
    return lines


def seeds(a: Analysis) -> list[str]:
    lines = []
    for s in a.seed_spreads:
        where = f"{s.model}, lr {setting(s.lr)}, {epochs_text(s.epochs)}" + (f", {s.group}" if s.group else "")
        text = (f"Over {s.n_seeds} seeds ({where}): exact {span(s.exact, pct)} %, "
                f"mean Euclidean error {span(s.euclid, format_px)} px")
        times = f", train time {span(s.train_seconds, lambda t: f'{t:.1f}')} s." if s.train_seconds else "."
        lines.append(text + times)
    return lines


def _effect(e: FactorEffect, name: str) -> str:
    parts = [f"{name} {setting(v)} → {mean:.3f} px (n={n})" for v, mean, n in e.means]
    where = f"{e.model} [{e.group}]" if e.group else e.model
    return (f"Effect of {name}, {where}: {', '.join(parts)}; best {name} {setting(e.best)}, "
            f"{e.change_pct:.0f}% lower error than {name} {setting(e.worst)}.")


def factors(a: Analysis) -> list[str]:
    lines = []
    for factor, effects in a.effects.items():
        name, plural = FACTOR_NAMES[factor]
        lines += [_effect(e, name) for e in effects]
        if not effects and a.n_ok:
            lines.append(f"Effect of {name}: not measurable; no model ran two or more {plural} "
                         "under otherwise equal settings.")
    if any(a.effects.values()):
        lines.append("(Mean test Euclidean error of the runs with that value, averaged over the other "
                     "factors; n = runs averaged.)")
    return lines


def comparison(c: Comparison, weights: bool = True) -> list[str]:
    """Does the challenger beat the baseline, by how much, and is the difference beyond noise?"""
    ch, bl, cb, bb = c.challenger, c.baseline, c.challenger_best, c.baseline_best
    claim = (ch, bl) == CLAIM
    relative = f" ({c.relative_pct:.0f}%)" if c.relative_pct is not None else ""
    on = f" on **{c.setting}**" if c.setting else ""
    lines = [f"**{ch} vs {bl}**{on}" + (f" (the \"Pixel Spotter\" blog post, 2025, claims the pre-trained {ch} "
                                         "\"outperformed the baseline model significantly\")" if claim
                                         else "")
             + f": the best {ch} run `#{cb.id}` ({format_px(cb.test())} px) "
             f"{'beat' if c.difference < 0 else 'did not beat'} the best {bl} run `#{bb.id}` "
             f"({format_px(bb.test())} px): {format_px(abs(c.difference))} px{relative} "
             f"{'lower' if c.difference < 0 else 'higher'} mean Euclidean error."]
    if c.paired:
        p = c.paired
        lines.append(f"Per test image (the same {p.n} positions), {ch} minus {bl} error = "
                     f"{p.mean:+.3f} ± {p.half_width:.3f} px (95% CI): the difference is "
                     f"{'larger than' if p.significant else 'within'} the noise of this test set.")
    if c.matched:
        m = c.matched
        lines.append(f"Across {m.n} matched setting{'' if m.n == 1 else 's'} (same lr, epochs, data, seed) {ch} had "
                     f"the lower error in {m.wins}; mean difference {m.mean_difference:+.3f} px.")
    if claim and weights:  # once per pair, not once per data setting
        text = f"Weights {ch} really used: {'; '.join(c.weights_used)}."
        if not any(w.startswith(("imagenet", "file")) for w in c.weights_used):
            text += (f" So these {ch} runs were trained from scratch, not fine-tuned: they cannot "
                     "confirm or refute the blog post's claim about a pre-trained one.")
        lines.append(text)
    return lines


def comparisons(a: Analysis) -> list[str]:
    lines, seen = [], set()
    for c in a.comparisons:
        lines += comparison(c, weights=(c.challenger, c.baseline) not in seen)
        seen.add((c.challenger, c.baseline))
    lines += [f"No head-to-head comparison of {ch} with {bl}: " + (
              f"{' and '.join(m for m in (ch, bl) if m not in a.best)} has no finished run." if not
              (ch in a.best and bl in a.best) else "they have no finished runs on a common data setting.")
              for ch, bl in a.not_compared]
    if a.comparisons and len(a.seeds) == 1:
        lines.append(f"Each setting ran with one seed ({setting(a.seeds[0])}), so run-to-run variation "
                     "is not measured; significance across training runs cannot be claimed from this sweep.")
    return lines


def overlap(a: Analysis) -> list[str]:
    """How much the random split's train/test overlap flatters the score."""
    if not a.overlaps:
        return ["No finished run tested on positions seen in training (test overlap 0% everywhere)."] if a.n_ok else []
    lines = []
    for check in a.overlaps:
        e = check.run
        text = (f"`#{e.id}` ({e.model}, lr {setting(e.record.get('lr'))}, {epochs_text(e.record.get('max_epochs'))}, "
                f"split={e.data.get('split')}): {pct(e.overlap)}% of its test images sit at positions "
                "also in its training set")
        if not check.references:
            lines.append(text + "; no position-split run with the same model, lr and epochs to compare.")
            continue
        ref, ids = check.reference_mean, ", ".join(f"`#{r.id}`" for r in check.references)
        text += f"; it scored {e.test():.3f} px against {ref:.3f} px on the position split ({ids})"
        if e.test() < ref:
            text += (f": the overlap made the error look {100 * (ref - e.test()) / ref:.0f}% smaller than "
                     "it is on unseen positions")
        else:
            text += ", so here the overlap did not flatter the score"
        lines.append(text + ".")
    return lines


def search(r: SearchRanking) -> list[str]:
    """What a search found: its best trial (by the validation metric it optimized) and how to train it again."""
    done = sum(t.rank is not None for t in r.trials)
    way = "lowest" if r.direction == "minimize" else "highest"
    lines = [f"**Optuna search** over {', '.join(f'`{p}`' for p in r.params) or 'no parameter'}: "
             f"{len(r.trials)} trials, {done} completed, {len(r.trials) - done} failed or unfinished (not ranked). "
             f"Trials are ranked by `{r.metric}` of their best checkpoint on the validation split ({way} first), "
             "the value each returned to the study; the runs table below ranks by test error instead."]
    if r.best is None:
        return lines + ["No trial completed, so the search has no best trial."]
    e = r.best.entry
    params = ", ".join(f"{k}={v}" for k, v in r.best.params.items())
    lines.append(f"**Best trial** `#{e.id}` ({params}): `{r.metric}` {metric(r.metric, r.best.value)}; on the "
                 f"test set {format_px(e.test())} px mean Euclidean error, {pct(e.test('exact_acc'))}% exact. "
                 "Train it again as a single run:")
    return lines


def summary(a: Analysis) -> list[str]:
    if a.frame_runs:
        frames = [f"{len(a.frame_runs)} frame-model run{'s' if len(a.frame_runs) != 1 else ''} (a set of "
                  "emitters per image) are scored in their own sections below, not ranked with the others."]
        if not a.runs:
            return frames
    else:
        frames = []
    lines = frames + [f"{len(a.runs)} runs: {a.n_ok} finished, {len(a.runs) - a.n_ok} failed or unfinished."]
    return lines + best(a) + settings(a) + seeds(a) + factors(a) + comparisons(a) + overlap(a) + shared(a)


def shared(a: Analysis) -> list[str]:
    """Which runs took their epochs from a longer run of the same settings (an epoch sweep trains once)."""
    runs = [e for e in a.runs if e.record.get("shared_from") is not None]
    if not runs:
        return []
    pairs = ", ".join(f"`#{e.id}` from `#{e.record['shared_from']}`" for e in runs)
    return [f"{len(runs)} runs are the first epochs of a longer run of the same settings, which trained once "
            f"(their records, weights and curves are those a separate run would have): {pairs}."]


def problems(a: Analysis) -> list[str]:
    """Full reasons for runs that did not finish, and anything that could not be read."""
    lines = []
    for e in a.runs:
        if not e.ok:
            reason = e.record.get("error") or "no reason recorded"
            extra = f" (traceback: `{e.record['error_file']}`)" if e.record.get("error_file") else ""
            lines.append(f"`#{e.id}` {e.status}: {' '.join(str(reason).split())}{extra} — `{e.path}`")
        lines += [f"`#{e.id}`: {note}" for note in e.notes]
    return lines



ROBUSTNESS_NOTE = (f"From `{ROBUSTNESS}` (`pixel-spotter robustness`): each run's best checkpoint on its own test "
                   "positions, under one corruption at a time at each severity, next to two reference detectors "
                   "that learn nothing: `argmax` (the brightest pixel) and `matched_filter` (correlation with the "
                   "blur kernel, normalized by its energy inside the image, then argmax: the maximum-likelihood "
                   "location for a known blur in white Gaussian noise, and argmax where there is no blur). The "
                   "second grid (blur and noise together, float, clipped and 8-bit) adds `matched_filter_bank`, the "
                   "matched filter over a bank of blurs, which is not told the blur (the generalized likelihood "
                   "ratio). Every model and detector on a test set saw the same images; n = images scored.")


def robustness(a: Analysis) -> list[str]:
    """Per corruption: the better reference detector and the run that stays closest to it (largest gap over
    the severity grid, in percentage points of exact %); or why the robustness table could not be read."""
    r = a.robustness
    if r is None:
        return []
    lines = [f"{problem}; left out of the report." for problem in r.problems]
    several = len(r.test_sets) > 1
    for c in r.summaries:
        on = f" (test set {r.test_sets.index(c.test_set) + 1})" if several else ""
        name = SEVERITY_NAMES.get(c.corruption, "severity")
        lines.append(gap_sentence(f"**{c.corruption}**{on}: better reference `{c.reference}`", c.gaps,
                                  lambda g, name=name: f"{name} {g.at_severity:g}"))
    if r.summaries:
        lines.append("(pp = percentage points of exact %; the gap is the largest shortfall below the better "
                     "reference over the severity grid.)")
    return lines
