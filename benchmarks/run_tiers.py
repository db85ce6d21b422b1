"""Time the suite's tiers and check that each model, conversion and reference is computed once.

Runs pytest in a subprocess for each configuration below, each with its own report folder, and
reads the run report: case and result counts, outcomes, and the ``cache_counts`` block, whose
values must all be 1. Prints a Markdown table and appends it, with the machine and the software
versions, to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run_tiers.py             # quick tier without xdist, then with -n 2
    .venv/bin/python benchmarks/run_tiers.py --nightly   # also the nightly CPU tier with -n 2 (hours)

Exits with 1 when a run leaves no complete report or a cache key was computed more than once in
one process, else 0. Test failures of the suite itself appear in the outcomes column only.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import json
import os
import pathlib
import resource
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS_PAGE = ROOT / "benchmarks" / "RESULTS.md"
CACHE_KINDS = ("model", "conversion", "reference")
PAGE_HEADER = """# Tier benchmarks

Each section below is one run of `benchmarks/run_tiers.py`, newest last. Wall time is measured
around the whole pytest process, startup and report writing included. `max builds`,
`max conversions` and `max references` are the largest values in the report's `cache_counts`:
how often one process computed one model, conversion or eager reference. Each must be 1.
"""


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One pytest invocation to time."""

    tier: str
    workers: int

    def arguments(self) -> list[str]:
        """Return the pytest arguments of this configuration."""
        # -n 0 and not -p no:xdist, because tox.ini's addopts pass --dist, an xdist option.
        return ["-m", "not selftest", "--tier", self.tier, "-n", str(self.workers), "-q"]


def run(configuration: Configuration, folder: pathlib.Path, timeout_s: float, extra: list[str]) -> dict:
    """Run pytest for a configuration and return the row of the table (report figures and wall time)."""
    # The caller's CONFORMANCE_* settings would change the matrix, so only the arguments count.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONFORMANCE_")}
    # --report-dir=PATH in one argument: pytest takes a separate existing path for a test path
    # when it looks for its rootdir, and would then miss tox.ini.
    command = [sys.executable, "-m", "pytest", *configuration.arguments(), *extra, f"--report-dir={folder}"]
    log_path = folder / "pytest.log"
    folder.mkdir(parents=True)
    print(f"run_tiers: {' '.join(command[2:])}", flush=True)

    start = time.perf_counter()
    with log_path.open("w") as log:
        try:
            completed = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                       timeout=timeout_s)
            exit_status = completed.returncode
        except subprocess.TimeoutExpired:
            exit_status = None
    wall_s = time.perf_counter() - start
    # The largest resident set of any process this script has waited for so far (pytest or one of
    # its xdist workers), in KiB on Linux. Runs go in order, so an earlier run's peak can show here.
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    row = {"tier": configuration.tier, "workers": configuration.workers, "wall_s": wall_s,
           "exit_status": exit_status, "log": log_path, "peak_gib": peak_gib}

    report_path = folder / "latest.json"
    if not report_path.exists():
        return row
    report = json.loads(report_path.read_text())
    row["report"] = report
    row["cases"] = len({result["case_id"] for result in report["results"]})
    row["results"] = len(report["results"])
    row["outcomes"] = collections.Counter(result["outcome"] for result in report["results"])
    counts = report.get("cache_counts") or {}
    row["max_counts"] = {kind: max(counts.get(kind, {}).values(), default=0) for kind in CACHE_KINDS}
    row["keys"] = {kind: len(counts.get(kind, {})) for kind in CACHE_KINDS}
    return row


def problems_of(row: dict) -> list[str]:
    """Return what makes a row fail the benchmark: no complete report, or a key computed twice."""
    label = f"{row['tier']} tier with {row['workers']} workers"
    if row["exit_status"] is None:
        return [f"{label}: pytest timed out; see {row['log']}"]
    if "report" not in row or not row["report"]["complete"]:
        return [f"{label}: no complete report (pytest exit status {row['exit_status']}); see {row['log']}"]
    return [f"{label}: a {kind} key was computed {count} times in one process"
            for kind, count in row["max_counts"].items() if count > 1]


