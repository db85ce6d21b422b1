"""Write run reports to a runs folder, one JSON, one Markdown and one HTML file per run.

Only one process should call write_run for a given run: under pytest-xdist the
plugin writes from the controller process alone. The latest.* copies are still
written under a file lock, because two separate pytest runs may share a runs
folder.
"""

import json
import os
import pathlib
import re
import secrets

import filelock

from reports.html import render_html
from reports.markdown import render_markdown
from reports.schema import ReportError, validate_report

# Seconds to wait for another run to finish updating latest.*. Writing the three
# small files takes far less, so hitting this means a stale or stuck writer.
LATEST_LOCK_TIMEOUT_S = 60

_LOCK_NAME = ".latest.lock"
_RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def write_run(report, runs_dir):
    """Write ``report`` as <run_id>.json, <run_id>.md and <run_id>.html and refresh latest.*.

    Validates the report first, creates ``runs_dir`` if needed, and writes each
    file atomically, so a reader sees either the previous or the new content.
    Calling it again for the same run replaces the files, which is how the
    plugin turns its incomplete start-of-session report into the final one.
    Returns a dict of paths with the keys json, markdown, html, latest_json,
    latest_markdown and latest_html.

    Raises ReportError for an invalid report or a run_id that is not a plain
    file name, and filelock.Timeout when latest.* stays locked for
    LATEST_LOCK_TIMEOUT_S seconds.
    """
    validate_report(report)
    run_id = report["run_id"]
    if not _RUN_ID_PATTERN.fullmatch(run_id) or run_id == "latest":
        raise ReportError(
            f"run_id {run_id!r} cannot be used as a file name. Use letters, digits, "
            "'.', '_' and '-' only, not starting with '.', and not 'latest'."
        )

    runs_dir = pathlib.Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)

    json_text = format_json(report)
    markdown_text = render_markdown(report)
    html_text = render_html(report)
    paths = {
        "json": runs_dir / f"{run_id}.json",
        "markdown": runs_dir / f"{run_id}.md",
        "html": runs_dir / f"{run_id}.html",
        "latest_json": runs_dir / "latest.json",
        "latest_markdown": runs_dir / "latest.md",
        "latest_html": runs_dir / "latest.html",
    }

    write_text_atomic(paths["json"], json_text)
    write_text_atomic(paths["markdown"], markdown_text)
    write_text_atomic(paths["html"], html_text)

    # The copies are written from the same text rather than copied from disk, so
    # they cannot pick up a half-finished write of the run files by another run.
    with filelock.FileLock(str(runs_dir / _LOCK_NAME), timeout=LATEST_LOCK_TIMEOUT_S):
        write_text_atomic(paths["latest_json"], json_text)
        write_text_atomic(paths["latest_markdown"], markdown_text)
        write_text_atomic(paths["latest_html"], html_text)

    return paths


def format_json(report):
    """Serialize ``report`` as indented JSON text ending in a newline."""
    # NaN and infinity stay allowed: an equivalence check may measure a NaN error,
    # and Python's json module reads these values back.
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def write_text_atomic(path, text):
    """Replace the file at ``path`` with ``text`` (UTF-8) in one atomic step.

    Writes a temporary file in the same folder, flushes and fsyncs it, then
    renames it over ``path`` with os.replace. The temporary file is removed if
    any step fails.
    """
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")

    # os.open with mode 0o666 lets the umask decide the permissions, as for a
    # normally created file. tempfile would make it readable by the owner only.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

    _fsync_folder(path.parent)


def _fsync_folder(folder):
    # Syncing the folder makes the rename itself survive a crash. Windows cannot
    # open a folder this way, and losing the rename only loses the newest report.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
