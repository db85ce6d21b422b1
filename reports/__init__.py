"""Run reports of the video model conformance suite.

A run report is one JSON object per pytest run, described in SCHEMA.md next to
this file. The submodules load and validate reports (schema), write them
(writer), render them as Markdown (markdown), and compare or merge them
(compare, merge). ``python -m reports --help`` lists the command-line tools.
"""

SCHEMA_VERSION = 1

# Every outcome a result may record, with "pass" first.
OUTCOMES = (
    "pass",
    "eager-unsupported",
    "conversion-error",
    "run-error",
    "mismatch",
    "roundtrip-error",
    "slower",
    "shape-locked",
    "cannot-judge",
    "mutates-input",
    "device-baked",
    "check-error",
)

CHECKS = (
    "equivalence",
    "roundtrip",
    "generalization",
    "portability",
    "throughput",
    "video",
    "mutation",
    "device-constants",
    "branches",
)

# pytest's verdict for the test that produced a result.
VERDICTS = ("passed", "failed", "xfailed", "xpassed", "skipped")

__all__ = ["SCHEMA_VERSION", "OUTCOMES", "CHECKS", "VERDICTS"]