def format_table(rows: list[dict]) -> str:
    """Return the rows as a Markdown table."""
    lines = [
        "| tier | workers | cases | results | outcomes | exit status | wall time | "
        "peak RSS so far | max builds | max conversions | max references |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        workers = f"{row['workers']} (xdist)" if row["workers"] else "1 (no xdist)"
        if "report" not in row:
            lines.append(f"| {row['tier']} | {workers} | - | - | no report | {row['exit_status']} | "
                         f"{row['wall_s']:.0f} s | {row['peak_gib']:.1f} GiB | - | - | - |")
            continue
        outcomes = ", ".join(f"{name} {count}" for name, count in row["outcomes"].most_common())
        maxima = " | ".join(f"{row['max_counts'][kind]} ({row['keys'][kind]} keys)" for kind in CACHE_KINDS)
        lines.append(f"| {row['tier']} | {workers} | {row['cases']} | {row['results']} | {outcomes} | "
                     f"{row['exit_status']} | {row['wall_s']:.0f} s | {row['peak_gib']:.1f} GiB | {maxima} |")
    return "\n".join(lines) + "\n"


def format_section(rows: list[dict], problems: list[str], extra: list[str]) -> str:
    """Return the dated RESULTS.md section: machine, versions, table and problems."""
    environment = next((row["report"]["environment"] for row in rows if "report" in row), {})
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        f"## {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"Extra pytest arguments: `{shlex.join(extra)}`." if extra else "Full tiers, no extra pytest arguments.",
        "",
        f"Machine: {environment.get('cpu', 'unknown CPU')}, {os.cpu_count()} cores. Software: torch "
        f"{environment.get('torch')}, torchvision {environment.get('torchvision')}, pytorchvideo "
        f"{environment.get('pytorchvideo')}, python {environment.get('python')}. Suite commit "
        f"{environment.get('suite_commit')}, with uncommitted changes if any.",
        "",
        format_table(rows),
    ]
    lines += [f"- problem: {problem}" for problem in problems]
    return "\n".join(lines).rstrip() + "\n"


def write_page(section: str, path: pathlib.Path) -> None:
    """Append a section to the results page, creating the page with its header first."""
    text = path.read_text() if path.exists() else PAGE_HEADER
    path.write_text(text.rstrip() + "\n\n" + section)


def parse_run(text: str, parser: argparse.ArgumentParser) -> Configuration:
    """Return the configuration of one TIER:WORKERS value of --runs, or exit with a usage error."""
    tier, _, workers = text.strip().partition(":")
    if tier not in ("quick", "nightly") or not workers.isdigit():
        parser.error(f"--runs: invalid value {text!r}; expected TIER:WORKERS with TIER quick or nightly, e.g. quick:2")
    return Configuration(tier, int(workers))


def main(argv=None) -> int:
    """Run the configurations, print the table and append it to the results page."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nightly", action="store_true", help="also run the nightly CPU tier with -n 2")
    parser.add_argument("--runs", default=None,
                        help="comma-separated TIER:WORKERS runs instead of the default ones, e.g. "
                             "'quick:2,nightly:2'")
    parser.add_argument("--timeout-s", type=float, default=4 * 3600,
                        help="seconds after which one pytest run is stopped (default: 14400)")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS_PAGE,
                        help=f"page to append the table to (default: {RESULTS_PAGE.relative_to(ROOT)})")
    parser.add_argument("--pytest-args", default="",
                        help="extra pytest arguments for every run, e.g. '--models r3d_18' for a smoke test; "
                             "the section names them")
    arguments = parser.parse_args(argv)
    extra = shlex.split(arguments.pytest_args)

    configurations = [Configuration("quick", 0), Configuration("quick", 2)]
    if arguments.nightly:
        configurations.append(Configuration("nightly", 2))
    if arguments.runs:
        configurations = [parse_run(text, parser) for text in arguments.runs.split(",")]
    # Reports and pytest logs stay under reports/runs/ (git-ignored) for a look at failures.
    work = ROOT / "reports" / "runs" / f"run_tiers-{datetime.datetime.now():%Y%m%dT%H%M%S}"
    rows = []
    for configuration in configurations:
        folder = work / f"{configuration.tier}-n{configuration.workers}"
        rows.append(run(configuration, folder, arguments.timeout_s, extra))
    problems = [problem for row in rows for problem in problems_of(row)]
    section = format_section(rows, problems, extra)
    print(section)
    for problem in problems:
        print(f"run_tiers: {problem}", file=sys.stderr)
    write_page(section, arguments.results)
    print(f"run_tiers: appended to {arguments.results}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
