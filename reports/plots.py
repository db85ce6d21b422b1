"""Matplotlib figures of run reports, returned as base64 PNG data for self-contained HTML.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, not through
pyplot, so no display or global backend is needed and nothing is left open between calls.
Each function returns None when the report contains nothing to plot.
"""

import base64
import io
import math

from reports.markdown import order_modes

# Tab10 colours by mode position, so a mode keeps its colour across the figures of one page.
_MODE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_CHECK_MARKERS = {"equivalence": "o", "video": "D", "roundtrip": "s"}
_ROW_HEIGHT_IN = 0.32
_WIDTH_IN = 11.0


def error_ratio(result):
    """Return max_abs / atol of a result, or None when either is missing or atol is not positive.

    A NaN max_abs (the output held NaN) returns inf, so it plots beyond every finite error.
    """
    errors = result.get("errors") or {}
    max_abs = _number(errors.get("max_abs"))
    atol = _number(errors.get("atol"))
    if max_abs is None or atol is None or not atol > 0:
        return None
    if math.isnan(max_abs):
        return math.inf
    return max_abs / atol


def throughput_ratio(result):
    """Return (ratio, ci_low, ci_high) from ``details["throughput"]``; the bounds may be None."""
    throughput = (result.get("details") or {}).get("throughput")
    if not isinstance(throughput, dict):
        return None
    ratio = _number(throughput.get("ratio"))
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return None
    interval = throughput.get("ratio_ci")
    low = high = None
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        low, high = _number(interval[0]), _number(interval[1])
    return ratio, low, high


def errors_figure(results):
    """Plot max_abs / atol of each result per model on a log scale; return base64 PNG or None.

    Rows are models, colours are modes and markers are checks. An exact match (error 0) is
    drawn as a hollow marker in a band at the left edge, a non-finite error as an x in a band
    at the right edge.
    """
    points = [(result, error_ratio(result)) for result in results]
    points = [(result, ratio) for result, ratio in points if ratio is not None]
    if not points:
        return None
    finite = [ratio for _, ratio in points if 0 < ratio < math.inf]
    low_edge = min(finite + [1.0]) / 10
    high_edge = max(finite + [1.0]) * 10

    models = sorted({result["model"] for result, _ in points}, reverse=True)
    modes = order_modes({result["mode"] for result, _ in points})
    figure, axes = _figure(len(models))
    row = {model: index for index, model in enumerate(models)}
    offset = _mode_offsets(modes)
    for result, ratio in points:
        colour = _MODE_COLOURS[modes.index(result["mode"]) % len(_MODE_COLOURS)]
        y = row[result["model"]] + offset[result["mode"]]
        marker = _CHECK_MARKERS.get(result["check"], "^")
        if ratio == 0:
            axes.scatter(low_edge, y, marker=marker, facecolors="none", edgecolors=colour, s=30)
        elif ratio == math.inf:
            axes.scatter(high_edge, y, marker="x", color=colour, s=40)
        else:
            axes.scatter(ratio, y, marker=marker, color=colour, s=24, alpha=0.85)

    # The limits go first: a log scale over one autoscaled point would have an empty range.
    axes.set_xlim(low_edge / 2, high_edge * 2)
    axes.set_xscale("log")
    top = len(models) - 0.4
    # The edge bands hold values that a log axis cannot place, so they get their own labels.
    axes.axvspan(low_edge / 2, low_edge * 2, color="#f0f4f0", zorder=0)
    axes.text(low_edge, top, "error 0", ha="center", va="bottom", fontsize=8, color="#555")
    axes.axvspan(high_edge / 2, high_edge * 2, color="#fbeeee", zorder=0)
    axes.text(high_edge, top, "NaN/inf", ha="center", va="bottom", fontsize=8, color="#555")
    axes.axvline(1.0, color="#c62828", linewidth=1.2, linestyle="--")
    axes.text(1.0, top, "atol", color="#c62828", ha="center", va="bottom", fontsize=9)
    axes.set_xlabel("max_abs / atol (log scale; right of the dashed atol line fails the tolerance)")
    _decade_ticks(axes, low_edge * 2, high_edge / 2)
    _label_rows(axes, models)
    _legend(axes, modes, {result["check"] for result, _ in points})
    return _encode(figure)


