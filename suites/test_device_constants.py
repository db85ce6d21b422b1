"""Device-baked constants: a trace that embedded the device it was traced on."""

import pytest

from fixtures import hazards

MODES = ("trace", "hybrid", "frozen")


def case_ids(matrix):
    """Return the base-point CPU cases in the modes that trace."""
    return [case_id for case_id, case in matrix.base_cases().items() if case.mode in MODES and case.device == "cpu"]


@pytest.mark.check("device-constants")
def test_device_constants(case, matrix, record):
    spec = matrix.specs[case.model]

    result = hazards.device_constants(case, spec, matrix.geometry(case), matrix.seed)

    record(result)
