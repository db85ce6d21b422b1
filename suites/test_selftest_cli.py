"""Self-tests of the pytest plugin, run as a user would: pytest in a subprocess on tiny models."""

import json
import os
import pathlib
import shlex
import subprocess
import sys

import pytest

pytestmark = pytest.mark.selftest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY_MODELS = ROOT / "suites" / "data" / "tiny_models.py"


def run_pytest(tmp_path, *args, expectations=None):
    """Run the suite's equivalence tests in a subprocess and return (completed process, report or None)."""
    expectations_path = tmp_path / "expectations.json"
    expectations_path.write_text(json.dumps({"expectations": expectations or []}))
    report_dir = tmp_path / "runs"
    command = [
        sys.executable, "-m", "pytest", "suites/test_equivalence.py", "-q", "-n", "0",
        "--expectations", str(expectations_path), "--report-dir", str(report_dir), *args,
    ]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONFORMANCE_")}
    # A fixed width keeps pytest's summary lines, and so what the tests find in them, the same on every terminal.
    environment["COLUMNS"] = "100"
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)
    latest = report_dir / "latest.json"
    report = json.loads(latest.read_text()) if latest.exists() else None
    return completed, report


def error_lines(completed):
    return [line for line in (completed.stdout + completed.stderr).splitlines() if line.startswith("ERROR")]


def test_unknown_model_is_one_line_error(tmp_path):
    completed, _ = run_pytest(tmp_path, "--models", "no_such_model")

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert len(error_lines(completed)) == 1
    assert "no_such_model" in error_lines(completed)[0]
    assert "slowfast_r50" in error_lines(completed)[0]


def test_missing_model_file_is_one_line_error(tmp_path):
    missing = tmp_path / "absent_models.py"

    completed, _ = run_pytest(tmp_path, "--model-file", str(missing))

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert str(missing) in error_lines(completed)[0]


