"""Round trip: save, load, compare, and run the file where pytorchvideo cannot be imported."""

import pytest

from fixtures import checks


def case_ids(matrix):
    """Return the cases at each model's base point; other batch sizes and clip lengths get equivalence only."""
    return list(matrix.base_cases())


@pytest.mark.check("roundtrip")
def test_roundtrip(case, matrix, record, tmp_path):
    spec = matrix.specs[case.model]

    result = checks.roundtrip(case, spec, matrix.geometry(case), matrix.seed, tmp_path)

    record(result)
