"""Markdown section for the scriptability map (see fixtures/scriptability.py for how it is built)."""

EXAMPLES_PER_CATEGORY = 3


def render_scriptability(scriptability):
    """Render the scriptability map as a Markdown section: one row per model whose script mode failed."""
    from reports.markdown import render_table  # markdown imports this module, so import late

    rows = []
    for model in sorted(scriptability):
        entry = scriptability[model]
        if entry.get("script_outcome") in (None, "pass"):
            continue
        deepest = entry.get("deepest_failures", [])
        parts = []
        for category, count in sorted(entry.get("failures_by_category", {}).items()):
            examples = [item["path"] for item in deepest if item["category"] == category][:EXAMPLES_PER_CATEGORY]
            more = f" and {count - len(examples)} more" if count > len(examples) else ""
            parts.append(f"{category} ({count}): {', '.join(f'`{path}`' for path in examples)}{more}")
        share = entry.get("scripted_parameter_share")
        rows.append((
            model,
            "<br>".join(parts) or "-",
            f"{share:.0%}" if isinstance(share, (int, float)) else "-",
            str(entry.get("scripted_modules", 0)),
        ))
    if not rows:
        return ("## Scriptability\n\nNo map. The hybrid conversion's search builds it, so it needs `hybrid` in "
                "`--modes`; with hybrid in the run, this means that every model scripts whole.")
    intro = (
        "Deepest submodules that fail to compile with `torch.jit.script`, by cause, and the share of "
        "parameters that the hybrid conversion keeps inside scripted code. The JSON report lists every path."
    )
    header = ("model", "deepest failures to script", "parameters in scripted code", "scripted submodules")
    return "## Scriptability\n\n" + intro + "\n\n" + render_table(header, rows)