def throughput_figure(results):
    """Plot each throughput ratio with its confidence interval per model; return base64 PNG or None."""
    points = [(result, throughput_ratio(result)) for result in results]
    points = [(result, value) for result, value in points if value is not None]
    if not points:
        return None
    models = sorted({result["model"] for result, _ in points}, reverse=True)
    modes = order_modes({result["mode"] for result, _ in points})
    figure, axes = _figure(len(models))
    row = {model: index for index, model in enumerate(models)}
    offset = _mode_offsets(modes)
    for result, (ratio, low, high) in points:
        colour = _MODE_COLOURS[modes.index(result["mode"]) % len(_MODE_COLOURS)]
        y = row[result["model"]] + offset[result["mode"]]
        if low is not None and high is not None and 0 < low <= ratio <= high:
            axes.errorbar(ratio, y, xerr=[[ratio - low], [high - ratio]], fmt="o", color=colour,
                          markersize=4, capsize=2, linewidth=1)
        else:
            axes.scatter(ratio, y, color=colour, s=20)

    values = [bound for _, value in points for bound in value if bound is not None and bound > 0] + [1.0]
    low, high = min(values) / 1.5, max(values) * 1.5
    axes.set_xlim(low, high)
    axes.set_xscale("log")
    axes.axvline(1.0, color="#555", linewidth=1.0, linestyle="--")
    axes.set_xlabel("throughput ratio, converted / eager: above 1 is faster "
                    "(log scale; bars: confidence interval)")
    _plain_ticks(axes.xaxis, low, high)
    _label_rows(axes, models)
    _legend(axes, modes, set())
    return _encode(figure)


def comparison_figure(pairs, xlabel, ylabel, title):
    """Scatter old against new values on log axes with the line new = old; return base64 PNG or None.

    ``pairs`` contains (old, new) numbers; pairs with a value that is zero, negative or not finite
    are left out because a log axis cannot show them.
    """
    usable = [(old, new) for old, new in pairs if _positive_finite(old) and _positive_finite(new)]
    if not usable:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 5.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    values = [value for pair in usable for value in pair]
    low, high = min(values) / 2, max(values) * 2
    axes.plot([low, high], [low, high], color="#888", linewidth=1, linestyle="--", label="new = old")
    axes.scatter([old for old, _ in usable], [new for _, new in usable], s=18, color="#1f77b4", alpha=0.8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=11)
    if high / low < 100:
        _plain_ticks(axes.xaxis, low, high)
        _plain_ticks(axes.yaxis, low, high)
    axes.grid(True, which="major", color="#eee")
    axes.legend(loc="upper left", fontsize=8)
    return _encode(figure)


def _figure(rows):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = max(2.6, 1.3 + _ROW_HEIGHT_IN * rows)
    figure = Figure(figsize=(_WIDTH_IN, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.grid(True, axis="x", which="major", color="#eee")
    return figure, axes


def _plain_ticks(axis, low, high):
    # Ratios near 1 read better as 0.6 or 2 than as 6x10^-1 or 2x10^0. Minor ticks get labels
    # only over a short range, because over several decades their labels overlap.
    from matplotlib.ticker import FuncFormatter, NullFormatter

    formatter = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(formatter if high / low <= 10 else NullFormatter())


def _decade_ticks(axes, low, high):
    # Ticks only between the edge bands, so a band's position never reads as a measured value.
    from matplotlib.ticker import LogFormatterSciNotation, NullLocator

    decades = range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)
    axes.set_xticks([10.0 ** exponent for exponent in decades])
    axes.xaxis.set_major_formatter(LogFormatterSciNotation())
    axes.xaxis.set_minor_locator(NullLocator())


def _mode_offsets(modes):
    # Spread the modes of one model a little apart vertically, so equal values stay visible.
    if len(modes) == 1:
        return {modes[0]: 0.0}
    step = 0.5 / (len(modes) - 1)
    return {mode: -0.25 + index * step for index, mode in enumerate(modes)}


def _label_rows(axes, models):
    axes.set_yticks(range(len(models)))
    axes.set_yticklabels(models, fontsize=9)
    axes.set_ylim(-0.6, len(models) - 0.4)
    for index in range(len(models)):
        axes.axhline(index + 0.5, color="#f2f2f2", linewidth=0.8)


def _legend(axes, modes, checks):
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="", color=_MODE_COLOURS[index % len(_MODE_COLOURS)], label=mode)
        for index, mode in enumerate(modes)
    ]
    for check in sorted(checks):
        handles.append(Line2D([], [], marker=_CHECK_MARKERS.get(check, "^"), linestyle="", color="#444",
                              label=f"check: {check}"))
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _encode(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _positive_finite(value):
    number = _number(value)
    return number is not None and math.isfinite(number) and number > 0
