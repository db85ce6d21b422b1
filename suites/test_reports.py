"""Tests of the reports package: schema, writer, Markdown, compare, merge and CLI."""

import copy
import json
import os
import pathlib
import subprocess
import sys

import pytest

import reports
from reports import writer
from reports.__main__ import main
from reports.compare import compare_reports, exit_status, render_comparison
from reports.markdown import render_markdown, summarize_cell
from reports.merge import merge_reports, missing_shards
from reports.schema import ReportError, load_report, validate_report
from reports.writer import write_run, write_text_atomic

pytestmark = pytest.mark.selftest

REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_result(model="x3d_s", mode="trace", check="equivalence", **fields):
    """Build a passing result; ``fields`` override any key."""
    batch_size = fields.pop("batch_size", 1)
    clip_length = fields.pop("clip_length", 16)
    result = {
        "case_id": f"{model}-{mode}-cpu-fp32-b{batch_size}-t{clip_length}",
        "model": model,
        "family": "pytorchvideo",
        "mode": mode,
        "device": "cpu",
        "dtype": "fp32",
        "batch_size": batch_size,
        "clip_length": clip_length,
        "check": check,
        "outcome": "pass",
        "verdict": "passed",
        "expected": None,
        "error_class": None,
        "message": "",
        "errors": {},
        "timings": {"build_s": 0.1},
        "details": {},
    }
    result.update(fields)
    return result


def make_report(results, run_id="20261204T195500Z-aaaaaa", torch="2.14.1", **fields):
    """Build a complete report holding ``results``; ``fields`` override any key."""
    report = {
        "schema_version": 1,
        "run_id": run_id,
        "complete": True,
        "started": "2026-12-04T19:55:00+00:00",
        "finished": "2026-12-04T20:01:10+00:00",
        "exit_status": 0,
        "environment": {
            "torch": torch,
            "torchvision": "0.29.1",
            "pytorchvideo": "0.1.5",
            "python": "3.11.7",
            "platform": "Linux",
            "cpu": "test cpu",
            "cuda_device": None,
            "threads": 2,
            "suite_commit": None,
            "command_line": "pytest",
            "tier": "quick",
            "shard": None,
        },
        "warnings": [],
        "findings": [],
        "results": results,
    }
    report.update(fields)
    return report


def save(path, report):
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def changes_of_kind(comparison, kind):
    return [change for change in comparison.changes if change.kind == kind]


# Package constants


def test_package_constants():
    assert reports.SCHEMA_VERSION == 1
    assert reports.OUTCOMES[0] == "pass"
    assert len(reports.OUTCOMES) == len(set(reports.OUTCOMES))
    assert "shape-locked" in reports.OUTCOMES
    assert "cannot-judge" in reports.OUTCOMES


def test_severity_order_ranks_every_outcome():
    from reports.markdown import SEVERITY_ORDER

    assert sorted(SEVERITY_ORDER) == sorted(reports.OUTCOMES)


# Schema


def test_load_report_reads_valid_file(tmp_path):
    report = make_report([make_result()])
    path = save(tmp_path / "run.json", report)

    assert load_report(path) == report


def test_load_report_missing_file(tmp_path):
    path = tmp_path / "absent.json"

    with pytest.raises(ReportError) as caught:
        load_report(path)

    assert "not found" in str(caught.value)
    assert str(path) in str(caught.value)


def test_load_report_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"schema_version": 1,', encoding="utf-8")

    with pytest.raises(ReportError) as caught:
        load_report(path)

    assert "not valid JSON" in str(caught.value)
    assert str(path) in str(caught.value)


