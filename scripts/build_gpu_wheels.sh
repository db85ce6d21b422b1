#!/usr/bin/env bash
# Fill .whl/ with the wheels that scripts/gpu_check.sh installs on a CUDA machine.
#
# The target runs CPython 3.12 on x86_64 Linux with torch, torchvision, pytest,
# pytest-xdist and pytest-benchmark installed, and cannot reach a package index.
# pytorchvideo, fvcore and iopath are source-only on PyPI, so their pure-Python
# wheels are built here; the rest are downloaded as wheels for the target. Run
# from any folder: ./scripts/build_gpu_wheels.sh (PYTHON picks the interpreter).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=.whl
TARGET_PYTHON=3.12

rm -rf "$OUT"
mkdir -p "$OUT"

echo "building pytorchvideo, fvcore and iopath wheels from their source distributions"
"$PYTHON" -m pip wheel -q --no-deps -w "$OUT" \
    pytorchvideo==0.1.5 fvcore==0.1.5.post20221221 iopath==0.1.10

# Pure-Python dependencies of the three above (Requires-Dist in their METADATA)
# and of matplotlib, which the HTML report imports when it draws a figure.
# torch and torchvision already bring numpy, pillow, networkx, filelock and
# typing_extensions, and pytest brings packaging, so those are left out.
echo "downloading pure-Python dependencies"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$OUT" \
    yacs==0.1.8 tabulate==0.10.0 termcolor==3.3.0 portalocker==4.4.2 parameterized==0.9.0 tqdm==4.70.1 \
    cycler==0.12.1 pyparsing==3.3.3 python-dateutil==4.0.0 tzdata==2026.6

# Compiled wheels for the target interpreter and platform. The av 18.1.0 wheel
# that pip picks is tagged manylinux_2_28, so the target needs glibc 2.28 or newer.
echo "downloading compiled wheels for CPython $TARGET_PYTHON on x86_64 Linux"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$OUT" \
    --python-version "$TARGET_PYTHON" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    av==18.1.0 PyYAML==6.0.4 matplotlib==3.11.2 contourpy==1.3.3 kiwisolver==1.5.1 fonttools==4.68.0

ls -l "$OUT"
du -sh "$OUT"
