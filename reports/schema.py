"""Load and validate run reports (schema version 1, described in SCHEMA.md)."""

import json
import pathlib

from reports import CHECKS, OUTCOMES, SCHEMA_VERSION, VERDICTS

REPORT_KEYS = (
    "schema_version",
    "run_id",
    "complete",
    "started",
    "finished",
    "exit_status",
    "environment",
    "warnings",
    "findings",
    "results",
)

RESULT_KEYS = (
    "case_id",
    "model",
    "family",
    "mode",
    "device",
    "dtype",
    "batch_size",
    "clip_length",
    "check",
    "outcome",
    "verdict",
    "expected",
    "error_class",
    "message",
    "errors",
    "timings",
    "details",
)

# A validation error message lists at most this many problems, so that it stays
# readable on one line when a whole report is malformed.
_MAX_LISTED_PROBLEMS = 5


class ReportError(ValueError):
    """Error raised for a report file or report dict that cannot be used."""


def load_report(path):
    """Read and validate the report at ``path`` and return it as a dict.

    Raises ReportError, naming the file, when the file is missing or unreadable,
    is not valid JSON, has a schema_version other than SCHEMA_VERSION, or fails
    validate_report.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"report file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"cannot read report file {path}: {error}") from None

    try:
        report = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(
            f"report file {path} is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}"
        ) from None

    if not isinstance(report, dict):
        raise ReportError(
            f"report file {path} contains a JSON {type(report).__name__}, "
            "but a run report must be a JSON object"
        )

    # The version is checked before the keys, because a report of another version
    # may lay out its keys differently and the version is the useful message then.
    check_schema_version(report, source=str(path))
    validate_report(report, source=str(path))
    return report


def check_schema_version(report, source="report"):
    """Raise ReportError unless ``report["schema_version"]`` equals SCHEMA_VERSION."""
    if "schema_version" not in report:
        raise ReportError(
            f"{source} has no schema_version key, but this tool reads only schema "
            f"version {SCHEMA_VERSION}"
        )

    found = report["schema_version"]
    # type() rather than isinstance(), because JSON true and 1.0 compare equal to 1.
    if type(found) is not int or found != SCHEMA_VERSION:
        raise ReportError(
            f"{source} has schema_version {found!r}, but this tool supports only "
            f"schema version {SCHEMA_VERSION}. Use a version of the reports package "
            "that matches the report."
        )


def validate_report(report, source="report"):
    """Check that ``report`` follows schema version 1 and raise ReportError if not.

    Checks the schema version, that every key of SCHEMA.md is present with the
    right type, that outcome, check and verdict use known values, and that no
    two results share the key (case_id, check). The message starts with
    ``source`` and lists the first few problems.
    """
    if not isinstance(report, dict):
        raise ReportError(f"{source} must be a dict, not {type(report).__name__}")

    check_schema_version(report, source)

    problems = []
    _check_keys(report, REPORT_KEYS, "", problems)
    _check_type(report, "run_id", str, "", problems, allow_none=False)
    _check_type(report, "complete", bool, "", problems, allow_none=False)
    _check_type(report, "started", str, "", problems, allow_none=False)
    _check_type(report, "finished", str, "", problems, allow_none=True)
    _check_type(report, "exit_status", int, "", problems, allow_none=True)
    _check_type(report, "environment", dict, "", problems, allow_none=False)
    _check_entries(report, "warnings", ("category", "message", "count"), problems)
    _check_entries(report, "findings", ("model", "kind", "detail"), problems)

    results = report.get("results")
    if isinstance(results, list):
        _check_results(results, problems)
    elif "results" in report:
        problems.append("results must be a list")

    if problems:
        listed = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
        more = len(problems) - _MAX_LISTED_PROBLEMS
        if more > 0:
            listed += f"; and {more} more problems"
        raise ReportError(f"{source} is not a valid run report: {listed}")


def result_key(result):
    """Return the (case_id, check) pair that identifies ``result`` in a report."""
    return (result["case_id"], result["check"])


def _check_results(results, problems):
    seen = {}
    for index, result in enumerate(results):
        where = f"results[{index}]"
        if not isinstance(result, dict):
            problems.append(f"{where} must be an object")
            continue

        _check_keys(result, RESULT_KEYS, where + ".", problems)
        for name in ("case_id", "model", "family", "mode", "device", "dtype", "message"):
            _check_type(result, name, str, where + ".", problems, allow_none=False)
        for name in ("batch_size", "clip_length"):
            _check_type(result, name, int, where + ".", problems, allow_none=True)
        _check_type(result, "error_class", str, where + ".", problems, allow_none=True)
        _check_type(result, "expected", dict, where + ".", problems, allow_none=True)
        for name in ("errors", "timings", "details"):
            _check_type(result, name, dict, where + ".", problems, allow_none=False)
        _check_choice(result, "check", CHECKS, where, problems)
        _check_choice(result, "outcome", OUTCOMES, where, problems)
        _check_choice(result, "verdict", VERDICTS, where, problems)

        case_id = result.get("case_id")
        check = result.get("check")
        if not isinstance(case_id, str) or not isinstance(check, str):
            continue
        first_index = seen.setdefault((case_id, check), index)
        if first_index != index:
            problems.append(
                f"{where} repeats case {case_id!r} with check {check!r} "
                f"(first seen in results[{first_index}])"
            )


def _check_keys(entry, keys, where, problems):
    for name in keys:
        if name not in entry:
            problems.append(f"missing key {where}{name}")


def _check_type(entry, name, expected_type, where, problems, allow_none):
    if name not in entry:
        return
    value = entry[name]
    if value is None and allow_none:
        return
    # bool is a subclass of int, but True is never a valid count or status.
    wrong_bool = isinstance(value, bool) and expected_type is not bool
    if wrong_bool or not isinstance(value, expected_type):
        wanted = expected_type.__name__ + (" or null" if allow_none else "")
        problems.append(f"{where}{name} must be {wanted}, not {value!r}")


def _check_choice(result, name, choices, where, problems):
    value = result.get(name)
    if name in result and value not in choices:
        problems.append(f"{where}.{name} is {value!r}, expected one of {', '.join(choices)}")


def _check_entries(report, name, keys, problems):
    entries = report.get(name)
    if name not in report:
        return
    if not isinstance(entries, list):
        problems.append(f"{name} must be a list")
        return
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"{name}[{index}] must be an object")
            continue
        _check_keys(entry, keys, f"{name}[{index}].", problems)
