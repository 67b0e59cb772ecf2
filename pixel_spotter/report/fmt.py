"""Values as people read them in the report's tables and sentences (pixel errors: ``format_px``)."""

from __future__ import annotations

from pixel_spotter.evaluation.formatting import format_px  # noqa: F401  (re-exported: one import for the report's formats)


def setting(value) -> str:
    """Settings as people write them: 0.001, 1e-05, 16, 0.7/0.15/0.15."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "/".join(setting(v) for v in value)
    return str(value)


def num(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def pct(fraction) -> str:
    return "—" if fraction is None else f"{100 * fraction:.1f}"


def count(n) -> str:
    if n is None:
        return "—"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def epochs_text(n) -> str:
    """"16 epochs", "1 epoch"."""
    return f"{setting(n)} epoch" + ("" if n == 1 else "s")


def span(values: list[float], fmt) -> str:
    """"0.100–0.300", or one value when both ends print the same."""
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def short(text, limit: int = 140) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def metric(name: str, value) -> str:
    """A metric by its kind: "0.532 px", "12.5%" (accuracies), "0.0123" (the loss)."""
    if value is None:
        return "—"
    name = str(name).removeprefix("val/").removeprefix("test/")
    if name.endswith("_acc"):
        return f"{pct(value)}%"
    return f"{format_px(value)} px" if name.endswith("_px") else f"{value:.4g}"
