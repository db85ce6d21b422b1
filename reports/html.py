"""Render a run report, or the comparison of two, as one self-contained HTML page.

The page needs no server and no network: styles are inline and figures are embedded as
base64 PNG data, so it reads the same opened as a local file or attached to a CI run.
"""

import collections
import html

from reports import OUTCOMES, plots
from reports.markdown import XFAIL_MARK, XPASS_MARK, format_number, order_modes, severity, summarize_cell

# One background colour per outcome in reports.OUTCOMES: green for pass, greys for no verdict,
# yellows and oranges for failures that fail loudly, reds and purples for wrong or changed results.
OUTCOME_COLOURS = {
    "pass": "#c8e6c9",
    "cannot-judge": "#cfd8dc",
    "eager-unsupported": "#eeeeee",
    "slower": "#fff59d",
    "shape-locked": "#ffe0b2",
    "conversion-error": "#ffcc80",
    "run-error": "#ffab91",
    "roundtrip-error": "#ce93d8",
    "mismatch": "#ef9a9a",
    "mutates-input": "#f48fb1",
    "device-baked": "#9fa8da",
    "check-error": "#a1887f",
}
UNKNOWN_COLOUR = "#b0bec5"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px 32px;
       color: #212121; max-width: 1320px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.cell { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { display: inline-block; padding: 2px 10px; border-radius: 3px; font-weight: 600; }
