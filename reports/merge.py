"""Merge the reports of pytest shards (environment "shard" = "k/n") into one report."""

import copy
import re

from reports import SCHEMA_VERSION
from reports.schema import ReportError, result_key, validate_report

# Environment entries that must agree between shards, since shards of one run
# share their software. Hardware entries such as "cpu" may differ between CI machines.
SHARED_ENVIRONMENT_KEYS = ("torch", "torchvision", "pytorchvideo", "python")

# pytest's exit status when a shard collected no tests.
_NO_TESTS_COLLECTED = 5

_SHARD_PATTERN = re.compile(r"(\d+)/(\d+)")


def merge_reports(reports, sources=None):
    """Join shard reports into one report and return it.

    ``reports`` are validated report dicts and ``sources`` their file names for
    error messages. The merged report takes its environment from the first
    shard, with "shard" set to null as for an unsharded run and every shard's
    command line in "shard_command_lines". It concatenates
    results in shard order, sums repeated warnings and drops repeated findings.
    It is complete only if every shard was complete and no shard "k/n" is
    missing. Its run_id is the first shard's run_id followed by "-merged".

    Raises ReportError when no reports are given, two shards contain the same
    (case_id, check), or shards differ in a SHARED_ENVIRONMENT_KEYS entry.
    """
    if not reports:
        raise ReportError("no shard reports to merge. Pass at least one report file.")
    if sources is None:
        sources = [f"report {index + 1}" for index in range(len(reports))]

    for report, source in zip(reports, sources):
        validate_report(report, source)
    _check_environments(reports, sources)

    first = reports[0]
    environment = copy.deepcopy(first["environment"])
    environment["shard"] = None
    # Shards of one run differ at least in --shard, so each shard's command line is kept.
    environment["shard_command_lines"] = [report["environment"].get("command_line") for report in reports]

    merged = {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{first['run_id']}-merged",
        "complete": all(report["complete"] for report in reports) and not missing_shards(reports),
        # The plugin writes UTC times in ISO 8601 form, which sort correctly as strings.
        "started": min(report["started"] for report in reports),
        "finished": _merge_finished(reports),
        "exit_status": _merge_exit_status(reports),
        "environment": environment,
        "warnings": _merge_warnings(reports),
        "findings": _merge_findings(reports),
        "results": _merge_results(reports, sources),
    }
    if any("cache_counts" in report for report in reports):
        merged["cache_counts"] = merge_cache_counts(report.get("cache_counts", {}) for report in reports)
    validate_report(merged, "merged report")
    return merged


def merge_cache_counts(counts_by_shard):
    """Return the maximum count of each cache key over the shards' ``cache_counts`` blocks.

    Each block maps a kind (model, conversion, reference) to counts by key, as the
    plugin writes it. Shards run in separate processes, so the maximum keeps the
    meaning of a single report: the most times one process computed the key.
    """
    merged = {}
    for counts in counts_by_shard:
        for kind, by_key in counts.items():
            target = merged.setdefault(kind, {})
            for key, count in by_key.items():
                target[key] = max(target.get(key, 0), count)
    return {kind: dict(sorted(by_key.items())) for kind, by_key in merged.items()}


def missing_shards(reports):
    """Return the shard labels "k/n" that no report covers, in order.

    Returns an empty list when the reports do not all carry a "k/n" shard
    label with the same n, because then the full set of shards is unknown.
    """
    parsed = []
    for report in reports:
        match = _SHARD_PATTERN.fullmatch(str(report["environment"].get("shard")))
        if match is None:
            return []
        parsed.append((int(match.group(1)), int(match.group(2))))

    totals = {total for _, total in parsed}
    if len(totals) != 1:
        return []
    total = totals.pop()
    present = {index for index, _ in parsed}
    return [f"{index}/{total}" for index in range(1, total + 1) if index not in present]


def _check_environments(reports, sources):
    first = reports[0]["environment"]
    for report, source in zip(reports[1:], sources[1:]):
        for name in SHARED_ENVIRONMENT_KEYS:
            if report["environment"].get(name) != first.get(name):
                raise ReportError(
                    f"{source} has {name} {report['environment'].get(name)!r} but {sources[0]} "
                    f"has {first.get(name)!r}. Merge only shards of the same run."
                )


def _merge_results(reports, sources):
    results = []
    owners = {}
    for report, source in zip(reports, sources):
        for result in report["results"]:
            key = result_key(result)
            if key in owners:
                raise ReportError(
                    f"case {key[0]!r} with check {key[1]!r} appears in both {owners[key]} "
                    f"and {source}. Each case must run in one shard only."
                )
            owners[key] = source
            results.append(copy.deepcopy(result))
    return results


def _merge_finished(reports):
    finished = [report["finished"] for report in reports]
    if any(value is None for value in finished):
        return None
    return max(finished)


def _merge_exit_status(reports):
    statuses = [report["exit_status"] for report in reports]
    if any(status is None for status in statuses):
        return None
    # A shard that collected no tests does not make the whole run empty, so its
    # status counts only when every shard collected nothing.
    relevant = [status for status in statuses if status != _NO_TESTS_COLLECTED] or statuses
    failing = [status for status in relevant if status != 0]
    return failing[0] if failing else 0


def _merge_warnings(reports):
    totals = {}
    for report in reports:
        for entry in report["warnings"]:
            key = (entry["category"], entry["message"])
            if key in totals:
                totals[key]["count"] += entry["count"]
            else:
                totals[key] = dict(entry)
    return list(totals.values())


def _merge_findings(reports):
    # Each shard that builds a model reports that model's findings again.
    findings = []
    for report in reports:
        for finding in report["findings"]:
            if finding not in findings:
                findings.append(copy.deepcopy(finding))
    return findings
