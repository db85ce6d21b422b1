"""Render a run report as Markdown: summary, outcome matrices and failure list."""

import collections
import math

from reports import OUTCOMES

# Matrix columns come in this order, and other modes follow alphabetically.
MODE_ORDER = ("eager", "trace", "script", "hybrid", "export", "frozen")

# Outcomes from least to most severe, used to pick the outcome a matrix cell
# shows. A mismatch ranks highest because it is silently wrong output, which is
# worse than a conversion or run error that fails loudly.
SEVERITY_ORDER = (
    "pass",
    "cannot-judge",
    "eager-unsupported",
    "slower",
    "shape-locked",
    "device-baked",
    "conversion-error",
    "run-error",
    "roundtrip-error",
    "mutates-input",
    "mismatch",
    "check-error",
)

XFAIL_MARK = "*"
XPASS_MARK = "!"

_MARK_LEGEND = {
    XFAIL_MARK: "expected failure (pytest verdict xfailed): the expectations file "
    "lists this failure",
    XPASS_MARK: "unexpected pass (pytest verdict xpassed): the expectations file "
    "lists a failure that did not happen, so its entry may be out of date",
}


def render_markdown(report):
    """Render ``report`` (a validated run report dict) as a Markdown document."""
    from reports.scriptability import render_scriptability

    sections = [
        _render_header(report),
        _render_environment(report["environment"]),
        _render_counts(report["results"]),
        _render_matrices(report["results"]),
        *_throughput_sections(report["results"]),
        _render_failures(report["results"]),
        render_scriptability(report.get("scriptability", {})),
        _render_findings(report["findings"]),
        _render_warnings(report["warnings"]),
    ]
    return "\n\n".join(sections) + "\n"


def severity(outcome):
    """Return the rank of ``outcome`` in SEVERITY_ORDER, ranking unknown outcomes highest."""
    if outcome in SEVERITY_ORDER:
        return SEVERITY_ORDER.index(outcome)
    return len(SEVERITY_ORDER)


def order_modes(modes):
    """Sort ``modes`` by MODE_ORDER, then any other modes alphabetically."""
    known = [mode for mode in MODE_ORDER if mode in modes]
    others = sorted(set(modes) - set(MODE_ORDER))
    return known + others


def summarize_cell(results):
    """Return the matrix cell text for the results of one model and mode.

    One result shows its outcome. Several results (batch sizes or clip lengths)
    show the most severe outcome and how many results had it, such as
    ``mismatch (1/4)``. The cell ends with XFAIL_MARK when any result was an
    expected failure and with XPASS_MARK when any was an unexpected pass.
    """
    worst = max((result["outcome"] for result in results), key=severity)
    text = worst
    if len(results) > 1:
        worst_count = sum(1 for result in results if result["outcome"] == worst)
        text += f" ({worst_count}/{len(results)})"

    verdicts = {result["verdict"] for result in results}
    if "xfailed" in verdicts:
        text += XFAIL_MARK
    if "xpassed" in verdicts:
        text += XPASS_MARK
    return text


