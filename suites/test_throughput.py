"""Throughput: converted clips per second against eager, a ratio floor per mode, and an optional baseline.

These tests run only when the -m expression names ``benchmark``, e.g.
``pytest -m benchmark``; a plain run deselects them to stay fast.
"""

import pytest

from fixtures import throughput, throughput_options


@pytest.mark.benchmark(group="throughput")
@pytest.mark.check("throughput")
def test_throughput(case, matrix, record, benchmark, request):
    spec = matrix.specs[case.model]
    settings = throughput_options.settings(request.config)

    result = throughput.throughput(case, spec, matrix.geometry(case), matrix.seed, settings, benchmark=benchmark,
                                   conversion_batch=matrix.base_batch)

    record(result)
