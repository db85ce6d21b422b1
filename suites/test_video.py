"""Real video: eager and each converted slowfast_r50 agree on a decoded, preprocessed clip.

The clip is decoded with PyAV and preprocessed as PyTorchVideo's SlowFast
inference tutorial does (32 frames, short side 256, 256 center crop,
Kinetics mean and std, alpha 4). By default the suite encodes a short
synthetic clip on first use; ``--video PATH`` uses the user's file.
"""

import pathlib

import pytest
import torch

from fixtures import cache, checks, tolerances, video
from fixtures.cases import Case
from fixtures.conversion import ConversionError, first_line
from fixtures.zoo import Geometry

VIDEO_MODEL = "slowfast_r50"
VIDEO_GEOMETRY = Geometry(frames=32, crop=256, alpha=4)
TOP_K = 5


def video_case_ids(matrix):
    """Return the case ids of the real-video test: slowfast_r50 on the CPU, in the modes below.

    At 32 frames of 256x256 each mode's conversion takes tens of seconds on a
    2-core CPU, so the quick tier checks one mode (trace, or the first selected
    mode). The nightly tier, and any run given --video, check every selected mode.
    """
    if VIDEO_MODEL not in {spec.name for spec in matrix.selected}:
        return []
    modes = list(matrix.modes)
    if matrix.tier == "quick" and not matrix.user_video:
        modes = ["trace"] if "trace" in modes else modes[:1]
    return [Case(VIDEO_MODEL, mode, "cpu", "fp32", 1, VIDEO_GEOMETRY.frames).id for mode in modes]


@pytest.fixture(scope="session")
def video_clip(request):
    """Return the preprocessed ``[slow, fast]`` batch of the user's video or of the sample clip."""
    path = request.config.option.video
    if path is None:
        path = video.ensure_sample_video(pathlib.Path(request.config.rootpath) / ".cache" / "video")
    frames = video.decode_video(path)
    slow, fast = video.preprocess_slowfast(frames, num_frames=VIDEO_GEOMETRY.frames, alpha=VIDEO_GEOMETRY.alpha)
    return {"path": str(path), "inputs": [slow.unsqueeze(0), fast.unsqueeze(0)]}


@pytest.mark.video
@pytest.mark.check("video")
def test_video_top5(case, matrix, record, video_clip):
    spec = matrix.specs[case.model]
    result = checks.new_result(case, spec, "video")
    result["details"]["video"] = video_clip["path"]

    eager = cache.model(spec, VIDEO_GEOMETRY, matrix.seed)
    with torch.no_grad():
        expected = eager([tensor.clone() for tensor in video_clip["inputs"]])
    try:
        converted = cache.conversion_for(spec, VIDEO_GEOMETRY, case, matrix.seed)
        with torch.no_grad():
            actual = converted.module([tensor.clone() for tensor in video_clip["inputs"]])
    except ConversionError as error:
        result.update(outcome="conversion-error", error_class=error.error_class, message=first_line(error.cause or error))
        record(result)
        return

    expected_top = video.top_k_labels(expected, TOP_K)[0]
    actual_top = video.top_k_labels(actual, TOP_K)[0]
    errors = checks.compare_outputs(expected, actual, tolerances.lookup(case.dtype, case.device, case.mode))
    result["errors"] = {key: value for key, value in errors.items() if key not in ("ok", "reason")}
    result["details"]["top5_eager"] = expected_top
    result["details"]["top5_converted"] = actual_top
    if expected_top != actual_top:
        result.update(outcome="mismatch", message=f"top-{TOP_K} labels differ: eager {expected_top}, converted {actual_top}")
    elif not errors["ok"]:
        result.update(outcome="mismatch", message=errors["reason"])
    record(result)
