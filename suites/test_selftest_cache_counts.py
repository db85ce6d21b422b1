"""Self-tests of the cache counts that the run report carries in ``cache_counts``."""

import pathlib
import types

import pytest

from fixtures import cache, cache_counts
from fixtures.zoo import load_model_file
from reports.merge import merge_cache_counts

pytestmark = pytest.mark.selftest

TINY = {spec.name: spec for spec in load_model_file(pathlib.Path(__file__).parent / "data" / "tiny_models.py")}
TINY_CONV_MODEL_KEY = "tiny_conv 4x16 0 cpu fp32"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Start each self-test with an empty cache store."""
    cache.clear()
    yield
    cache.clear()


def test_snapshot_counts_each_computation():
    spec = TINY["tiny_conv"]
    before = cache_counts.snapshot()["model"].get(TINY_CONV_MODEL_KEY, 0)

    cache.model(spec, spec.quick, 0)
    cache.model(spec, spec.quick, 0)

    assert cache_counts.snapshot()["model"][TINY_CONV_MODEL_KEY] == before + 1


def test_counts_survive_clear():
    spec = TINY["tiny_conv"]
    cache.model(spec, spec.quick, 0)
    before = cache_counts.snapshot()["model"][TINY_CONV_MODEL_KEY]

    cache.clear()
    cache.model(spec, spec.quick, 0)

    assert cache_counts.snapshot()["model"][TINY_CONV_MODEL_KEY] == before + 1


def test_snapshot_has_every_kind():
    snapshot = cache_counts.snapshot()

    assert set(cache_counts.KINDS) <= set(snapshot)


def test_summary_takes_maximum_over_workers(monkeypatch):
    workers = {
        "gw0": {"model": {"a 4x16 0 cpu fp32": 1}, "conversion": {}, "reference": {}},
        "gw1": {"model": {"a 4x16 0 cpu fp32": 3, "b 4x16 0 cpu fp32": 1}, "conversion": {}, "reference": {}},
    }
    monkeypatch.setattr(cache_counts, "_WORKER_COUNTS", workers)

    summary = cache_counts.summary()

    assert summary["model"]["a 4x16 0 cpu fp32"] == 3
    assert summary["model"]["b 4x16 0 cpu fp32"] == 1


def test_testnodedown_keeps_worker_counts(monkeypatch):
    monkeypatch.setattr(cache_counts, "_WORKER_COUNTS", {})
    sent = {"model": {"a 4x16 0 cpu fp32": 1}, "conversion": {}, "reference": {}}
    node = types.SimpleNamespace(gateway=types.SimpleNamespace(id="gw3"),
                                 workeroutput={cache_counts.WORKER_OUTPUT_KEY: sent})
    crashed = types.SimpleNamespace(gateway=types.SimpleNamespace(id="gw4"))

    cache_counts.pytest_testnodedown(node, None)
    cache_counts.pytest_testnodedown(crashed, "worker crashed")

    assert cache_counts._WORKER_COUNTS == {"gw3": sent}


def test_merge_cache_counts_takes_maximum_per_key():
    first = {"model": {"a": 1, "b": 2}, "conversion": {"c": 1}}
    second = {"model": {"a": 2}, "reference": {"d": 1}}

    merged = merge_cache_counts([first, second])

    assert merged == {"model": {"a": 2, "b": 2}, "conversion": {"c": 1}, "reference": {"d": 1}}
