"""Self-tests of the case matrix: one-factor axes, base points, and expectations shared across checks."""

import collections
import pathlib
import types

import pytest

from conftest import Matrix
from fixtures import cache, expectation_file
from fixtures.zoo import Geometry

pytestmark = pytest.mark.selftest

TINY_MODELS = pathlib.Path(__file__).resolve().parent / "data" / "tiny_models.py"


def _matrix(**options):
    values = dict(tier="quick", seed=0, model_file=[], models=None, modes=None, devices=None, dtypes=None,
                  batch_sizes=None, clip_lengths=None)
    values.update(options)
    return Matrix(types.SimpleNamespace(option=types.SimpleNamespace(**values)))


def _points(matrix, model, mode="trace"):
    return sorted((case.batch_size, case.clip_length) for case in matrix.cases.values()
                  if case.model == model and case.mode == mode)


def test_nightly_varies_one_axis_at_a_time():
    matrix = _matrix(tier="nightly", models="slowfast_r50")

    # Canonical: 32 fast frames; the family supports 16, 32 and 64.
    assert _points(matrix, "slowfast_r50") == [(1, 16), (1, 32), (1, 64), (2, 32), (4, 32), (8, 32)]
    base = [case for case in matrix.base_cases().values() if case.mode == "trace"]
    assert [(case.batch_size, case.clip_length) for case in base] == [(1, 32)]


def test_nightly_covers_every_axis_value_for_every_model():
    matrix = _matrix(tier="nightly")

    for spec in matrix.selected:
        points = _points(matrix, spec.name, "hybrid")
        assert {batch for batch, _ in points} == {1, 2, 4, 8}, spec.name
        assert {frames for _, frames in points} == set(spec.clip_lengths), spec.name


def test_quick_tier_has_batch_sizes_one_and_two():
    matrix = _matrix(models="x3d_xs")

    assert _points(matrix, "x3d_xs") == [(1, 4), (2, 4)]
    assert [case.batch_size for case in matrix.base_cases().values()] == [1] * 5


def test_selected_point_alone_is_the_base_point():
    matrix = _matrix(tier="nightly", models="r3d_18", modes="trace", batch_sizes="8", clip_lengths="32")

    assert list(matrix.base_cases()) == list(matrix.cases) == ["r3d_18-trace-cpu-fp32-b8-t32"]


def test_base_clip_length_falls_back_to_first_selected():
    matrix = _matrix(tier="nightly", models="r3d_18", modes="trace", clip_lengths="8,32")

    # The canonical 16 frames is not selected, so 8 is the base clip length.
    assert _points(matrix, "r3d_18") == [(1, 8), (1, 32), (2, 8), (4, 8), (8, 8)]


def _expectation(case, check, outcome):
    return expectation_file.Expectation(case=case, check=check, outcome=outcome, error_class="E", reason="r",
                                        seen_on=["2.14.1"])


def test_conversion_error_applies_to_every_check():
    expectations = [_expectation("m-script-cpu-fp32-b1-t4", "equivalence", "conversion-error")]

    assert expectation_file.find(expectations, "m-script-cpu-fp32-b1-t4", "throughput") is expectations[0]
    assert expectation_file.find(expectations, "m-script-cpu-fp32-b2-t4", "throughput") is None


def test_other_expected_outcomes_stay_with_their_check():
    expectations = [_expectation("m-trace-cpu-fp32-b1-t4", "roundtrip", "roundtrip-error")]

    assert expectation_file.find(expectations, "m-trace-cpu-fp32-b1-t4", "equivalence") is None
    assert expectation_file.find(expectations, "m-trace-cpu-fp32-b1-t4", "roundtrip") is expectations[0]


