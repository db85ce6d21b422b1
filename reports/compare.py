"""Compare two run reports and list regressions, improvements and other changes."""

import dataclasses
import math

from reports.markdown import format_number, render_table
from reports.schema import result_key

# An equivalence error that grows by more than this factor is a regression even
# while it stays within tolerance, because it usually means a changed kernel or
# lowering rather than noise.
ERROR_GROWTH_FACTOR = 10.0

FAIL_ON_CHOICES = ("regression", "any", "never")

# Titles of the change kinds, in the order the comparison lists them.
CHANGE_TITLES = {
    "outcome-regression": "outcome turned into a failure",
    "case-removed": "case missing from the new report",
    "error-growth": f"max_abs error grew more than {ERROR_GROWTH_FACTOR:g}-fold",
    "tolerance-crossed": "max_abs error now exceeds atol",
    "throughput-drop": "throughput ratio dropped significantly",
    "outcome-improvement": "failure turned into a pass",
    "tolerance-recovered": "max_abs error back within atol",
    "throughput-gain": "throughput ratio rose significantly",
    "outcome-changed": "failure changed to another failure",
    "case-added": "case new in the new report",
}

REGRESSION_KINDS = frozenset(
    ("outcome-regression", "case-removed", "error-growth", "tolerance-crossed", "throughput-drop")
)
IMPROVEMENT_KINDS = frozenset(("outcome-improvement", "tolerance-recovered", "throughput-gain"))


@dataclasses.dataclass(frozen=True)
class Change:
    """One difference between the old and the new result of a (case_id, check) key.

    ``old`` and ``new`` hold the compared values: outcomes, max_abs errors, or
    (ratio, ci_low, ci_high) tuples for throughput. None marks a missing side.
    """

    kind: str
    case_id: str
    check: str
    old: object
    new: object
    detail: str = ""

    @property
    def is_regression(self):
        """Whether this change counts as a regression for --fail-on regression."""
        return self.kind in REGRESSION_KINDS


@dataclasses.dataclass
class Comparison:
    """Changes between two reports, with the run ids and environments compared."""

    old_run_id: str
    new_run_id: str
    old_environment: dict
    new_environment: dict
    old_complete: bool
    new_complete: bool
    changes: list
    unchanged_count: int

    @property
    def regressions(self):
        """Changes that count as regressions."""
        return [change for change in self.changes if change.is_regression]


def compare_reports(old, new):
    """Compare two validated reports and return a Comparison.

    Results are matched by (case_id, check). The comparison lists outcome
    flips, cases found on one side only, max_abs errors that grew more than
    ERROR_GROWTH_FACTOR-fold or crossed atol, and throughput ratios whose
    confidence intervals do not overlap.
    """
    old_results = {result_key(result): result for result in old["results"]}
    new_results = {result_key(result): result for result in new["results"]}

    changes = []
    unchanged_count = 0
    for key in sorted(old_results.keys() | new_results.keys()):
        old_result = old_results.get(key)
        new_result = new_results.get(key)
        if new_result is None:
            changes.append(Change("case-removed", *key, old_result["outcome"], None))
            continue
        if old_result is None:
            changes.append(Change("case-added", *key, None, new_result["outcome"]))
            continue

        found = _compare_outcomes(old_result, new_result)
        found += _compare_errors(old_result, new_result)
        found += _compare_throughput(old_result, new_result)
        changes.extend(found)
        if not found:
            unchanged_count += 1

    return Comparison(
        old_run_id=old["run_id"],
        new_run_id=new["run_id"],
        old_environment=old["environment"],
        new_environment=new["environment"],
        old_complete=old["complete"],
        new_complete=new["complete"],
        changes=changes,
        unchanged_count=unchanged_count,
    )


def exit_status(comparison, fail_on):
    """Return the process exit status for ``comparison`` under a --fail-on policy.

    ``fail_on`` is one of FAIL_ON_CHOICES: "regression" returns 1 when any
    change is a regression, "any" returns 1 when anything changed, and "never"
    always returns 0.
    """
    if fail_on == "regression":
        return 1 if comparison.regressions else 0
    if fail_on == "any":
        return 1 if comparison.changes else 0
    if fail_on == "never":
        return 0
    raise ValueError(f"fail_on is {fail_on!r}, expected one of {', '.join(FAIL_ON_CHOICES)}")


