"""Portability: a module converted on the CPU runs on CUDA, and one converted on CUDA runs on the CPU.

Only the matrix's CUDA cases take part, so the default CPU matrix collects
nothing here. Run the cases on a CUDA machine with
``pytest -m gpu --devices cuda suites/test_portability.py``. With
``--devices cuda`` on a machine without CUDA they are skipped with that hint.
"""

import pytest

from fixtures import portability

pytestmark = pytest.mark.gpu


def case_ids(matrix):
    """Return the ids of the base-point CUDA cases."""
    return [case_id for case_id, case in matrix.base_cases().items() if case.device == "cuda"]


@pytest.mark.check("portability")
def test_portability(case, matrix, record, tmp_path):
    spec = matrix.specs[case.model]

    result = portability.portability(case, spec, matrix.geometry(case), matrix.seed, tmp_path)

    record(result)
