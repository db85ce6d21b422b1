"""Self-tests: each check fails on a module built to violate it, and passes on one that does not."""

import numpy as np
import pytest
import torch
from torch import nn

from fixtures import cache, checks, conversion, hybrid, tolerances
from fixtures.cases import Case
from fixtures.conversion import ConversionLog
from fixtures.deploy import DeployWorker
from fixtures.zoo import load_model_file
import pathlib

pytestmark = pytest.mark.selftest

TINY = {spec.name: spec for spec in load_model_file(pathlib.Path(__file__).parent / "data" / "tiny_models.py")}


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Give each self-test an empty cache, so a patched converter is really called."""
    cache.clear()
    yield
    cache.clear()


def tiny_case(name, mode="trace", batch_size=1):
    spec = TINY[name]
    return Case(name, mode, "cpu", "fp32", batch_size, spec.quick.frames), spec


def with_converter(monkeypatch, mode, wrap):
    """Replace a mode's converter by one that traces and then wraps the result."""

    def convert(model, make_input):
        traced = torch.jit.trace(model, (make_input(),))
        return conversion.Conversion(module=wrap(traced), log=ConversionLog(mode=mode))

    monkeypatch.setitem(conversion.CONVERTERS, mode, convert)


class Scaled(nn.Module):
    def __init__(self, inner, factor):
        super().__init__()
        self.inner = inner
        self.factor = factor

    def forward(self, x):
        return self.inner(x) * self.factor


def test_equivalence_passes_on_faithful_trace():
    case, spec = tiny_case("tiny_conv")

    result = checks.equivalence(case, spec, spec.quick, seed=0)

    assert result["outcome"] == "pass", result["message"]
    assert result["errors"]["max_abs"] <= result["errors"]["atol"]
    assert result["errors"]["separation"] > result["errors"]["atol"]


def test_equivalence_catches_small_output_error(monkeypatch):
    with_converter(monkeypatch, "trace", lambda traced: Scaled(traced, 1.001))
    case, spec = tiny_case("tiny_conv")

    result = checks.equivalence(case, spec, spec.quick, seed=0)

    assert result["outcome"] == "mismatch"
    assert result["errors"]["max_abs"] > result["errors"]["atol"]
    assert case.id in result["message"]


def test_equivalence_catches_wrong_shape(monkeypatch):
    with_converter(monkeypatch, "trace", lambda traced: lambda x: traced(x)[:, :5])
    case, spec = tiny_case("tiny_conv")

    result = checks.equivalence(case, spec, spec.quick, seed=0)

    assert result["outcome"] == "mismatch"
    assert "(1, 10)" in result["message"]


def test_equivalence_cannot_judge_constant_model():
    case, spec = tiny_case("tiny_constant")

    result = checks.equivalence(case, spec, spec.quick, seed=0)

    assert result["outcome"] == "cannot-judge"
    assert result["errors"]["separation"] == 0.0


def test_eager_rejection_is_eager_unsupported():
    case, spec = tiny_case("tiny_rejects_short")

    result = checks.equivalence(case, spec, spec.quick, seed=0)

    assert result["outcome"] == "eager-unsupported"
    assert "at least 8 frames" in result["message"]


def _seed_with_opposite_signs(spec, case):
    for seed in range(50):
        signs = {float(cache.make_input(spec, spec.quick, case, seed, offset).mean()) > 0 for offset in (0, 1)}
        if len(signs) == 2:
            return seed
    raise AssertionError("no seed below 50 gives conversion and evaluation inputs of opposite mean sign")


def test_frozen_branch_is_mismatch_in_trace_only():
    trace_case, spec = tiny_case("tiny_sign_branch", "trace")
    script_case, _ = tiny_case("tiny_sign_branch", "script")
    seed = _seed_with_opposite_signs(spec, trace_case)

    traced = checks.equivalence(trace_case, spec, spec.quick, seed)
    scripted = checks.equivalence(script_case, spec, spec.quick, seed)

    assert traced["outcome"] == "mismatch"
    assert scripted["outcome"] == "pass", scripted["message"]


def test_conversion_failure_is_conversion_error(monkeypatch):
    def refuse(model, make_input):
        raise conversion.ConversionError("refused on purpose", cause=TypeError("not scriptable"))

    monkeypatch.setitem(conversion.CONVERTERS, "script", refuse)
    case, spec = tiny_case("tiny_conv", "script")

    result = checks.equivalence(case, spec, spec.quick, seed=0)

    assert result["outcome"] == "conversion-error"
    assert result["error_class"] == "TypeError"


def test_roundtrip_passes_on_traced_module(tmp_path):
    case, spec = tiny_case("tiny_conv")

    result = checks.roundtrip(case, spec, spec.quick, 0, tmp_path)

    assert result["outcome"] == "pass", result["message"]
    assert result["details"]["fresh_process"]["loaded_pytorchvideo"] is False


class _Double(torch.autograd.Function):
    @staticmethod
    def forward(context, x):
        return x * 2

    @staticmethod
    def backward(context, grad):
        return grad * 2


