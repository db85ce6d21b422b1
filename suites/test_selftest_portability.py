"""Self-tests of the portability check, run on the CPU.

A transfer from the CPU to the CPU goes through the same save, load, run and
compare steps as a transfer between devices, so these tests show that each
step can fail. The CUDA cases themselves run in suites/test_portability.py.
"""

import os
import pathlib
import subprocess
import sys

import pytest
import torch
from torch import nn

from fixtures import cache, conversion, portability
from fixtures.cases import Case
from fixtures.conversion import ConversionLog
from fixtures.zoo import load_model_file

pytestmark = pytest.mark.selftest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY_MODELS = ROOT / "suites" / "data" / "tiny_models.py"
TINY = {spec.name: spec for spec in load_model_file(TINY_MODELS)}


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Give each self-test an empty cache, so a patched converter is really called."""
    cache.clear()
    yield
    cache.clear()


class Scaled(nn.Module):
    def __init__(self, inner, factor):
        super().__init__()
        self.inner = inner
        self.factor = factor

    def forward(self, x):
        return self.inner(x) * self.factor


def cpu_transfer(name, tmp_path, mode="trace"):
    """Run one CPU-to-CPU transfer of a tiny model and return its outcome record."""
    spec = TINY[name]
    case = Case(name, mode, "cpu", "fp32", 1, spec.quick.frames)
    return portability.transfer(case, case, spec, spec.quick, 0, tmp_path)


def with_converter(monkeypatch, wrap):
    """Replace the trace converter by one that traces and then wraps the result."""

    def convert(model, make_input):
        traced = torch.jit.trace(model, (make_input(),))
        return conversion.Conversion(module=wrap(traced), log=ConversionLog(mode="trace"))

    monkeypatch.setitem(conversion.CONVERTERS, "trace", convert)


def test_transfer_passes_on_faithful_trace(tmp_path):
    outcome = cpu_transfer("tiny_conv", tmp_path)

    assert outcome["outcome"] == "pass", outcome["message"]
    assert outcome["errors"]["max_abs"] <= outcome["errors"]["atol"]
    assert outcome["errors"]["separation"] > outcome["errors"]["atol"]


def test_transfer_catches_changed_output(monkeypatch, tmp_path):
    with_converter(monkeypatch, lambda traced: torch.jit.script(Scaled(traced, 1.001)))

    outcome = cpu_transfer("tiny_conv", tmp_path)

    assert outcome["outcome"] == "mismatch"
    assert outcome["errors"]["max_abs"] > outcome["errors"]["atol"]


def test_transfer_of_unsavable_module_is_roundtrip_error(monkeypatch, tmp_path):
    # A plain nn.Module around the trace is no ScriptModule, so torch.jit.save rejects it.
    with_converter(monkeypatch, lambda traced: Scaled(traced, 1.0))

    outcome = cpu_transfer("tiny_conv", tmp_path)

    assert outcome["outcome"] == "roundtrip-error"
    assert "onto cpu failed" in outcome["message"]


def test_transfer_conversion_failure_is_conversion_error(monkeypatch, tmp_path):
    def refuse(model, make_input):
        raise conversion.ConversionError("refused on purpose", cause=TypeError("not traceable"))

    monkeypatch.setitem(conversion.CONVERTERS, "trace", refuse)

    outcome = cpu_transfer("tiny_conv", tmp_path)

    assert outcome["outcome"] == "conversion-error"
    assert outcome["error_class"] == "TypeError"


def test_transfer_cannot_judge_constant_model(tmp_path):
    outcome = cpu_transfer("tiny_constant", tmp_path)

    assert outcome["outcome"] == "cannot-judge"
    assert outcome["errors"]["separation"] == 0.0


def test_transfer_eager_rejection_is_eager_unsupported(tmp_path):
    outcome = cpu_transfer("tiny_rejects_short", tmp_path, mode="script")

    assert outcome["outcome"] == "eager-unsupported"
    assert "at least 8 frames" in outcome["message"]


def test_portability_reports_worst_transfer(monkeypatch, tmp_path):
    outcomes = {
        "cpu": {"outcome": "pass", "error_class": None, "message": "", "errors": {"max_abs": 0.0},
                "timings": {"call_s": 0.1}},
        "cuda": {"outcome": "run-error", "error_class": "RuntimeError", "message": "device mismatch",
                 "errors": {}, "timings": {}},
    }
    # Each transfer is keyed by the device it loads onto: cpu-to-cuda loads onto cuda.
    monkeypatch.setattr(portability, "transfer", lambda source, target, *rest: outcomes[target.device])
    spec = TINY["tiny_conv"]
    case = Case("tiny_conv", "trace", "cuda", "fp16", 1, spec.quick.frames)

    result = portability.portability(case, spec, spec.quick, 0, tmp_path)

    assert result["check"] == "portability"
    assert result["outcome"] == "run-error"
    assert result["error_class"] == "RuntimeError"
    assert result["message"] == "cpu-to-cuda: device mismatch"
    assert result["details"]["transfers"]["cuda-to-cpu"]["outcome"] == "pass"
    assert result["timings"] == {"cuda-to-cpu_call_s": 0.1}


def run_portability_suite(tmp_path, *args):
    """Run suites/test_portability.py on the tiny models in a subprocess."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONFORMANCE_")}
    command = [
        sys.executable, "-m", "pytest", "suites/test_portability.py", "-n", "0", "-rs",
        f"--report-dir={tmp_path / 'runs'}", "--model-file", str(TINY_MODELS), "--models", "tiny_conv",
        "--modes", "trace", *args,
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)


def test_cpu_matrix_collects_no_portability_case(tmp_path):
    completed = run_portability_suite(tmp_path, "--collect-only", "-q")
    collected = [line for line in completed.stdout.splitlines() if "::" in line]

    assert completed.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, completed.stdout[-2000:]
    assert collected == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the CUDA cases run instead of skipping")
def test_cuda_cases_skip_without_cuda(tmp_path):
    completed = run_portability_suite(tmp_path, "--devices", "cuda", "--dtypes", "fp32,fp16")

    assert completed.returncode == pytest.ExitCode.OK, completed.stdout[-2000:]
    assert "2 skipped" in completed.stdout
    assert "needs a CUDA device" in completed.stdout
    assert "pytest -m gpu --devices cuda" in completed.stdout
