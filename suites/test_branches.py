"""Frozen Python branches: inputs that would take another branch than the conversion input did."""

import pytest

from fixtures import hazards

MODES = ("trace", "hybrid")


def case_ids(matrix):
    """Return the base-point cases in trace and hybrid, side by side."""
    return [case_id for case_id, case in matrix.base_cases().items() if case.mode in MODES]


@pytest.mark.check("branches")
def test_frozen_branches(case, matrix, record):
    spec = matrix.specs[case.model]

    result = hazards.branches(case, spec, matrix.geometry(case), matrix.seed)

    record(result)
