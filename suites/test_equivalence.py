"""Equivalence: the converted module gives eager's answers on a fresh input."""

import pytest

from fixtures import checks


@pytest.mark.check("equivalence")
def test_equivalence(case, matrix, record):
    spec = matrix.specs[case.model]

    result = checks.equivalence(case, spec, matrix.geometry(case), matrix.seed, conversion_batch=matrix.base_batch)

    record(result)