def test_load_report_json_array_rejected(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[]", encoding="utf-8")

    with pytest.raises(ReportError, match="must be a JSON object"):
        load_report(path)


def test_load_report_other_schema_version(tmp_path):
    report = make_report([make_result()], schema_version=2)
    path = save(tmp_path / "future.json", report)

    with pytest.raises(ReportError) as caught:
        load_report(path)

    message = str(caught.value)
    assert str(path) in message
    assert "schema_version 2" in message
    assert "schema version 1" in message


def test_report_error_is_value_error():
    assert issubclass(ReportError, ValueError)


def test_validate_report_accepts_valid_report():
    report = make_report([make_result(), make_result(check="roundtrip")])

    validate_report(report)


def test_validate_report_duplicate_key():
    result = make_result()
    report = make_report([result, copy.deepcopy(result)])

    with pytest.raises(ReportError) as caught:
        validate_report(report)

    assert result["case_id"] in str(caught.value)
    assert "results[1]" in str(caught.value)


def test_validate_report_missing_key():
    result = make_result()
    del result["verdict"]
    report = make_report([result])
    del report["run_id"]

    with pytest.raises(ReportError) as caught:
        validate_report(report)

    assert "missing key run_id" in str(caught.value)
    assert "missing key results[0].verdict" in str(caught.value)


def test_validate_report_unknown_outcome():
    report = make_report([make_result(outcome="exploded")])

    with pytest.raises(ReportError, match="'exploded'"):
        validate_report(report)


def test_validate_report_wrong_type():
    report = make_report([make_result(batch_size="1")], complete="yes")

    with pytest.raises(ReportError) as caught:
        validate_report(report)

    assert "complete must be bool" in str(caught.value)
    assert "results[0].batch_size must be int or null" in str(caught.value)


def test_validate_report_boolean_version():
    report = make_report([], schema_version=True)

    with pytest.raises(ReportError, match="schema_version True"):
        validate_report(report)


# Writer


def test_write_run_creates_run_and_latest_files(tmp_path):
    report = make_report([make_result()])
    runs_dir = tmp_path / "runs"

    paths = write_run(report, runs_dir)

    assert paths["json"] == runs_dir / f"{report['run_id']}.json"
    assert paths["markdown"] == runs_dir / f"{report['run_id']}.md"
    assert paths["latest_json"] == runs_dir / "latest.json"
    assert paths["latest_markdown"] == runs_dir / "latest.md"
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(report)


def test_write_run_latest_equals_run_files(tmp_path):
    paths = write_run(make_report([make_result()]), tmp_path)

    assert paths["latest_json"].read_bytes() == paths["json"].read_bytes()
    assert paths["latest_markdown"].read_bytes() == paths["markdown"].read_bytes()


def test_write_run_leaves_no_temporary_files(tmp_path):
    report = make_report([make_result()])

    write_run(make_report([], complete=False, finished=None, exit_status=None), tmp_path)
    write_run(report, tmp_path)

    names = {path.name for path in tmp_path.iterdir()}
    assert not [name for name in names if name.endswith(".tmp")]
    # filelock may leave its lock file behind, but no other file may remain.
    assert names - {".latest.lock"} == {
        f"{report['run_id']}.json",
        f"{report['run_id']}.md",
        f"{report['run_id']}.html",
        "latest.json",
        "latest.md",
        "latest.html",
    }


def test_write_run_twice_replaces_incomplete_report(tmp_path):
    incomplete = make_report([], complete=False, finished=None, exit_status=None)
    final = make_report([make_result()])

    write_run(incomplete, tmp_path)
    first_markdown = (tmp_path / "latest.md").read_text(encoding="utf-8")
    paths = write_run(final, tmp_path)

    assert "INCOMPLETE" in first_markdown
    assert load_report(paths["json"])["complete"] is True
    assert load_report(paths["latest_json"]) == final
    assert "INCOMPLETE" not in paths["latest_markdown"].read_text(encoding="utf-8")


def test_write_run_latest_follows_newest_run(tmp_path):
    first = make_report([make_result()], run_id="run-1")
    second = make_report([make_result(outcome="mismatch", verdict="failed")], run_id="run-2")

    write_run(first, tmp_path)
    write_run(second, tmp_path)

    assert load_report(tmp_path / "latest.json")["run_id"] == "run-2"
    assert load_report(tmp_path / "run-1.json") == first


def test_write_run_rejects_unsafe_run_id(tmp_path):
    report = make_report([], run_id="../escape")

    with pytest.raises(ReportError, match="cannot be used as a file name"):
        write_run(report, tmp_path / "runs")

    assert not (tmp_path / "escape.json").exists()


def test_write_run_rejects_invalid_report(tmp_path):
    report = make_report([make_result(outcome="exploded")])

    with pytest.raises(ReportError):
        write_run(report, tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_atomic_write_failure_keeps_old(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def fail_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(writer.os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(target, "new")

    assert target.read_text(encoding="utf-8") == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]


def test_atomic_write_honors_umask(tmp_path):
    target = tmp_path / "report.md"
    umask = os.umask(0o022)
    try:
        write_text_atomic(target, "text")
    finally:
        os.umask(umask)

    assert target.stat().st_mode & 0o777 == 0o644


# Markdown


def matrix_report():
    results = [
        make_result("slowfast_r50", "eager"),
        make_result("slowfast_r50", "frozen"),
        make_result("slowfast_r50", "onnx"),
        make_result("slowfast_r50", "hybrid"),
        make_result("slowfast_r50", "trace"),
        make_result("slowfast_r50", "script", outcome="conversion-error", verdict="xfailed",
                    error_class="torch.jit.frontend.NotSupportedError",
                    message="Comprehension ifs are not supported yet"),
        make_result("slowfast_r50", "export", outcome="pass", verdict="xpassed"),
        make_result("c2d_r50", "eager"),
    ]
    for batch_size in (1, 2, 4):
        results.append(make_result("c2d_r50", "trace", batch_size=batch_size))
    results.append(
        make_result("c2d_r50", "trace", batch_size=8, outcome="mismatch", verdict="failed",
                    message="outputs differ",
                    errors={"max_abs": 0.5, "max_rel": 0.25, "atol": 1e-5, "rtol": 1e-4})
    )
    results.append(make_result("c2d_r50", "trace", check="throughput", outcome="slower",
                               verdict="failed", message="0.8x eager"))
    return make_report(
        results,
        warnings=[{"category": "FutureWarning", "message": "a | b", "count": 12}],
        findings=[{"model": "slowfast_r50", "kind": "input-mutation", "detail": "writes input"}],
    )


def table_lines(markdown, heading):
    """Return the table lines that follow ``heading`` in ``markdown``."""
    lines = markdown.splitlines()
    start = lines.index(heading) + 2
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table


def test_markdown_header_and_status():
    complete = render_markdown(make_report([]))
    incomplete = render_markdown(make_report([], complete=False, finished=None, exit_status=None))

    assert complete.startswith("# Run report 20261204T195500Z-aaaaaa\n")
    assert "**Status:** COMPLETE" in complete
    assert "**Status:** INCOMPLETE" in incomplete


def test_markdown_environment_and_counts():
    markdown = render_markdown(matrix_report())

    assert "| torch | 2.14.1 |" in markdown
    assert "| cuda_device | - |" in markdown
    assert "| pass | 10 |" in markdown
    assert "| mismatch | 1 |" in markdown
    assert "| total | 13 |" in markdown


def test_markdown_matrix_columns_and_rows():
    table = table_lines(render_markdown(matrix_report()), "### cpu / fp32 / equivalence")

    assert table[0] == (
        "| model | eager | trace | script | hybrid | export | frozen | onnx |"
    )
    assert table[2].startswith("| c2d_r50 |")
    assert table[3].startswith("| slowfast_r50 |")


def test_markdown_matrix_cells():
    table = table_lines(render_markdown(matrix_report()), "### cpu / fp32 / equivalence")

    assert table[2] == "| c2d_r50 | pass | mismatch (1/4) | - | - | - | - | - |"
    assert table[3] == (
        "| slowfast_r50 | pass | pass | conversion-error* | pass | pass! | pass | pass |"
    )


def test_markdown_matrix_marks_explained():
    markdown = render_markdown(matrix_report())
    equivalence = markdown.split("### cpu / fp32 / equivalence")[1].split("###")[0]

    assert "`*` expected failure" in equivalence
    assert "`!` unexpected pass" in equivalence


def test_markdown_groups_by_check():
    markdown = render_markdown(matrix_report())
    table = table_lines(markdown, "### cpu / fp32 / throughput")

    assert table[0] == "| model | trace |"
    assert table[2] == "| c2d_r50 | slower |"
    assert "`*`" not in markdown.split("### cpu / fp32 / throughput")[1]


def test_summarize_cell_counts_worst_outcome():
    results = [
        make_result(outcome="slower", verdict="failed"),
        make_result(outcome="mismatch", verdict="xfailed"),
        make_result(outcome="mismatch", verdict="failed"),
    ]

    assert summarize_cell(results) == "mismatch (2/3)*"


def test_markdown_failures_section():
    markdown = render_markdown(matrix_report())
    failures = markdown.split("## Failures")[1].split("## Findings")[0]

    assert "`slowfast_r50-script-cpu-fp32-b1-t16` equivalence: **conversion-error**" in failures
    assert "(xfailed)" in failures
    assert "`torch.jit.frontend.NotSupportedError`" in failures
    assert "Comprehension ifs are not supported yet" in failures
    assert "max_abs=0.5; max_rel=0.25; tolerance atol=1e-05, rtol=0.0001" in failures
    assert "**slower**" in failures
    assert "**pass**" not in failures


def test_markdown_findings_and_warnings():
    markdown = render_markdown(matrix_report())

    assert "- slowfast_r50, input-mutation: writes input" in markdown
    assert "| FutureWarning | 12 | a \\| b |" in markdown


def test_markdown_empty_report():
    markdown = render_markdown(make_report([]))

    assert "No results yet." in markdown
    assert "No failures." in markdown
    assert "No findings." in markdown
    assert "No warnings." in markdown


# Compare


def test_compare_outcome_flips():
    old = make_report([
        make_result("a"),
        make_result("b", outcome="mismatch", verdict="failed"),
        make_result("c", outcome="run-error", verdict="failed"),
        make_result("d"),
    ])
    new = make_report([
        make_result("a", outcome="mismatch", verdict="failed", message="differs"),
        make_result("b"),
        make_result("c", outcome="conversion-error", verdict="failed"),
        make_result("d"),
    ])

    comparison = compare_reports(old, new)

    regressions = changes_of_kind(comparison, "outcome-regression")
    improvements = changes_of_kind(comparison, "outcome-improvement")
    changed = changes_of_kind(comparison, "outcome-changed")
    assert [change.case_id for change in regressions] == ["a-trace-cpu-fp32-b1-t16"]
    assert [change.case_id for change in improvements] == ["b-trace-cpu-fp32-b1-t16"]
    assert [(change.old, change.new) for change in changed] == [("run-error", "conversion-error")]
    assert comparison.unchanged_count == 1
    assert len(comparison.regressions) == 1


def test_compare_cases_on_one_side():
    old = make_report([make_result("gone"), make_result("kept")])
    new = make_report([make_result("kept"), make_result("fresh")])

    comparison = compare_reports(old, new)

    removed = changes_of_kind(comparison, "case-removed")
    added = changes_of_kind(comparison, "case-added")
    assert [change.case_id for change in removed] == ["gone-trace-cpu-fp32-b1-t16"]
    assert [change.case_id for change in added] == ["fresh-trace-cpu-fp32-b1-t16"]
    assert removed[0].is_regression
    assert not added[0].is_regression


def errors(max_abs, atol=1e-3):
    return {"max_abs": max_abs, "max_rel": max_abs, "atol": atol, "rtol": 1e-4}


def test_compare_error_growth_tenfold():
    old = make_report([make_result("a", errors=errors(1e-7)), make_result("b", errors=errors(1e-7))])
    new = make_report([make_result("a", errors=errors(2e-6)), make_result("b", errors=errors(5e-7))])

    growth = changes_of_kind(compare_reports(old, new), "error-growth")

    assert [change.case_id for change in growth] == ["a-trace-cpu-fp32-b1-t16"]
    assert growth[0].old == pytest.approx(1e-7)
    assert growth[0].new == pytest.approx(2e-6)


def test_compare_error_growth_from_zero_ignored():
    old = make_report([make_result(errors=errors(0.0))])
    new = make_report([make_result(errors=errors(1e-9))])

    assert compare_reports(old, new).changes == []


def test_compare_tolerance_crossing():
    old = make_report([make_result("a", errors=errors(9e-4)), make_result("b", errors=errors(2e-3))])
    new = make_report([make_result("a", errors=errors(1.1e-3)), make_result("b", errors=errors(5e-4))])

    comparison = compare_reports(old, new)

    crossed = changes_of_kind(comparison, "tolerance-crossed")
    recovered = changes_of_kind(comparison, "tolerance-recovered")
    assert [change.case_id for change in crossed] == ["a-trace-cpu-fp32-b1-t16"]
    assert [change.case_id for change in recovered] == ["b-trace-cpu-fp32-b1-t16"]
    assert changes_of_kind(comparison, "error-growth") == []


def test_compare_nan_error_counts_as_growth():
    old = make_report([make_result(errors=errors(1e-6))])
    new = make_report([make_result(errors=errors(float("nan")))])

    comparison = compare_reports(old, new)

    assert len(changes_of_kind(comparison, "error-growth")) == 1
    assert len(changes_of_kind(comparison, "tolerance-crossed")) == 1


def throughput(ratio, low, high):
    return {"throughput": {"ratio": ratio, "ratio_ci": [low, high]}}


def test_compare_throughput_ratios():
    old = make_report([
        make_result("drop", check="throughput", details=throughput(1.5, 1.4, 1.6)),
        make_result("same", check="throughput", details=throughput(1.5, 1.4, 1.6)),
        make_result("gain", check="throughput", details=throughput(1.0, 0.9, 1.1)),
    ])
    new = make_report([
        make_result("drop", check="throughput", details=throughput(1.2, 1.1, 1.3)),
        make_result("same", check="throughput", details=throughput(1.35, 1.25, 1.45)),
        make_result("gain", check="throughput", details=throughput(1.4, 1.3, 1.5)),
    ])

    comparison = compare_reports(old, new)

    drops = changes_of_kind(comparison, "throughput-drop")
    gains = changes_of_kind(comparison, "throughput-gain")
    assert [change.case_id for change in drops] == ["drop-trace-cpu-fp32-b1-t16"]
    assert [change.case_id for change in gains] == ["gain-trace-cpu-fp32-b1-t16"]
    assert drops[0].is_regression
    assert not gains[0].is_regression
    assert comparison.unchanged_count == 1


def test_compare_header_names_runs_and_torch():
    old = make_report([make_result()], run_id="old-run", torch="2.13.0")
    new = make_report([make_result()], run_id="new-run", torch="2.14.1")

    markdown = render_comparison(compare_reports(old, new))

    assert markdown.startswith("# Comparison of run old-run with run new-run\n")
    assert "| Run id | old-run | new-run |" in markdown
    assert "| torch | 2.13.0 | 2.14.1 |" in markdown


def test_compare_markdown_lists_regression():
    old = make_report([make_result()])
    new = make_report([make_result(outcome="mismatch", verdict="failed", message="max_abs 1")])

    markdown = render_comparison(compare_reports(old, new))

    assert "## Regressions" in markdown
    assert "| x3d_s-trace-cpu-fp32-b1-t16 | equivalence | outcome turned into a failure | pass | mismatch | max_abs 1 |" in markdown


def test_exit_status_policies():
    old = make_report([make_result("a")])
    regressed = compare_reports(old, make_report([make_result("a", outcome="run-error", verdict="failed")]))
    added = compare_reports(old, make_report([make_result("a"), make_result("b")]))
    same = compare_reports(old, copy.deepcopy(old))

    assert exit_status(regressed, "regression") == 1
    assert exit_status(added, "regression") == 0
    assert exit_status(added, "any") == 1
    assert exit_status(same, "any") == 0
    assert exit_status(regressed, "never") == 0


# Merge


def shard(index, total, results, **fields):
    report = make_report(results, run_id=f"shard-{index}", **fields)
    report["environment"]["shard"] = f"{index}/{total}"
    return report


def test_merge_joins_shards():
    first = shard(1, 2, [make_result("a")], warnings=[{"category": "UserWarning", "message": "w", "count": 2}])
    second = shard(2, 2, [make_result("b")], warnings=[{"category": "UserWarning", "message": "w", "count": 3}])

    merged = merge_reports([first, second])

    assert [result["model"] for result in merged["results"]] == ["a", "b"]
    assert merged["environment"]["shard"] is None
    assert merged["complete"] is True
    assert merged["run_id"] == "shard-1-merged"
    assert merged["warnings"] == [{"category": "UserWarning", "message": "w", "count": 5}]
    assert first["environment"]["shard"] == "1/2"


def test_merge_keeps_every_shard_command_line():
    first = shard(1, 2, [make_result("a")])
    first["environment"]["command_line"] = "pytest --shard 1/2"
    second = shard(2, 2, [make_result("b")])
    second["environment"]["command_line"] = "pytest --shard 2/2"

    merged = merge_reports([first, second])

    assert merged["environment"]["shard_command_lines"] == ["pytest --shard 1/2", "pytest --shard 2/2"]


def test_merge_incomplete_shard():
    first = shard(1, 2, [make_result("a")])
    second = shard(2, 2, [make_result("b")], complete=False, finished=None, exit_status=None)

    merged = merge_reports([first, second])

    assert merged["complete"] is False
    assert merged["finished"] is None
    assert merged["exit_status"] is None


def test_merge_missing_shard_marks_incomplete():
    reports_in = [shard(1, 3, [make_result("a")]), shard(3, 3, [make_result("c")])]

    assert missing_shards(reports_in) == ["2/3"]
    assert merge_reports(reports_in)["complete"] is False


def test_merge_duplicate_case_rejected():
    first = shard(1, 2, [make_result("a")])
    second = shard(2, 2, [make_result("a")])

    with pytest.raises(ReportError) as caught:
        merge_reports([first, second], ["one.json", "two.json"])

    assert "a-trace-cpu-fp32-b1-t16" in str(caught.value)
    assert "one.json" in str(caught.value)
    assert "two.json" in str(caught.value)


def test_merge_different_torch_rejected():
    first = shard(1, 2, [make_result("a")])
    second = shard(2, 2, [make_result("b")], torch="2.13.0")

    with pytest.raises(ReportError, match="torch '2.13.0'"):
        merge_reports([first, second])


def test_merge_exit_status_ignores_empty_shard():
    first = shard(1, 3, [make_result("a")], exit_status=0)
    empty = shard(2, 3, [], exit_status=5)
    failed = shard(3, 3, [make_result("c")], exit_status=1)

    assert merge_reports([first, empty])["exit_status"] == 0
    assert merge_reports([first, empty, failed])["exit_status"] == 1


# Command line


def run_cli(capsys, *arguments):
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_compare_regression_exit_status(tmp_path, capsys):
    old = save(tmp_path / "old.json", make_report([make_result()]))
    new = save(tmp_path / "new.json", make_report([make_result(outcome="mismatch", verdict="failed")]))

    status, out, err = run_cli(capsys, "compare", old, new)

    assert status == 1
    assert "## Regressions" in out
    assert err == ""


def test_cli_compare_fail_on_never(tmp_path, capsys):
    old = save(tmp_path / "old.json", make_report([make_result()]))
    new = save(tmp_path / "new.json", make_report([make_result(outcome="mismatch", verdict="failed")]))

    status, _, _ = run_cli(capsys, "compare", old, new, "--fail-on", "never")

    assert status == 0


def test_cli_compare_no_change_writes_output(tmp_path, capsys):
    old = save(tmp_path / "old.json", make_report([make_result()]))
    new = save(tmp_path / "new.json", make_report([make_result()]))
    output = tmp_path / "comparison.md"

    status, out, _ = run_cli(capsys, "compare", old, new, "--output", output)

    assert status == 0
    assert out == ""
    assert "0 regressions in 0 results" in output.read_text(encoding="utf-8")


def test_cli_compare_schema_version_rejected(tmp_path, capsys):
    old = save(tmp_path / "old.json", make_report([make_result()]))
    new = save(tmp_path / "new.json", make_report([make_result()], schema_version=2))

    status, out, err = run_cli(capsys, "compare", old, new)

    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "schema_version 2" in err
    assert "new.json" in err


def test_cli_compare_missing_file(tmp_path, capsys):
    old = save(tmp_path / "old.json", make_report([make_result()]))

    status, _, err = run_cli(capsys, "compare", old, tmp_path / "absent.json")

    assert status == 2
    assert "absent.json" in err
    assert err.count("\n") == 1


def test_cli_compare_html_writes_page(tmp_path, capsys):
    old = save(tmp_path / "old.json", make_report([make_result()]))

    status, out, err = run_cli(capsys, "compare", old, old, "--format", "html")

    assert status == 0
    assert err == ""
    assert out.startswith("<!DOCTYPE html>")


def test_cli_merge_writes_report(tmp_path, capsys):
    first = save(tmp_path / "s1.json", shard(1, 2, [make_result("a")]))
    second = save(tmp_path / "s2.json", shard(2, 2, [make_result("b")]))
    output = tmp_path / "merged.json"

    status, _, err = run_cli(capsys, "merge", output, first, second)

    assert status == 0
    assert err == ""
    assert len(load_report(output)["results"]) == 2


def test_cli_merge_duplicate_rejected(tmp_path, capsys):
    first = save(tmp_path / "s1.json", shard(1, 2, [make_result("a")]))
    second = save(tmp_path / "s2.json", shard(2, 2, [make_result("a")]))
    output = tmp_path / "merged.json"

    status, _, err = run_cli(capsys, "merge", output, first, second)

    assert status == 2
    assert "a-trace-cpu-fp32-b1-t16" in err
    assert not output.exists()


def test_cli_merge_rejects_shard_as_output(tmp_path, capsys):
    first = save(tmp_path / "s1.json", shard(1, 2, [make_result("a")]))
    second = save(tmp_path / "s2.json", shard(2, 2, [make_result("b")]))
    before = first.read_text()

    status, _, err = run_cli(capsys, "merge", first, second)

    assert status == 2
    assert "is a shard report" in err
    assert first.read_text() == before


def test_cli_merge_rejects_input_as_output(tmp_path, capsys):
    first = save(tmp_path / "s1.json", make_report([make_result("a")]))
    second = save(tmp_path / "s2.json", make_report([make_result("b")]))
    before = first.read_text()

    status, _, err = run_cli(capsys, "merge", first, first, second)

    assert status == 2
    assert "is also an input" in err
    assert first.read_text() == before


def test_cli_merge_bad_json(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")

    status, _, err = run_cli(capsys, "merge", tmp_path / "out.json", broken)

    assert status == 2
    assert "broken.json" in err
    assert "not valid JSON" in err


def test_cli_merge_missing_shard_warns(tmp_path, capsys):
    first = save(tmp_path / "s1.json", shard(1, 2, [make_result("a")]))
    output = tmp_path / "merged.json"

    status, _, err = run_cli(capsys, "merge", output, first)

    assert status == 0
    assert "2/2" in err
    assert load_report(output)["complete"] is False


def test_cli_render_prints_markdown(tmp_path, capsys):
    path = save(tmp_path / "run.json", matrix_report())

    status, out, _ = run_cli(capsys, "render", path)

    assert status == 0
    assert out == render_markdown(matrix_report())


def test_cli_missing_file_no_traceback(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "reports", "render", str(tmp_path / "absent.json")],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.count("\n") == 1
    assert "absent.json" in completed.stderr


def test_compare_summary_counts_results():
    old = make_report([make_result(errors=errors(1e-4))])
    new = make_report([make_result(outcome="mismatch", verdict="failed", errors=errors(2e-3))])

    markdown = render_comparison(compare_reports(old, new))

    assert "3 regressions in 1 results" in markdown
    assert "0 results are unchanged" in markdown