def test_retain_only_keeps_current_point():
    short, long = Geometry(frames=4, crop=96), Geometry(frames=8, crop=96)
    keys = {
        "model here": ("model", "m", short, 0, "cpu", "fp32"),
        "model, other clip length": ("model", "m", long, 0, "cpu", "fp32"),
        "conversion here": ("conversion", "m", "trace", short, "cpu", "fp32", 1, 0),
        "conversion, other batch size": ("conversion", "m", "trace", short, "cpu", "fp32", 2, 0),
        "reference here": ("reference", "m", short, "cpu", "fp32", 1, 0, 1),
        "reference, other batch size": ("reference", "m", short, "cpu", "fp32", 2, 0, 1),
        "other model": ("model", "other", short, 0, "cpu", "fp32"),
    }
    saved = dict(cache._STORE)
    cache._STORE.clear()
    try:
        for key in keys.values():
            cache._STORE[key] = ("ok", None)

        cache.retain_only("m", 4, 1)

        retained = {name for name, key in keys.items() if key in cache._STORE}
        # Conversions stay across batch sizes, because other batch sizes run the base one.
        assert retained == {"model here", "conversion here", "conversion, other batch size", "reference here"}
    finally:
        cache._STORE.clear()
        cache._STORE.update(saved)


def test_nightly_tier_has_own_expectations_file():
    quick = expectation_file.default_path("2.14.1")
    nightly = expectation_file.default_path("2.14.1", tier="nightly")

    assert quick.name == "torch-2.14.json"
    assert nightly.name == "torch-2.14-nightly.json"


def test_rerun_hint_reproduces_nightly_user_case(tmp_path):
    from fixtures.cases import Case
    from fixtures.checks import rerun_hint
    from fixtures.zoo import load_model_file

    spec = next(spec for spec in load_model_file(TINY_MODELS) if spec.name == "tiny_conv")
    case = Case("tiny_conv", "trace", "cpu", "fp32", 2, 4)

    hint = rerun_hint(case, "equivalence", spec, spec.geometry(4, "nightly"))

    assert hint.startswith("pytest suites/test_equivalence.py -k 'tiny_conv-trace-cpu-fp32-b2-t4'")
    assert f"--model-file={TINY_MODELS.resolve()}" in hint
    assert "--tier nightly" in hint
    assert "--batch-sizes 2 --clip-lengths 4" in hint


def test_other_batch_size_runs_base_conversion():
    from fixtures import checks
    from fixtures.cases import Case
    from fixtures.zoo import load_model_file

    spec = next(spec for spec in load_model_file(TINY_MODELS) if spec.name == "tiny_conv")
    geometry = spec.geometry(4, "quick")
    case = Case("tiny_conv", "trace", "cpu", "fp32", 2, 4)
    before = collections.Counter(cache.COUNTS)

    result = checks.equivalence(case, spec, geometry, seed=123, conversion_batch=1)

    computed = [key for key in cache.COUNTS if cache.COUNTS[key] > before[key] and key[0] == "conversion"]
    assert result["outcome"] == "pass"
    assert result["details"]["converted_at_batch_size"] == 1
    assert [key[6] for key in computed] == [1]


def _item(case_id=None):
    if case_id is None:
        return types.SimpleNamespace(name="not a case")
    return types.SimpleNamespace(name=case_id, callspec=types.SimpleNamespace(params={"case_id": case_id}))


def test_costliest_model_runs_first():
    from conftest import _group_by_model

    specs = {"cheap": types.SimpleNamespace(relative_cost=1.0), "costly": types.SimpleNamespace(relative_cost=5.0)}
    items = [_item("cheap-trace-cpu-fp32-b1-t4"), _item("costly-trace-cpu-fp32-b2-t4"), _item(),
             _item("costly-script-cpu-fp32-b1-t4"), _item("costly-trace-cpu-fp32-b1-t4")]

    _group_by_model(items, specs)

    assert [item.name for item in items] == [
        "not a case", "costly-script-cpu-fp32-b1-t4", "costly-trace-cpu-fp32-b1-t4", "costly-trace-cpu-fp32-b2-t4",
        "cheap-trace-cpu-fp32-b1-t4"]


@pytest.mark.parametrize("cost", [0, -1.0, float("inf"), float("nan"), "high", True])
def test_invalid_relative_cost_is_rejected(cost):
    from fixtures.zoo import ModelSpec, ZooError

    with pytest.raises(ZooError, match="invalid relative_cost"):
        ModelSpec(name="user_model", family="user", builder=lambda geometry: None, canonical=Geometry(4, 16),
                  quick=Geometry(4, 16), relative_cost=cost)
