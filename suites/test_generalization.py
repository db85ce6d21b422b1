"""Shape specialization: a module converted at one batch size and clip length, run at another."""

import pytest

from fixtures import hazards

MODES = ("trace", "hybrid", "export")


def case_ids(matrix):
    """Return the base-point cases in the modes whose graphs can specialize on shapes."""
    return [case_id for case_id, case in matrix.base_cases().items() if case.mode in MODES]


@pytest.mark.check("generalization")
def test_generalization(case, matrix, record):
    spec = matrix.specs[case.model]

    result = hazards.generalization(case, spec, matrix.geometry(case), matrix.seed)

    record(result)
