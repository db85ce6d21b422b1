"""Command-line tools for run reports: compare, merge, render and html.

Exit status 0 means success, 1 means that compare found a change of the kind
that --fail-on selects, and 2 means invalid input such as a missing file, invalid JSON or an
unsupported schema_version. Errors are printed as one line on stderr.
"""

import argparse
import pathlib
import sys

from reports.compare import FAIL_ON_CHOICES, compare_reports, exit_status, render_comparison
from reports.markdown import render_markdown
from reports.merge import merge_reports, missing_shards
from reports.schema import ReportError, load_report
from reports.writer import format_json, write_text_atomic

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_INVALID_INPUT = 2


class CommandError(Exception):
    """Error that ends a command with EXIT_INVALID_INPUT and a one-line message."""


def main(argv=None):
    """Run the command given in ``argv`` (default: sys.argv[1:]) and return its exit status."""
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.run(arguments)
    except (ReportError, CommandError) as error:
        print(f"{parser.prog}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_INVALID_INPUT


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description="Compare, merge and render run reports of the conformance suite.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compare = commands.add_parser(
        "compare",
        help="list differences between two reports",
        description="List outcome flips, missing and new cases, grown equivalence errors "
        "and significant throughput changes between two reports.",
    )
    compare.add_argument("old", type=pathlib.Path, help="report of the earlier run (JSON)")
    compare.add_argument("new", type=pathlib.Path, help="report of the later run (JSON)")
    compare.add_argument(
        "--format",
        choices=("markdown", "html"),
        default="markdown",
        help="output format (default: markdown); html is a self-contained page with plots",
    )
    compare.add_argument(
        "--output",
        type=pathlib.Path,
        help="file to write the comparison to (default: standard output)",
    )
    compare.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        default="regression",
        help="exit with status 1 on any regression (default), on any change at all, "
        "or never",
    )
    compare.set_defaults(run=_run_compare)

    merge = commands.add_parser(
        "merge",
        help="join shard reports into one report",
        description="Join the reports of pytest shards into one report.",
    )
    merge.add_argument("output", type=pathlib.Path, help="file to write the merged report to")
    merge.add_argument("shards", type=pathlib.Path, nargs="+", help="shard report files")
    merge.set_defaults(run=_run_merge)

    render = commands.add_parser(
        "render",
        help="print a report as Markdown",
        description="Print a report as Markdown on standard output.",
    )
    render.add_argument("report", type=pathlib.Path, help="report file (JSON)")
    render.set_defaults(run=_run_render)

    page = commands.add_parser(
        "html",
        help="write a report as a self-contained HTML page",
        description="Write a report as one HTML page with coloured outcome matrices and embedded plots.",
    )
    page.add_argument("report", type=pathlib.Path, help="report file (JSON)")
    page.add_argument("--output", type=pathlib.Path, help="file to write the page to (default: standard output)")
    page.set_defaults(run=_run_html)
    return parser


def _run_compare(arguments):
    old = load_report(arguments.old)
    new = load_report(arguments.new)
    comparison = compare_reports(old, new)
    if arguments.format == "html":
        from reports.html import render_comparison_html

        _emit(render_comparison_html(comparison, old, new), arguments.output)
    else:
        _emit(render_comparison(comparison), arguments.output)
    return exit_status(comparison, arguments.fail_on)


def _run_merge(arguments):
    inputs = {path.resolve() for path in arguments.shards}
    if arguments.output.resolve() in inputs:
        raise CommandError(f"merge: the output {str(arguments.output)!r} is also an input, and writing it would "
                           "lose that shard's results; give a new file name as the first argument")
    if arguments.output.is_file() and _is_shard_report(arguments.output):
        raise CommandError(f"merge: the output {str(arguments.output)!r} is a shard report, and writing it would "
                           "lose its results; the output comes first: merge OUTPUT SHARD [SHARD ...]")
    reports = [load_report(path) for path in arguments.shards]
    merged = merge_reports(reports, [str(path) for path in arguments.shards])

    missing = missing_shards(reports)
    if missing:
        print(
            f"python -m reports: warning: shards {', '.join(missing)} are missing, "
            "so the merged report is marked incomplete",
            file=sys.stderr,
        )
    _write_output(arguments.output, format_json(merged))
    return EXIT_OK


def _is_shard_report(path):
    try:
        return bool(load_report(path)["environment"].get("shard"))
    except ReportError:
        return False


def _run_render(arguments):
    report = load_report(arguments.report)
    sys.stdout.write(render_markdown(report))
    return EXIT_OK


def _run_html(arguments):
    from reports.html import render_html

    _emit(render_html(load_report(arguments.report)), arguments.output)
    return EXIT_OK


def _emit(text, output):
    if output is None:
        sys.stdout.write(text)
    else:
        _write_output(output, text)


def _write_output(path, text):
    try:
        write_text_atomic(path, text)
    except OSError as error:
        # The error's own file name is the temporary file, so name the target instead.
        raise CommandError(f"cannot write {path}: {error.strerror}") from None


def _one_line(error):
    return " ".join(str(error).splitlines())


if __name__ == "__main__":
    sys.exit(main())