def format_number(value):
    """Format a measured number with 3 significant digits, or '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.3g}"
    return str(value)


def escape_cell(value):
    """Make ``value`` safe inside a Markdown table cell, writing None as '-'."""
    if value is None:
        return "-"
    text = " ".join(str(value).splitlines())
    return text.replace("|", "\\|")


def render_table(header, rows):
    """Render a Markdown table from a header row and rows of cell values."""
    lines = [
        "| " + " | ".join(escape_cell(cell) for cell in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(escape_cell(cell) for cell in row) + " |")
    return "\n".join(lines)


def _render_header(report):
    if report["complete"]:
        status = f"**Status:** COMPLETE (pytest exit status {report['exit_status']})"
    else:
        status = "**Status:** INCOMPLETE (interrupted, or the run is still in progress)"
    times = f"Started {report['started']}, finished {report['finished']}." if report["finished"] else \
        f"Started {report['started']}, not finished."
    return "\n\n".join([f"# Run report {report['run_id']}", status, times])


def _render_environment(environment):
    rows = [(name, value) for name, value in environment.items()]
    return "## Environment\n\n" + render_table(("Setting", "Value"), rows)


def _render_counts(results):
    counts = collections.Counter(result["outcome"] for result in results)
    outcomes = [outcome for outcome in OUTCOMES if counts[outcome]]
    outcomes += sorted(set(counts) - set(OUTCOMES))
    rows = [(outcome, counts[outcome]) for outcome in outcomes]
    rows.append(("total", len(results)))
    return "## Outcomes\n\n" + render_table(("Outcome", "Results"), rows)


def _render_matrices(results):
    if not results:
        return "## Outcome matrices\n\nNo results yet."

    groups = collections.defaultdict(list)
    for result in results:
        groups[(result["device"], result["dtype"], result["check"])].append(result)

    parts = ["## Outcome matrices"]
    for (device, dtype, check), group in sorted(groups.items()):
        parts.append(f"### {device} / {dtype} / {check}")
        parts.append(_render_matrix(group))
    return "\n\n".join(parts)


def _render_matrix(results):
    cells = collections.defaultdict(list)
    for result in results:
        cells[(result["model"], result["mode"])].append(result)

    models = sorted({result["model"] for result in results})
    modes = order_modes({result["mode"] for result in results})
    rows = []
    for model in models:
        row = [model]
        for mode in modes:
            cell_results = cells.get((model, mode))
            # "-" means that no test of this model and mode ran in this group.
            row.append(summarize_cell(cell_results) if cell_results else "-")
        rows.append(row)

    table = render_table(["model"] + modes, rows)
    marks_used = [
        mark for mark in (XFAIL_MARK, XPASS_MARK) if any(_row_has(row, mark) for row in rows)
    ]
    legend = [f"`{mark}` {_MARK_LEGEND[mark]}." for mark in marks_used]
    if legend:
        table += "\n\n" + "  \n".join(legend)
    return table


def _row_has(row, mark):
    return any(cell.endswith(mark) for cell in row[1:])


def _throughput_sections(results):
    """Return a list with the throughput table, or an empty list when no result has throughput details."""
    measured = [result for result in results if isinstance(result["details"].get("throughput"), dict)]
    if not measured:
        return []
    rows = []
    for result in sorted(measured, key=lambda item: item["case_id"]):
        throughput = result["details"]["throughput"]
        interval = throughput.get("ratio_ci") or [None, None]
        baseline = throughput.get("baseline") or {}
        # The baseline gate judges the drop corrected for machine speed. A positive
        # drop is lost throughput, shown as a negative change.
        drop = baseline.get("corrected_drop")
        change = "-" if drop is None else f"{-100 * drop:+.1f}%"
        verdict = throughput.get("verdict") or result["outcome"]
        if throughput.get("gates_fired"):
            verdict += f" ({', '.join(throughput['gates_fired'])})"
        rows.append((
            result["case_id"],
            format_number(throughput.get("eager_cps")),
            format_number(throughput.get("converted_cps")),
            f"{format_number(throughput.get('ratio'))} "
            f"[{format_number(interval[0])}, {format_number(interval[1])}]",
            change,
            verdict,
        ))
    header = ("Case", "Eager clips/s", "Converted clips/s", "Ratio [CI]", "Vs baseline", "Verdict")
    return ["## Throughput\n\n" + render_table(header, rows)]


def _render_failures(results):
    failures = [result for result in results if result["outcome"] != "pass"]
    if not failures:
        return "## Failures\n\nNo failures."

    lines = ["## Failures", ""]
    for result in sorted(failures, key=lambda item: (item["case_id"], item["check"])):
        lines.append(_render_failure(result))
    return "\n".join(lines)


def _render_failure(result):
    line = f"- `{result['case_id']}` {result['check']}: **{result['outcome']}**"
    if result["verdict"] in ("xfailed", "xpassed"):
        line += f" ({result['verdict']})"
    if result["error_class"]:
        line += f", `{result['error_class']}`"
    message = " ".join(result["message"].splitlines())
    if message:
        line += f": {message}"

    errors = result["errors"]
    measured = [
        f"{name}={format_number(errors[name])}"
        for name in ("max_abs", "max_rel")
        if errors.get(name) is not None
    ]
    tolerance = [
        f"{name}={format_number(errors[name])}"
        for name in ("atol", "rtol")
        if errors.get(name) is not None
    ]
    if tolerance:
        measured.append("tolerance " + ", ".join(tolerance))
    if measured:
        line += f" ({'; '.join(measured)})"
    return line


def _render_findings(findings):
    if not findings:
        return "## Findings\n\nNo findings."
    lines = ["## Findings", ""]
    for finding in findings:
        detail = " ".join(str(finding["detail"]).splitlines())
        lines.append(f"- {finding['model']}, {finding['kind']}: {detail}")
    return "\n".join(lines)


def _render_warnings(warnings):
    if not warnings:
        return "## Warnings\n\nNo warnings."
    rows = [(entry["category"], entry["count"], entry["message"]) for entry in warnings]
    return "## Warnings\n\n" + render_table(("Category", "Count", "Message"), rows)