class PythonFunctionOutput(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return _Double.apply(self.inner(x)) / 2


def test_roundtrip_catches_unsaveable_trace(monkeypatch, tmp_path):
    def convert(model, make_input):
        module = torch.jit.trace(PythonFunctionOutput(model), (make_input(),))
        return conversion.Conversion(module=module, log=ConversionLog(mode="trace"))

    monkeypatch.setitem(conversion.CONVERTERS, "trace", convert)
    case, spec = tiny_case("tiny_conv")

    result = checks.roundtrip(case, spec, spec.quick, 0, tmp_path)

    assert result["outcome"] == "roundtrip-error"
    assert "save or load failed" in result["message"]


@torch.library.custom_op("conformance_selftest::halve", mutates_args=())
def _halve(x: torch.Tensor) -> torch.Tensor:
    return x / 2


@_halve.register_fake
def _(x):
    return torch.empty_like(x)


class CustomOpOutput(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.ops.conformance_selftest.halve(self.inner(x)) * 2


def test_roundtrip_catches_dependency_on_parent_process(monkeypatch, tmp_path):
    def convert(model, make_input):
        module = torch.jit.trace(CustomOpOutput(model), (make_input(),))
        return conversion.Conversion(module=module, log=ConversionLog(mode="trace"))

    monkeypatch.setitem(conversion.CONVERTERS, "trace", convert)
    case, spec = tiny_case("tiny_conv")

    result = checks.roundtrip(case, spec, spec.quick, 0, tmp_path)

    assert result["outcome"] == "roundtrip-error"
    assert "without pytorchvideo" in result["message"]
    assert "conformance_selftest" in result["message"]


def test_deploy_worker_cannot_import_pytorchvideo():
    import pytorchvideo  # noqa: F401  (importable here, so the worker's block is what stops it)

    worker = DeployWorker.instance()

    assert worker.hello["ready"] is True
    assert worker.hello["pytorchvideo_importable"] is False


class NumpyStride(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, kernel_size=3, padding=1)
        self.conv.stride = (np.int64(1), np.int64(2), np.int64(2))

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3, 4))


def test_hybrid_fixes_numpy_constants_without_changing_output():
    model = NumpyStride().eval()
    example = torch.randn(1, 3, 4, 8, 8)

    with pytest.raises(Exception):
        torch.jit.script(model)
    converted = conversion.convert("hybrid", model, lambda: example.clone())

    assert converted.log.constants_fixed == ["conv.stride"]
    torch.testing.assert_close(converted.module(example.clone()), model(example.clone()), rtol=0, atol=0)


class Tripler(nn.Module):
    def forward(self, x):
        return x * 3

    def __prepare_scriptable__(self):
        # TorchScript compiles what this returns: a module that computes something else.
        return Doubler()


class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch = Tripler()
        self.index = 0

    def forward(self, x):
        blocks = [self.branch]
        return blocks[self.index](x) + 1


def test_hybrid_rejects_scripted_submodule_that_differs():
    model = Wrapper().eval()
    example = torch.randn(2, 3)

    converted = conversion.convert("hybrid", model, lambda: example.clone())

    failures = {item["path"]: item["category"] for item in converted.log.script_failures}
    assert failures.get("branch") == "scripted-output-differs"
    assert "branch" not in converted.log.scripted
    torch.testing.assert_close(converted.module(example.clone()), model(example.clone()))


class AgreesAtWidthFour(nn.Module):
    def forward(self, x):
        return x * 2

    def __prepare_scriptable__(self):
        # TorchScript compiles a module that matches eager only on inputs 4 wide.
        return DoublesOnlyAtWidthFour()


class DoublesOnlyAtWidthFour(nn.Module):
    def forward(self, x):
        return x * 2 if x.shape[-1] == 4 else x * 3


class ShapeSensitive(nn.Module):
    def __init__(self):
        super().__init__()
        self.shaped = AgreesAtWidthFour()
        self.plain = nn.ReLU()

    def forward(self, x):
        return self.plain(self.shaped(x)) + 1


def test_hybrid_reuses_split_at_new_shape():
    key = (("reuse", "cpu", "fp32", 0), "width 4")
    model = ShapeSensitive().eval()
    narrow = torch.randn(2, 4)

    first = conversion.convert("hybrid", model, lambda: narrow.clone(), key)
    second = conversion.convert("hybrid", model, lambda: narrow.clone(), key)

    assert "shaped" in first.log.scripted
    assert any(step.startswith("reused the split found at width 4") for step in second.log.steps)
    assert second.log.scripted == first.log.scripted
    assert second.log.script_failures == first.log.script_failures
    torch.testing.assert_close(second.module(narrow.clone()), model(narrow.clone()))


