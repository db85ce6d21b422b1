"""Self-tests of the hazard checks: each fires on a tiny model built to have that fault."""

import pathlib

import pytest
import torch

from fixtures import cache, conversion, hazards
from fixtures.cases import Case
from fixtures.conversion import ConversionLog
from fixtures.zoo import load_model_file

pytestmark = pytest.mark.selftest

TINY = {spec.name: spec for spec in load_model_file(pathlib.Path(__file__).parent / "data" / "tiny_models.py")}


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Give each self-test an empty cache, so a patched converter is really called."""
    cache.clear()
    yield
    cache.clear()


def tiny_case(name, mode="trace"):
    spec = TINY[name]
    return Case(name, mode, "cpu", "fp32", 1, spec.quick.frames), spec


def test_eager_mutation_is_finding_not_failure():
    case, spec = tiny_case("tiny_mutates_pathways")

    result = hazards.mutation(case, spec, spec.quick, 0)

    assert result["outcome"] == "pass", result["message"]
    assert result["details"]["eager_mutates_input"] is True
    assert result["details"]["findings"][0]["kind"] == "input-mutation"


def test_mutation_does_not_fool_equivalence():
    from fixtures import checks

    case, spec = tiny_case("tiny_mutates_pathways")

    result = checks.equivalence(case, spec, spec.quick, 0)

    assert result["outcome"] == "pass", result["message"]


def test_converted_mutation_is_outcome(monkeypatch):
    class MutatingWrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pathways):
            output = self.inner(list(pathways))
            pathways[1] = pathways[1] + 1
            return output

    def convert(model, make_input):
        traced = torch.jit.trace(model, (make_input(),))
        return conversion.Conversion(module=MutatingWrapper(traced), log=ConversionLog(mode="trace"))

    monkeypatch.setitem(conversion.CONVERTERS, "trace", convert)
    case, spec = tiny_case("tiny_mutates_pathways")

    result = hazards.mutation(case, spec, spec.quick, 0)

    assert result["outcome"] == "mutates-input"


def test_batch_constant_in_trace_is_mismatch():
    case, spec = tiny_case("tiny_batch_scale")

    result = hazards.generalization(case, spec, spec.quick, 0)

    assert result["outcome"] == "mismatch"
    assert result["details"]["run_at"]["batch_size"] == 2


def test_batch_locked_view_is_shape_locked():
    case, spec = tiny_case("tiny_batch_view")

    result = hazards.generalization(case, spec, spec.quick, 0)

    assert result["outcome"] == "shape-locked"


def test_generalization_passes_on_shape_agnostic_model():
    case, spec = tiny_case("tiny_conv")

    result = hazards.generalization(case, spec, spec.quick, 0)

    assert result["outcome"] == "pass", result["message"]
    assert result["details"]["run_at"]["clip_length"] == 2 * spec.quick.frames


def test_traced_device_is_found_in_graph():
    case, spec = tiny_case("tiny_device_baked")

    result = hazards.device_constants(case, spec, spec.quick, 0)

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so the runtime check replaces the graph scan")
    assert result["outcome"] == "device-baked"
    assert "needs a GPU" in result["message"]


def test_no_device_constant_passes():
    case, spec = tiny_case("tiny_conv")

    result = hazards.device_constants(case, spec, spec.quick, 0)

    assert result["outcome"] == "pass", result["message"]
    assert result["details"]["device_constants"] == []


def test_frozen_value_branch_is_mismatch_in_trace():
    case, spec = tiny_case("tiny_sign_branch")

    result = hazards.branches(case, spec, spec.quick, 0)

    assert result["outcome"] == "mismatch"
    assert "branch" in result["message"]


def test_script_keeps_value_branch():
    case, spec = tiny_case("tiny_sign_branch", "script")

    result = hazards.branches(case, spec, spec.quick, 0)

    assert result["outcome"] == "pass", result["message"]