def test_unreadable_video_is_one_line_error(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_text("this is not a video")

    completed, _ = run_pytest(tmp_path, "--video", str(broken))

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert str(broken) in error_lines(completed)[0]


@pytest.mark.parametrize(
    "arguments, named",
    [
        (("--models", ","), "','"),
        (("--models", "slow_r50_detection"), "'slow_r50_detection' is not in the matrix"),
        (("--dtypes", "fp16"), "add --devices cuda"),
        (("--model-file=/", ), "is a folder"),
        (("--expectations=/nonexistent/expectations.json",), "'/nonexistent/expectations.json' not found"),
        (("--seed", "x"), "'x' is not an integer"),
        (("--seed", "99999999999999999999"), "99999999999999999999 is out of range"),
        (("--modes", ","), "--modes (or CONFORMANCE_MODES): ',' names no value"),
        (("--modes", ""), "--modes (or CONFORMANCE_MODES): '' names no value"),
        (("--batch-sizes", ","), "--batch-sizes (or CONFORMANCE_BATCH_SIZES): ',' names no value"),
        (("--clip-lengths", ""), "--clip-lengths (or CONFORMANCE_CLIP_LENGTHS): '' names no value"),
    ],
    ids=["no-model-name", "excluded-model", "half-on-cpu", "model-file-folder", "missing-expectations", "bad-seed",
         "huge-seed", "no-mode", "empty-mode", "no-batch-size", "empty-clip-length"],
)
def test_bad_option_is_one_line_error(tmp_path, arguments, named):
    command = [sys.executable, "-m", "pytest", "suites/test_equivalence.py", "-q", "-n", "0",
               f"--report-dir={tmp_path / 'runs'}", *arguments]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONFORMANCE_")}
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert len(error_lines(completed)) == 1
    assert named in error_lines(completed)[0]


def test_report_dir_that_is_file_is_error(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("")

    completed, _ = run_pytest(tmp_path, f"--report-dir={path}")

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert "is a file, not a folder" in error_lines(completed)[0]


def test_unknown_mode_lists_valid_modes(tmp_path):
    completed, _ = run_pytest(tmp_path, "--modes", "trace,compile")

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert "'compile'" in error_lines(completed)[0]
    assert "hybrid" in error_lines(completed)[0]


@pytest.mark.parametrize("workers", ["0", "2"])
def test_gpu_marker_without_cuda_fails_loudly(tmp_path, workers):
    completed, _ = run_pytest(tmp_path, "-m", "gpu", "--model-file", str(TINY_MODELS), "--models", "tiny_conv",
                              "--devices", "cpu,cuda", "-n", workers)

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert "no CUDA device was found" in completed.stdout + completed.stderr


def test_user_models_join_matrix_and_report(tmp_path):
    completed, report = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_conv,tiny_rejects_short", "--modes", "trace,script",
        "--clip-lengths", "4,8",
    )
    outcomes = {result["case_id"]: result["outcome"] for result in report["results"]}

    assert completed.returncode == 0, completed.stdout[-2000:]
    assert report["complete"] is True
    assert outcomes["tiny_conv-trace-cpu-fp32-b1-t4"] == "pass"
    assert outcomes["tiny_conv-script-cpu-fp32-b1-t4"] == "pass"
    assert outcomes["tiny_rejects_short-trace-cpu-fp32-b1-t4"] == "eager-unsupported"
    assert outcomes["tiny_rejects_short-trace-cpu-fp32-b1-t8"] == "pass"
    assert "tiny_conv" in (tmp_path / "runs" / "latest.md").read_text()


def test_model_rejecting_every_input_fails_run(tmp_path):
    completed, report = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_rejects_short", "--modes", "trace",
    )
    findings = [finding for finding in report["findings"] if finding["kind"] == "no-runnable-case"]

    assert completed.returncode == pytest.ExitCode.TESTS_FAILED
    assert "no case of model tiny_rejects_short ran" in completed.stdout
    assert [finding["model"] for finding in findings] == ["tiny_rejects_short"]
    assert report["exit_status"] == pytest.ExitCode.TESTS_FAILED


def test_failed_build_is_check_error_in_report(tmp_path):
    completed, report = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_build_fails", "--modes", "trace",
        "--batch-sizes", "1", "--update-expectations",
    )
    results = report["results"]
    written = json.loads((tmp_path / "expectations.json").read_text())["expectations"]

    assert completed.returncode == pytest.ExitCode.TESTS_FAILED
    assert [result["outcome"] for result in results] == ["check-error"]
    assert results[0]["error_class"] == "FileNotFoundError"
    assert "checkpoint for tiny_build_fails not found" in results[0]["message"]
    assert results[0]["verdict"] == "failed"
    assert written == []


@pytest.mark.parametrize("workers", ["1", "2"])
def test_worker_crash_is_check_error(tmp_path, workers):
    completed, report = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_aborts_when_traced,tiny_conv,tiny_sign_branch",
        "--modes", "trace", "-n", workers,
    )
    outcomes = {result["case_id"]: (result["outcome"], result["verdict"]) for result in report["results"]}
    crashed = [result for result in report["results"] if result["model"] == "tiny_aborts_when_traced"]
    crashed.sort(key=lambda result: result["case_id"])

    assert completed.returncode == pytest.ExitCode.TESTS_FAILED
    # Each crashing case runs once (one worker lost per case), and the other models' cases still run.
    assert completed.stdout.count("node down:") == 2
    assert {case_id: outcome for case_id, outcome in outcomes.items() if case_id.startswith("tiny_aborts")} == {
        "tiny_aborts_when_traced-trace-cpu-fp32-b1-t4": ("check-error", "failed"),
        "tiny_aborts_when_traced-trace-cpu-fp32-b2-t4": ("check-error", "failed"),
    }
    assert outcomes["tiny_conv-trace-cpu-fp32-b1-t4"] == ("pass", "passed")
    assert outcomes["tiny_conv-trace-cpu-fp32-b2-t4"] == ("pass", "passed")
    assert len(outcomes) == 6
    assert {result["error_class"] for result in crashed} == {"WorkerCrashed"}
    assert all("died while running this case" in result["message"] for result in crashed)
    hint = crashed[0]["message"].partition("rerun it alone to see how: ")[2]
    assert hint.startswith("pytest -n 0 suites/test_equivalence.py -k 'tiny_aborts_when_traced-trace-cpu-fp32-b1-t4'")
    assert f"--model-file={TINY_MODELS}" in hint


