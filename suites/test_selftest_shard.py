"""Self-tests of --shard K/N: shards partition the run by model, and their reports merge into one."""

import json
import re
import os
import pathlib
import subprocess
import sys

import pytest

from fixtures import sharding

pytestmark = pytest.mark.selftest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY_MODELS = ROOT / "suites" / "data" / "tiny_models.py"
TINY_MATRIX = (
    "--model-file", str(TINY_MODELS),
    "--models", "tiny_conv,tiny_sign_branch,tiny_constant,tiny_rejects_short",
    "--modes", "trace,script",
)
# Two checks with cases, and one self-test module whose items have no case id.
COLLECTED_FILES = ("suites/test_equivalence.py", "suites/test_roundtrip.py", "suites/test_selftest_cli.py")


def run_pytest(*args, variables=None):
    """Run pytest in a subprocess from the repository root with only the given CONFORMANCE_* variables."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONFORMANCE_")}
    environment.update(variables or {})
    command = [sys.executable, "-m", "pytest", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)


def collect(tmp_path, *args, variables=None):
    """Return the node ids that ``pytest --collect-only -q`` lists for the tiny matrix."""
    completed = run_pytest(*COLLECTED_FILES, "--collect-only", "-q", "-n", "0",
                           f"--report-dir={tmp_path / 'runs'}", *TINY_MATRIX, *args, variables=variables)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return [line for line in completed.stdout.splitlines() if "::" in line]


def model_of(node_id):
    """Return the model of a parametrized node id, or None for an item without a case id."""
    if "[" not in node_id:
        return None
    return node_id.split("[", 1)[1].split("-", 1)[0]


def test_shard_parse_accepts_valid_values():
    assert sharding.parse("1/1") == (1, 1)
    assert sharding.parse("3/4") == (3, 4)
    assert sharding.parse(" 2 / 2 ") == (2, 2)


@pytest.mark.parametrize("value", ["0/2", "3/2", "1/0", "-1/2", "a/b", "2", "1/2/3", ""])
def test_shard_parse_rejects_invalid_value(value):
    with pytest.raises(ValueError) as raised:
        sharding.parse(value)

    assert repr(value) in str(raised.value)


def test_shard_of_model_is_sha256_of_name():
    # sha256("tiny_conv") is even and sha256("tiny_sign_branch") odd, so they split over two shards.
    assert sharding.shard_of_model("tiny_conv", 2) == 2
    assert sharding.shard_of_model("tiny_sign_branch", 2) == 1
    assert sharding.shard_of_model("tiny_conv", 1) == 1


def test_shards_partition_collection(tmp_path):
    whole = collect(tmp_path)
    first = collect(tmp_path, "--shard", "1/2")
    second = collect(tmp_path, "--shard", "2/2")
    first_models = {model_of(node) for node in first} - {None}
    second_models = {model_of(node) for node in second} - {None}
    self_tests = [node for node in whole if model_of(node) is None]

    assert len(whole) == len(set(whole))
    assert set(first) | set(second) == set(whole)
    assert not set(first) & set(second)
    assert first_models
    assert second_models
    assert not first_models & second_models
    assert self_tests
    assert set(self_tests) <= set(first)


def test_shard_environment_variable_selects_shard(tmp_path):
    by_option = collect(tmp_path, "--shard", "2/2")
    by_variable = collect(tmp_path, variables={"CONFORMANCE_SHARD": "2/2"})
    whole = collect(tmp_path)

    assert by_variable == by_option
    assert len(by_variable) < len(whole)


@pytest.mark.parametrize("value", ["3/2", "0/2", "one/2"])
def test_invalid_shard_is_one_line_error(tmp_path, value):
    completed = run_pytest("suites/test_equivalence.py", "--collect-only", "-q", "-n", "0",
                           f"--report-dir={tmp_path / 'runs'}", "--shard", value)
    errors = [line for line in (completed.stdout + completed.stderr).splitlines() if line.startswith("ERROR")]

    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert len(errors) == 1
    assert repr(value) in errors[0]


def test_shard_reports_merge(tmp_path):
    # tiny_sign_branch lands on shard 1 and tiny_conv on shard 2, and script converts both faithfully.
    # Shard 1 runs under xdist, so its cache counts come from a worker, and shard 2 runs in one process.
    matrix = ("--model-file", str(TINY_MODELS), "--models", "tiny_conv,tiny_sign_branch", "--modes", "script",
              "--batch-sizes", "1")
    shards = {"1/2": ("-n", "2"), "2/2": ("-n", "0")}
    reports = []
    for shard, workers in shards.items():
        folder = tmp_path / shard.replace("/", "-of-")
        completed = run_pytest("suites/test_equivalence.py", "-q", *workers, f"--report-dir={folder}",
                               "--shard", shard, *matrix)
        assert completed.returncode == 0, completed.stdout[-2000:]
        reports.append(folder / "latest.json")
    merged_path = tmp_path / "merged.json"

    merge = subprocess.run([sys.executable, "-m", "reports", "merge", str(merged_path), *map(str, reports)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    shard_reports = [json.loads(path.read_text()) for path in reports]
    merged = json.loads(merged_path.read_text())
    cases = [result["case_id"] for result in merged["results"]]
    counts = merged["cache_counts"]

    assert merge.returncode == 0, merge.stderr
    assert merge.stderr == ""
    assert [report["environment"]["shard"] for report in shard_reports] == ["1/2", "2/2"]
    assert [result["model"] for result in shard_reports[0]["results"]] == ["tiny_sign_branch"]
    assert [result["model"] for result in shard_reports[1]["results"]] == ["tiny_conv"]
    assert merged["complete"] is True
    assert merged["environment"]["shard"] is None
    assert sorted(cases) == ["tiny_conv-script-cpu-fp32-b1-t4", "tiny_sign_branch-script-cpu-fp32-b1-t4"]
    assert sorted(counts["model"]) == ["tiny_conv 4x16 0 cpu fp32", "tiny_sign_branch 4x16 0 cpu fp32"]
    assert len(counts["conversion"]) == 2
    assert set(counts["model"].values()) == {1}
    assert set(counts["conversion"].values()) == {1}
    assert set(counts["reference"].values()) == {1}


def test_empty_shard_exits_zero(tmp_path):
    # With one model, every shard but the model's own is empty.
    empty = next(index for index in (1, 2) if index != sharding.shard_of_model("tiny_conv", 2))
    completed = run_pytest("suites/test_equivalence.py", "-q", "-n", "0", f"--report-dir={tmp_path}",
                           "--model-file", str(TINY_MODELS), "--models", "tiny_conv", "--shard", f"{empty}/2")
    report = json.loads((tmp_path / "latest.json").read_text())

    assert completed.returncode == pytest.ExitCode.OK, completed.stdout[-2000:]
    assert report["results"] == []


def test_collect_only_writes_no_report(tmp_path):
    collect(tmp_path)

    assert not (tmp_path / "runs").exists()


def test_xdist_sends_each_model_to_one_worker(tmp_path):
    completed = run_pytest("suites/test_equivalence.py", "suites/test_mutation.py", "-v", "-n", "2", "-p", "no:randomly",
                           f"--report-dir={tmp_path}", "--model-file", str(TINY_MODELS),
                           "--models", "tiny_conv,tiny_sign_branch,tiny_constant", "--modes", "trace,script",
                           "--batch-sizes", "1")
    workers = {}
    for line in completed.stdout.splitlines():
        # e.g. "[gw1] [ 25%] PASSED suites/test_mutation.py::test_input_mutation[tiny_conv-trace-cpu-fp32-b1-t4]"
        match = re.match(r"\[(gw\d+)\] \[\s*\d+%\] \w+ \S+\[([A-Za-z0-9_.]+)-", line)
        if match:
            workers.setdefault(match[2], set()).add(match[1])

    assert set(workers) == {"tiny_conv", "tiny_sign_branch", "tiny_constant"}, completed.stdout[-2000:]
    assert all(len(names) == 1 for names in workers.values()), workers
