"""Input mutation: does the converted module change the input its caller gave it?

Eager mutation (SlowFast replaces the entries of its input list) is a
finding on the model in the report, not a failure of any case.
"""

import pytest

from fixtures import hazards


def case_ids(matrix):
    """Return the cases at each model's base point; other batch sizes and clip lengths get equivalence only."""
    return list(matrix.base_cases())


@pytest.mark.check("mutation")
def test_input_mutation(case, matrix, record):
    spec = matrix.specs[case.model]

    result = hazards.mutation(case, spec, matrix.geometry(case), matrix.seed)

    record(result)