def test_crash_hint_reproduces_crash(tmp_path):
    _, report = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_aborts_when_traced", "--modes", "trace",
        "--batch-sizes", "1", "-n", "1",
    )
    hint = report["results"][0]["message"].partition("rerun it alone to see how: ")[2]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONFORMANCE_")}
    arguments = shlex.split(hint) + [f"--report-dir={tmp_path / 'rerun'}"]
    completed = subprocess.run([sys.executable, "-m", *arguments], cwd=ROOT, capture_output=True, text=True,
                               timeout=600, env=environment)

    # Without xdist the model's exit ends pytest itself, with the status 70 that AbortsWhenTraced exits with.
    assert completed.returncode == 70, completed.stdout[-2000:] + completed.stderr[-2000:]


def test_expected_failure_is_xfail_and_fixed_case_is_xpass(tmp_path):
    expectations = [
        {"case": "tiny_constant-trace-*", "check": "equivalence", "outcome": "cannot-judge", "error_class": None,
         "reason": "output ignores the input", "seen_on": ["test"]},
        {"case": "tiny_conv-trace-*", "check": "equivalence", "outcome": "mismatch", "error_class": None,
         "reason": "claimed broken, but it is not", "seen_on": ["test"]},
    ]

    completed, report = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_conv,tiny_constant", "--modes", "trace",
        expectations=expectations,
    )
    verdicts = {result["case_id"]: result["verdict"] for result in report["results"]}

    assert completed.returncode == pytest.ExitCode.TESTS_FAILED
    assert "XPASS(strict)" in completed.stdout
    assert verdicts["tiny_constant-trace-cpu-fp32-b1-t4"] == "xfailed"
    assert verdicts["tiny_conv-trace-cpu-fp32-b1-t4"] == "xpassed"


def test_expected_outcome_with_other_error_class_fails(tmp_path):
    expectations = [
        {"case": "tiny_constant-trace-*", "check": "equivalence", "outcome": "cannot-judge",
         "error_class": "SomeOtherError", "reason": "recorded with another cause", "seen_on": ["test"]},
    ]

    completed, report = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_constant", "--modes", "trace",
        expectations=expectations,
    )

    assert completed.returncode == pytest.ExitCode.TESTS_FAILED
    assert "expected error class SomeOtherError" in completed.stdout
    assert report["results"][0]["verdict"] == "failed"


def test_update_expectations_records_failures_only(tmp_path):
    completed, _ = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_conv,tiny_constant", "--modes", "trace",
        "--batch-sizes", "1", "--update-expectations",
    )
    written = json.loads((tmp_path / "expectations.json").read_text())["expectations"]

    assert completed.returncode == pytest.ExitCode.TESTS_FAILED
    assert [entry["case"] for entry in written] == ["tiny_constant-trace-cpu-fp32-b1-t4"]
    assert written[0]["outcome"] == "cannot-judge"


def test_user_model_name_clash_is_error(tmp_path):
    clash = tmp_path / "clash.py"
    clash.write_text(
        "from fixtures.zoo import builtin_specs\n"
        "MODEL_SPECS = [builtin_specs()['r3d_18']]\n"
    )

    completed, _ = run_pytest(tmp_path, "--model-file", str(clash))

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert "'r3d_18'" in error_lines(completed)[0]