def test_hybrid_reuse_falls_back_to_search():
    key = (("fallback", "cpu", "fp32", 0), "width 4")
    model = ShapeSensitive().eval()
    narrow, wide = torch.randn(2, 4), torch.randn(2, 8)

    conversion.convert("hybrid", model, lambda: narrow.clone(), key)
    again = conversion.convert("hybrid", model, lambda: wide.clone(), key)

    assert any("scripted at width 4, fails here (scripted-output-differs), so the search runs in full" in step
               for step in again.log.steps)
    failures = {item["path"]: item["category"] for item in again.log.script_failures}
    assert failures.get("shaped") == "scripted-output-differs"
    assert "shaped" not in again.log.scripted
    torch.testing.assert_close(again.module(wide.clone()), model(wide.clone()))


class MutatesList(nn.Module):
    def forward(self, xs: list[torch.Tensor]):
        xs[0] = xs[0] * 2
        return xs[0] + xs[1]


class ListUser(nn.Module):
    def __init__(self):
        super().__init__()
        self.mutator = MutatesList()

    def forward(self, xs):
        total = self.mutator(xs)
        return total + xs[0]  # reads the entry that the submodule replaced


def test_hybrid_keeps_eager_behaviour_of_mutating_submodule():
    model = ListUser().eval()
    make_input = lambda: [torch.ones(2), torch.ones(2)]  # noqa: E731

    converted = conversion.convert("hybrid", model, make_input)

    torch.testing.assert_close(converted.module(make_input()), model(make_input()))
    if "mutator" not in converted.log.scripted:
        failures = {item["path"]: item["category"] for item in converted.log.script_failures}
        assert failures.get("mutator") == "input-mutation-differs"


def test_tolerance_scales_with_output_magnitude():
    tolerance = tolerances.lookup("fp32", "cpu", "trace")
    small = torch.full((4,), 1e-3)
    large = torch.full((4,), 1e3)

    errors_small = checks.compare_outputs(small, small * (1 + 1e-6), tolerance)
    errors_large = checks.compare_outputs(large, large * (1 + 1e-6), tolerance)

    assert errors_small["ok"] and errors_large["ok"]
    assert errors_large["atol"] == pytest.approx(errors_small["atol"] * 1e6)


def test_compare_outputs_reports_worst_element():
    expected = torch.zeros(2, 5)
    actual = expected.clone()
    actual[1, 3] = 0.5

    errors = checks.compare_outputs(expected + 1, actual + 1, tolerances.lookup("fp32", "cpu", "trace"))

    assert errors["ok"] is False
    assert errors["worst_index"] == [0, 1, 3]
    assert errors["max_abs"] == pytest.approx(0.5)


def test_disabled_torchscript_is_conversion_error(monkeypatch):
    def disabled(*args, **kwargs):
        raise RuntimeError("TorchScript is disabled in this build")

    monkeypatch.setattr(torch.jit, "trace", disabled)
    case, spec = tiny_case("tiny_conv", "trace")
    export_case, _ = tiny_case("tiny_conv", "export")

    traced = checks.equivalence(case, spec, spec.quick, seed=0)
    exported = checks.equivalence(export_case, spec, spec.quick, seed=0)

    assert traced["outcome"] == "conversion-error"
    assert "TorchScript is disabled" in traced["message"]
    assert exported["outcome"] == "pass", exported["message"]


def test_conversion_warnings_are_recorded_not_shown(recwarn):
    case, spec = tiny_case("tiny_conv", "trace")

    result = checks.equivalence(case, spec, spec.quick, seed=0)

    assert any("torch.jit.trace" in text for text in result["details"]["conversion_log"]["warnings"])
    assert not [warning for warning in recwarn if "torch.jit.trace" in str(warning.message)]


def test_export_roundtrip_uses_pt2(tmp_path):
    case, spec = tiny_case("tiny_conv", "export")

    result = checks.roundtrip(case, spec, spec.quick, 0, tmp_path)

    assert result["outcome"] == "pass", result["message"]
    assert result["details"]["format"] == "torch.export"
    assert (tmp_path / f"{case.id}.pt2").exists()


def test_roundtrip_saves_twice_and_keeps_code(tmp_path):
    case, spec = tiny_case("tiny_conv", "trace")

    result = checks.roundtrip(case, spec, spec.quick, 0, tmp_path)

    assert result["outcome"] == "pass", result["message"]
    assert (tmp_path / f"{case.id}.again.pt").exists()


def test_roundtrip_catches_changed_code(monkeypatch, tmp_path):
    from fixtures import artifacts

    real = artifacts.code_by_module
    calls = []

    def drifting(artifact):
        calls.append(artifact)
        codes = real(artifact)
        if len(calls) == 2:  # the copy loaded after the second save reads differently
            codes = {path: code + "  # changed" for path, code in codes.items()}
        return codes

    monkeypatch.setattr(artifacts, "code_by_module", drifting)
    case, spec = tiny_case("tiny_conv", "trace")

    result = checks.roundtrip(case, spec, spec.quick, 0, tmp_path)

    assert result["outcome"] == "roundtrip-error"
    assert "code changed" in result["message"]