.ok { background: #c8e6c9; } .bad { background: #ef9a9a; } .wait { background: #fff59d; }
span.chip { display: inline-block; padding: 2px 8px; margin: 2px 4px 2px 0; border: 1px solid #bbb;
            font-size: 12px; white-space: nowrap; }
span.case { white-space: nowrap; }
ul.marks { font-size: 13px; margin: 4px 0 8px; padding-left: 20px; }
.note { color: #555; font-size: 13px; }
.message { max-width: 620px; overflow-wrap: anywhere; }
img.plot { max-width: 100%; border: 1px solid #eee; }
"""


def render_html(report):
    """Render ``report`` (a validated run report dict) as an HTML document string."""
    results = report["results"]
    sections = [
        _run_header(report),
        _counts_section(results),
        _matrices_section(results),
        _plots_section(results),
        _failures_section(results),
        _key_value_section("Environment", report["environment"]),
        _findings_section(report["findings"]),
        _warnings_section(report["warnings"]),
    ]
    return _page(f"Run report {report['run_id']}", sections)


def render_comparison_html(comparison, old_report, new_report):
    """Render a Comparison of two reports, with plots of both reports' errors and throughput ratios."""
    from reports.compare import CHANGE_TITLES, IMPROVEMENT_KINDS, REGRESSION_KINDS

    regressions = [change for change in comparison.changes if change.kind in REGRESSION_KINDS]
    improvements = [change for change in comparison.changes if change.kind in IMPROVEMENT_KINDS]
    others = [change for change in comparison.changes if change not in regressions and change not in improvements]
    old_environment, new_environment = comparison.old_environment, comparison.new_environment
    rows = [("run id", comparison.old_run_id, comparison.new_run_id)]
    for name in sorted(old_environment.keys() | new_environment.keys()):
        rows.append((name, old_environment.get(name), new_environment.get(name)))
    rows.append(("complete", _yes_no(comparison.old_complete), _yes_no(comparison.new_complete)))
    header = [
        f"<h1>Comparison of run {_text(comparison.old_run_id)} with run {_text(comparison.new_run_id)}</h1>",
        f"<p><span class='status {'bad' if regressions else 'ok'}'>{len(regressions)} regressions</span> "
        f"{len(improvements)} improvements, {len(others)} other changes, "
        f"{comparison.unchanged_count} results unchanged.</p>",
        _table(("", "Old", "New"), rows, changed_rows=True),
    ]
    if not comparison.new_complete:
        header.append("<p class='note'>The new report is incomplete, so cases listed as missing "
                      "may not have run yet.</p>")
    sections = ["\n".join(header), _comparison_plots(old_report, new_report)]
    for title, changes in (("Regressions", regressions), ("Improvements", improvements), ("Other changes", others)):
        if changes:
            rows = [(change.case_id, change.check, CHANGE_TITLES[change.kind], _change_value(change.old),
                     _change_value(change.new), change.detail) for change in changes]
            sections.append(f"<h2>{title}</h2>\n" + _table(("Case", "Check", "Change", "Old", "New", "Detail"), rows))
    return _page(f"Comparison {comparison.old_run_id} / {comparison.new_run_id}", sections)


def _page(title, sections):
    body = "\n\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{_text(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _run_header(report):
    if report["complete"]:
        good = report["exit_status"] == 0
        status = (f"<span class='status {'ok' if good else 'bad'}'>complete, pytest exit status "
                  f"{_text(report['exit_status'])}</span>")
    else:
        status = "<span class='status wait'>incomplete: interrupted, or the run is still in progress</span>"
    times = f"finished {report['finished']}" if report["finished"] else "not finished"
    environment = report["environment"]
    summary = ", ".join(
        f"{name} {environment[name]}" for name in ("torch", "torchvision", "pytorchvideo", "tier", "weights")
        if environment.get(name) is not None
    )
    return (f"<h1>Run report {_text(report['run_id'])}</h1>\n<p>{status}</p>\n"
            f"<p class='note'>Started {_text(report['started'])}, {_text(times)}. {_text(summary)}</p>")


def _counts_section(results):
    counts = collections.Counter(result["outcome"] for result in results)
    outcomes = [outcome for outcome in OUTCOMES if counts[outcome]] + sorted(set(counts) - set(OUTCOMES))
    rows = [(_chip(outcome), counts[outcome]) for outcome in outcomes]
    rows.append(("total", len(results)))
    return "<h2>Outcomes</h2>\n" + _table(("Outcome", "Results"), rows, raw_first=True, numeric=True)


def _matrices_section(results):
    if not results:
        return "<h2>Outcome matrices</h2>\n<p>No results yet.</p>"
    groups = collections.defaultdict(list)
    for result in results:
        groups[(result["device"], result["dtype"], result["check"])].append(result)
    legend = "".join(_chip(outcome) for outcome in OUTCOMES)
    marks = ("<ul class='marks'>"
             f"<li><b>{XFAIL_MARK}</b> expected failure (xfailed): the expectations file lists it</li>"
             f"<li><b>{XPASS_MARK}</b> unexpected pass (xpassed): its expectation may be out of date</li>"
             "<li><b>(k/n)</b> k of the cell's n results (batch sizes, clip lengths) had the outcome shown</li>"
             "<li><b>-</b> no test of this model and mode ran. Hover over a cell to list its cases.</li></ul>")
    parts = ["<h2>Outcome matrices</h2>", f"<p class='legend'>{legend}</p>", marks]
    for (device, dtype, check), group in sorted(groups.items()):
        parts.append(f"<h3>{_text(device)} / {_text(dtype)} / {_text(check)}</h3>")
        parts.append(_matrix(group))
    return "\n".join(parts)


def _matrix(results):
    cells = collections.defaultdict(list)
    for result in results:
        cells[(result["model"], result["mode"])].append(result)
    models = sorted({result["model"] for result in results})
    modes = order_modes({result["mode"] for result in results})
    lines = ["<table>", "<tr><th>model</th>" + "".join(f"<th>{_text(mode)}</th>" for mode in modes) + "</tr>"]
    for model in models:
        row = [f"<th>{_text(model)}</th>"]
        for mode in modes:
            cell_results = cells.get((model, mode))
            if not cell_results:
                row.append("<td class='cell'>-</td>")
                continue
            worst = max((result["outcome"] for result in cell_results), key=severity)
            tooltip = "\n".join(
                f"{result['case_id']}: {result['outcome']} ({result['verdict']})"
                + (f" {result['error_class'] or ''} {result['message']}" if result["outcome"] != "pass" else "")
                for result in cell_results
            )
            row.append(f"<td class='cell' style='background:{_colour(worst)}' title='{_attribute(tooltip)}'>"
                       f"{_text(summarize_cell(cell_results))}</td>")
        lines.append("<tr>" + "".join(row) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _plots_section(results):
    parts = ["<h2>Plots</h2>"]
    errors = plots.errors_figure(results)
    parts.append("<h3>Errors of the converted output relative to the tolerance</h3>")
    if errors:
        parts.append(f"<p class='note'>{_text(_error_summary(results))}</p>")
        parts.append(_image(errors, "max_abs / atol per model and mode"))
    else:
        parts.append("<p class='note'>No result in this report measured an error against a tolerance.</p>")
    throughput = plots.throughput_figure(results)
    parts.append("<h3>Throughput, converted relative to eager</h3>")
    parts.append(_image(throughput, "throughput ratio per model and mode") if throughput
                 else "<p class='note'>No result in this report has a throughput ratio.</p>")
    return "\n".join(parts)


def _error_summary(results):
    ratios = [ratio for ratio in map(plots.error_ratio, results) if ratio is not None]
    exact = sum(1 for ratio in ratios if ratio == 0)
    within = sum(1 for ratio in ratios if 0 < ratio <= 1)
    over = sum(1 for ratio in ratios if 1 < ratio < float("inf"))
    infinite = sum(1 for ratio in ratios if ratio == float("inf"))
    return (f"{len(ratios)} results measured an error: {exact} exactly 0 (bit-identical to eager), "
            f"{within} within atol, {over} over atol, {infinite} NaN or inf.")


def _comparison_plots(old_report, new_report):
    old_results = {(result["case_id"], result["check"]): result for result in old_report["results"]}
    error_pairs, throughput_pairs = [], []
    for result in new_report["results"]:
        old = old_results.get((result["case_id"], result["check"]))
        if old is None:
            continue
        error_pairs.append((plots.error_ratio(old), plots.error_ratio(result)))
        old_throughput, new_throughput = plots.throughput_ratio(old), plots.throughput_ratio(result)
        if old_throughput and new_throughput:
            throughput_pairs.append((old_throughput[0], new_throughput[0]))
    parts = ["<h2>Plots</h2>",
             "<p class='note'>One point per result present in both reports. Points above the dashed line grew "
             "in the new run. Exact matches (error 0) cannot be shown on a log axis and are left out.</p>"]
    errors = plots.comparison_figure(error_pairs, "old max_abs / atol", "new max_abs / atol", "Errors relative to atol")
    throughput = plots.comparison_figure(throughput_pairs, "old ratio", "new ratio", "Throughput ratio")
    parts.append(_image(errors, "old against new error ratios") if errors
                 else "<p class='note'>No result has a non-zero error in both reports.</p>")
    parts.append(_image(throughput, "old against new throughput ratios") if throughput
                 else "<p class='note'>No result has a throughput ratio in both reports.</p>")
    return "\n".join(parts)


def _failures_section(results):
    failures = sorted((result for result in results if result["outcome"] != "pass"),
                      key=lambda result: (result["case_id"], result["check"]))
    if not failures:
        return "<h2>Failures</h2>\n<p>No failures.</p>"
    # The error columns appear only when some failure measured an error.
    measured = any((result.get("errors") or {}).get("max_abs") is not None for result in failures)
    rows = []
    for result in failures:
        errors = result.get("errors") or {}
        row = (
            f"<span class='case'>{_text(result['case_id'])}</span>", _text(result["check"]),
            _chip(result["outcome"]), _text(result["verdict"]), _text(result["error_class"] or ""),
            f"<div class='message'>{_text(result['message'])}</div>",
        )
        if measured:
            row += (_text(format_number(errors.get("max_abs"))), _text(format_number(errors.get("atol"))))
        rows.append(row)
    header = ("Case", "Check", "Outcome", "Verdict", "Error class", "Message")
    if measured:
        header += ("max_abs", "atol")
    return f"<h2>Failures ({len(failures)})</h2>\n" + _raw_table(header, rows)


def _key_value_section(title, mapping):
    return f"<h2>{title}</h2>\n" + _table(("Setting", "Value"), list(mapping.items()))


def _findings_section(findings):
    if not findings:
        return "<h2>Findings</h2>\n<p>No findings.</p>"
    rows = [(finding["model"], finding["kind"], finding["detail"]) for finding in findings]
    return "<h2>Findings</h2>\n" + _table(("Model", "Kind", "Detail"), rows)


def _warnings_section(warnings):
    if not warnings:
        return "<h2>Warnings</h2>\n<p>No warnings.</p>"
    rows = [(entry["category"], entry["count"], entry["message"]) for entry in warnings]
    return "<h2>Warnings</h2>\n" + _table(("Category", "Count", "Message"), rows)


def _table(header, rows, raw_first=False, changed_rows=False, numeric=False):
    """Render a table of plain values; ``raw_first`` keeps the first cell's HTML as it is.

    ``numeric`` right-aligns numbers, for tables whose columns contain only counts.
    """
    body = []
    for row in rows:
        first = row[0] if raw_first else _text(_plain(row[0]))
        cells = [f"<td>{first}</td>"] + [_cell(value, numeric) for value in row[1:]]
        # In an old/new table, a row whose values differ is emphasised.
        emphasis = " style='background:#fff8e1'" if changed_rows and len(set(map(str, row[1:]))) > 1 else ""
        body.append(f"<tr{emphasis}>" + "".join(cells) + "</tr>")
    head = "<tr>" + "".join(f"<th>{_text(name)}</th>" for name in header) + "</tr>"
    return "<table>\n" + head + "\n" + "\n".join(body) + "\n</table>"


def _raw_table(header, rows):
    head = "<tr>" + "".join(f"<th>{_text(name)}</th>" for name in header) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows]
    return "<table>\n" + head + "\n" + "\n".join(body) + "\n</table>"


def _cell(value, numeric):
    if numeric and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"<td class='num'>{_text(_plain(value))}</td>"
    return f"<td>{_text(_plain(value))}</td>"


def _plain(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_number(value)
    return value


def _chip(outcome):
    return f"<span class='chip' style='background:{_colour(outcome)}'>{_text(outcome)}</span>"


def _colour(outcome):
    return OUTCOME_COLOURS.get(outcome, UNKNOWN_COLOUR)


def _image(data, alt):
    return f"<img class='plot' alt='{_attribute(alt)}' src='data:image/png;base64,{data}'>"


def _change_value(value):
    if isinstance(value, tuple):
        ratio, low, high = value
        return f"{format_number(ratio)} [{format_number(low)}, {format_number(high)}]"
    return format_number(value)


def _text(value):
    return html.escape(str(value), quote=False)


def _attribute(value):
    return html.escape(str(value), quote=True)


def _yes_no(flag):
    return "yes" if flag else "no"