def render_comparison(comparison):
    """Render ``comparison`` as a Markdown document."""
    old_torch = comparison.old_environment.get("torch")
    new_torch = comparison.new_environment.get("torch")
    parts = [
        f"# Comparison of run {comparison.old_run_id} with run {comparison.new_run_id}",
        render_table(
            ("", "Old", "New"),
            [
                ("Run id", comparison.old_run_id, comparison.new_run_id),
                ("torch", old_torch, new_torch),
                ("Complete", _yes_no(comparison.old_complete), _yes_no(comparison.new_complete)),
            ],
        ),
    ]
    if not comparison.new_complete:
        parts.append(
            "Note: the new report is incomplete, so cases listed as missing may not have run yet."
        )
    if not comparison.old_complete:
        parts.append(
            "Note: the old report is incomplete, so cases listed as new may only have been "
            "missing from the old run."
        )

    regressions = comparison.regressions
    improvements = [change for change in comparison.changes if change.kind in IMPROVEMENT_KINDS]
    others = [
        change
        for change in comparison.changes
        if change.kind not in REGRESSION_KINDS and change.kind not in IMPROVEMENT_KINDS
    ]
    # One result can change in several ways at once, such as an outcome flip
    # together with a tolerance crossing, so changes and results are counted apart.
    parts.append(
        f"{len(regressions)} regressions in {_count_results(regressions)} results, "
        f"{len(improvements)} improvements in {_count_results(improvements)} results, "
        f"{len(others)} other changes in {_count_results(others)} results. "
        f"{comparison.unchanged_count} results are unchanged."
    )
    for title, changes in (
        ("Regressions", regressions),
        ("Improvements", improvements),
        ("Other changes", others),
    ):
        if changes:
            parts.append(f"## {title}\n\n" + _render_changes(changes))
    return "\n\n".join(parts) + "\n"


def _render_changes(changes):
    kind_order = list(CHANGE_TITLES)
    ordered = sorted(
        changes, key=lambda item: (item.case_id, item.check, kind_order.index(item.kind))
    )
    rows = [
        (
            change.case_id,
            change.check,
            CHANGE_TITLES[change.kind],
            _format_value(change.old),
            _format_value(change.new),
            change.detail,
        )
        for change in ordered
    ]
    return render_table(("Case", "Check", "Change", "Old", "New", "Detail"), rows)


def _count_results(changes):
    return len({(change.case_id, change.check) for change in changes})


def _compare_outcomes(old_result, new_result):
    old_outcome = old_result["outcome"]
    new_outcome = new_result["outcome"]
    if old_outcome == new_outcome:
        return []

    if old_outcome == "pass":
        kind = "outcome-regression"
    elif new_outcome == "pass":
        kind = "outcome-improvement"
    else:
        kind = "outcome-changed"
    detail = " ".join(new_result["message"].splitlines()) if new_outcome != "pass" else ""
    key = result_key(new_result)
    return [Change(kind, *key, old_outcome, new_outcome, detail)]


def _compare_errors(old_result, new_result):
    old_errors = old_result["errors"]
    new_errors = new_result["errors"]
    old_max = _error_value(old_errors.get("max_abs"))
    new_max = _error_value(new_errors.get("max_abs"))
    if old_max is None or new_max is None:
        return []

    key = result_key(new_result)
    changes = []
    # An exact old error of 0 gives no base for a factor, so a change from 0 is
    # left to the tolerance check below.
    if old_max > 0 and new_max > ERROR_GROWTH_FACTOR * old_max:
        factor = "infinite" if math.isinf(new_max) else f"{new_max / old_max:.3g}x"
        changes.append(Change("error-growth", *key, old_max, new_max, f"grew {factor}"))

    old_atol = _number(old_errors.get("atol"))
    new_atol = _number(new_errors.get("atol"))
    if old_atol is None or new_atol is None:
        return changes

    detail = f"atol {format_number(new_atol)}"
    if old_atol != new_atol:
        detail = f"atol {format_number(old_atol)} -> {format_number(new_atol)}"
    if old_max <= old_atol and new_max > new_atol:
        changes.append(Change("tolerance-crossed", *key, old_max, new_max, detail))
    elif old_max > old_atol and new_max <= new_atol:
        changes.append(Change("tolerance-recovered", *key, old_max, new_max, detail))
    return changes


def _compare_throughput(old_result, new_result):
    old_ratio = _throughput_ratio(old_result)
    new_ratio = _throughput_ratio(new_result)
    if old_ratio is None or new_ratio is None:
        return []

    # NOTE: a higher ratio is taken to mean a faster converted model than eager.
    # If the throughput check defines the ratio the other way, swap the two kinds.
    key = result_key(new_result)
    detail = "confidence intervals do not overlap"
    if new_ratio[2] < old_ratio[1]:
        return [Change("throughput-drop", *key, old_ratio, new_ratio, detail)]
    if new_ratio[1] > old_ratio[2]:
        return [Change("throughput-gain", *key, old_ratio, new_ratio, detail)]
    return []


def _throughput_ratio(result):
    """Return (ratio, ci_low, ci_high) from the result's details, or None if absent."""
    throughput = result["details"].get("throughput")
    if not isinstance(throughput, dict):
        return None
    interval = throughput.get("ratio_ci")
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return None
    values = (_number(throughput.get("ratio")), _number(interval[0]), _number(interval[1]))
    # A NaN ratio or bound cannot be compared, so the result is skipped.
    if any(value is None or math.isnan(value) for value in values):
        return None
    return values


def _error_value(value):
    """Return an error measurement as a float, None if it is not a number, inf for NaN."""
    number = _number(value)
    # A NaN error means the output contained NaN, which is as bad as it gets, and
    # inf keeps the comparisons meaningful where NaN would make them all false.
    if number is not None and math.isnan(number):
        return math.inf
    return number


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _format_value(value):
    if isinstance(value, tuple):
        ratio, low, high = value
        return f"{format_number(ratio)} [{format_number(low)}, {format_number(high)}]"
    return format_number(value)


def _yes_no(flag):
    return "yes" if flag else "no"
