#!/usr/bin/env bash
# Run the suite's CUDA cases on a CUDA machine and print the outcome table.
#
# Expects CPython 3.12 with torch, torchvision, pytest, pytest-xdist and
# pytest-benchmark installed, and no package index. Packages that the machine
# lacks are installed from the wheels in .whl/ (made by
# scripts/build_gpu_wheels.sh) into $SITE, which goes first on PYTHONPATH.
# Checks 3 models x 2 modes x 3 dtypes on CUDA, in a few minutes on one GPU.
#
# Usage: scripts/gpu_check.sh [extra pytest arguments]
#   PYTHON       interpreter (default: python3)
#   SITE         folder for the installed wheels (default: /tmp/site)
#   CONFORMANCE_REPORT_DIR  where the run report goes (default: reports/runs)
#   GPU_CHECK_TIMEOUT_S     seconds before pytest is interrupted (default: 480)
# Exits with pytest's status; 2 when no CUDA device or no wheels are found.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
WHEELS=.whl
REPORT_DIR=${CONFORMANCE_REPORT_DIR:-reports/runs}
TIMEOUT_S=${GPU_CHECK_TIMEOUT_S:-480}

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch.cuda.is_available() is False for $PYTHON; run this script on a machine with CUDA" >&2
    exit 2
fi

shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
    echo "gpu_check: no wheels in $WHEELS/; run scripts/build_gpu_wheels.sh where PyPI is reachable and copy $WHEELS/ here" >&2
    exit 2
fi

# Install only the distributions that the interpreter does not have, so the
# machine's own builds of numpy, pillow and the like stay in use.
mapfile -t missing < <("$PYTHON" - "${wheels[@]}" <<'EOF'
import importlib.metadata
import pathlib
import sys

for path in sys.argv[1:]:
    distribution = pathlib.Path(path).name.split("-")[0]
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        print(path)
EOF
)

mkdir -p "$SITE"
if [ ${#missing[@]} -gt 0 ]; then
    echo "gpu_check: installing ${#missing[@]} wheels into $SITE: ${missing[*]##*/}"
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
        "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" "${missing[@]}"
    else
        # A wheel is a zip archive laid out for site-packages, so unpacking it is an install without pip.
        for wheel in "${missing[@]}"; do
            "$PYTHON" -m zipfile -e "$wheel" "$SITE"
        done
    fi
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" - <<'EOF'
import importlib.metadata
import torch

packages = ("torch", "torchvision", "pytorchvideo", "av", "pytest", "pytest-xdist")
print("gpu_check:", ", ".join(f"{name} {importlib.metadata.version(name)}" for name in packages))
print("gpu_check: device", torch.cuda.get_device_name(0), "| cuda", torch.version.cuda)
EOF

start=$(date +%s)
status=0
# SIGINT lets pytest write its report, marked incomplete, before it stops.
timeout --signal=INT --kill-after=30 "$TIMEOUT_S" \
    "$PYTHON" -m pytest -m gpu --devices cuda --dtypes fp32,fp16,bf16 \
    --models r3d_18,x3d_xs,slowfast_r50 --modes trace,hybrid -n 0 \
    --report-dir="$REPORT_DIR" -q "$@" || status=$?
echo "gpu_check: pytest exited with status $status after $(( $(date +%s) - start )) s"

if [ -f "$REPORT_DIR/latest.json" ]; then
    "$PYTHON" -m reports render "$REPORT_DIR/latest.json"
else
    echo "gpu_check: no report at $REPORT_DIR/latest.json" >&2
fi
exit "$status"
