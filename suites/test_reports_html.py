"""Tests of the HTML pages: a run report, a comparison, the writer's copies and the CLI."""

import base64
import math
import re

import pytest

from reports import OUTCOMES, plots
from reports.__main__ import main
from reports.compare import compare_reports
from reports.html import OUTCOME_COLOURS, render_comparison_html, render_html
from reports.writer import write_run
from test_reports import make_report, make_result, run_cli, save

pytestmark = pytest.mark.selftest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE_PATTERN = re.compile(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'")


def images(page):
    """Return the decoded PNG images embedded in ``page``."""
    return [base64.b64decode(data) for data in IMAGE_PATTERN.findall(page)]


def equivalence(model="x3d_s", mode="trace", max_abs=1e-6, atol=1e-5, **fields):
    return make_result(model, mode, errors={"max_abs": max_abs, "max_rel": 0.0, "atol": atol, "rtol": 1e-4},
                       **fields)


def throughput(model="x3d_s", mode="trace", ratio=1.2, interval=(1.1, 1.3)):
    details = {"throughput": {"ratio": ratio, "ratio_ci": list(interval)}}
    return make_result(model, mode, check="throughput", details=details)


def test_page_is_self_contained():
    page = render_html(make_report([equivalence()]))

    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page


def test_page_names_run_and_environment():
    page = render_html(make_report([make_result()], run_id="run-42"))

    assert "Run report run-42" in page
    assert "<td>torchvision</td><td>0.29.1</td>" in page
    assert "<td>test cpu</td>" in page


def test_matrix_cell_coloured_by_worst_outcome():
    results = [
        make_result("x3d_s", "trace", batch_size=1),
        make_result("x3d_s", "trace", batch_size=2, outcome="mismatch", verdict="failed", message="differs"),
    ]

    page = render_html(make_report(results))

    cell = re.search(r"<td class='cell' style='background:([^']+)' title='[^']*'>([^<]+)</td>", page)
    assert cell is not None
    assert cell.group(1) == OUTCOME_COLOURS["mismatch"]
    assert cell.group(2) == "mismatch (1/2)"


def test_matrix_cell_lists_cases_on_hover():
    results = [make_result("x3d_s", "script", outcome="conversion-error", verdict="xfailed",
                           error_class="TypeError", message="not a valid constant")]

    page = render_html(make_report(results))

    assert "title='x3d_s-script-cpu-fp32-b1-t16: conversion-error (xfailed) TypeError not a valid constant'" in page
    assert ">conversion-error*</td>" in page


def test_legend_shows_every_outcome_colour():
    page = render_html(make_report([make_result()]))
    legend = re.search(r"<p class='legend'>(.*?)</p>", page, re.S).group(1)

    for outcome in OUTCOMES:
        assert f"background:{OUTCOME_COLOURS[outcome]}'>{outcome}</span>" in legend


def test_every_outcome_has_distinct_colour():
    assert set(OUTCOME_COLOURS) == set(OUTCOMES)
    assert len(set(OUTCOME_COLOURS.values())) == len(OUTCOMES)


def test_message_is_escaped():
    results = [make_result(outcome="run-error", verdict="failed", error_class="RuntimeError",
                           message="<script>alert('x')</script> & more")]

    page = render_html(make_report(results))

    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "&amp; more" in page


def test_error_plot_embedded_as_png():
    page = render_html(make_report([equivalence(), equivalence(mode="script", max_abs=2e-5)]))

    embedded = images(page)
    assert len(embedded) == 1
    assert embedded[0].startswith(PNG_MAGIC)
    assert "No result in this report has a throughput ratio" in page


def test_throughput_plot_embedded_as_png():
    page = render_html(make_report([equivalence(), throughput(), throughput(mode="script", ratio=0.8,
                                                                           interval=(0.7, 0.9))]))

    embedded = images(page)
    assert len(embedded) == 2
    assert all(image.startswith(PNG_MAGIC) for image in embedded)


def test_error_plot_takes_zero_nan_and_inf():
    results = [equivalence(max_abs=0.0), equivalence(mode="script", max_abs=math.nan),
               equivalence(mode="hybrid", max_abs=math.inf)]

    page = render_html(make_report(results))

    assert len(images(page)) == 1


def test_no_plots_without_measurements():
    page = render_html(make_report([make_result()]))

    assert images(page) == []
    assert "No result in this report measured an error" in page


def test_empty_incomplete_report_renders():
    report = make_report([], complete=False, finished=None, exit_status=None)

    page = render_html(report)

    assert "incomplete" in page
    assert "No results yet." in page


def test_error_ratio_values():
    assert plots.error_ratio(equivalence(max_abs=2e-5, atol=1e-5)) == 2.0
    assert plots.error_ratio(equivalence(max_abs=math.nan)) == math.inf
    assert plots.error_ratio(equivalence(atol=0.0)) is None
    assert plots.error_ratio(make_result()) is None


def test_throughput_ratio_values():
    assert plots.throughput_ratio(throughput(ratio=1.5, interval=(1.4, 1.6))) == (1.5, 1.4, 1.6)
    assert plots.throughput_ratio(make_result()) is None
    assert plots.throughput_ratio(throughput(ratio=math.nan)) is None


def test_writer_writes_html_and_latest(tmp_path):
    report = make_report([equivalence()])

    paths = write_run(report, tmp_path)

    assert paths["html"] == tmp_path / f"{report['run_id']}.html"
    assert paths["latest_html"] == tmp_path / "latest.html"
    assert paths["html"].read_text(encoding="utf-8") == render_html(report)
    assert paths["latest_html"].read_bytes() == paths["html"].read_bytes()


def test_comparison_lists_regression():
    old = make_report([equivalence()], run_id="old-run")
    new = make_report([equivalence(outcome="mismatch", verdict="failed", message="differs")], run_id="new-run")

    page = render_comparison_html(compare_reports(old, new), old, new)

    assert "Comparison of run old-run with run new-run" in page
    assert "1 regressions" in page
    assert "<h2>Regressions</h2>" in page
    assert "outcome turned into a failure" in page


def test_comparison_plots_errors_and_throughput():
    old = make_report([equivalence(max_abs=1e-6), throughput(ratio=1.2)])
    new = make_report([equivalence(max_abs=3e-6), throughput(ratio=1.0, interval=(0.9, 1.1))])

    page = render_comparison_html(compare_reports(old, new), old, new)

    assert len(images(page)) == 2


def test_cli_html_writes_file(tmp_path, capsys):
    source = save(tmp_path / "run.json", make_report([equivalence()]))
    output = tmp_path / "run.html"

    status, out, err = run_cli(capsys, "html", source, "--output", output)

    assert status == 0
    assert out == ""
    assert err == ""
    assert output.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_html_missing_report(tmp_path, capsys):
    status, _, err = run_cli(capsys, "html", tmp_path / "absent.json")

    assert status == 2
    assert "absent.json" in err


def test_cli_compare_html_keeps_fail_on(tmp_path, capsys):
    old = save(tmp_path / "old.json", make_report([make_result()]))
    new = save(tmp_path / "new.json", make_report([make_result(outcome="mismatch", verdict="failed")]))
    output = tmp_path / "compare.html"

    status = main(["compare", str(old), str(new), "--format", "html", "--output", str(output)])

    assert status == 1
    assert "<h2>Regressions</h2>" in output.read_text(encoding="utf-8")
