"""Tests for fixtures.video: the sample clip, decoding, SlowFast preprocessing and labels."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import av
import pytest
import pytorchvideo
import torch

from fixtures import video

pytestmark = pytest.mark.selftest

# Float32 bilinear resizing rounds differently in other torch releases: torch 2.9.1 differs from
# the reference by up to 6.5e-5 after normalization, where one 8-bit level is about 0.017.
PREPROCESS_ATOL = 1e-4

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Mean 0 and std 1 leave pixel values at value / 255, so tests can read frames back.
IDENTITY_NORMALIZATION = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _load_pytorchvideo_functional():
    """Load pytorchvideo/transforms/functional.py on its own as the reference implementation.

    Importing it as pytorchvideo.transforms.functional runs the package __init__,
    which fails with torchvision 0.29, but the file itself needs only torch and numpy.
    """
    source = pathlib.Path(pytorchvideo.__file__).parent / "transforms" / "functional.py"
    spec = importlib.util.spec_from_file_location("pytorchvideo_reference_functional", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tutorial_reference(frames, num_frames=32, side_size=256, crop_size=256, alpha=4):
    """Run the SlowFast tutorial transforms, with its mean and std, on PyTorchVideo's own code."""
    reference = _load_pytorchvideo_functional()
    with warnings.catch_warnings():
        # The tutorial's video transforms live in a module that torchvision marks deprecated.
        warnings.simplefilter("ignore", UserWarning)
        from torchvision.transforms._transforms_video import CenterCropVideo, NormalizeVideo

    clip = reference.uniform_temporal_subsample(frames, num_frames, temporal_dim=1)
    clip = clip / 255.0
    clip = NormalizeVideo((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))(clip)
    clip = reference.short_side_scale(clip, side_size)
    fast = CenterCropVideo(crop_size)(clip)
    slow_indices = torch.linspace(0, fast.shape[1] - 1, fast.shape[1] // alpha).long()
    slow = torch.index_select(fast, 1, slow_indices)
    return [slow, fast]


def _formula_reference(frames, num_frames, side_size, crop_size, mean, std, alpha):
    """Compute the preprocessing from the written formulas with plain torch calls."""
    _, frame_count, height, width = frames.shape
    indices = torch.linspace(0, frame_count - 1, num_frames).clamp(0, frame_count - 1).long()
    clip = frames[:, indices].float() / 255.0
    clip = (clip - torch.tensor(mean).view(-1, 1, 1, 1)) / torch.tensor(std).view(-1, 1, 1, 1)

    if width < height:
        size = (int(height / width * side_size), side_size)
    else:
        size = (side_size, int(width / height * side_size))
    clip = torch.nn.functional.interpolate(clip, size=size, mode="bilinear", align_corners=False)

    top = int(round((size[0] - crop_size) / 2.0))
    left = int(round((size[1] - crop_size) / 2.0))
    fast = clip[:, :, top : top + crop_size, left : left + crop_size]
    slow = fast[:, torch.linspace(0, num_frames - 1, num_frames // alpha).long()]
    return [slow, fast]


def _random_clip(channels, frames, height, width, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (channels, frames, height, width), generator=generator, dtype=torch.uint8)


def _constant_clip(rgb, frames=40, height=240, width=320):
    return torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, frames, height, width).contiguous()


def _frame_index_clip(frames, height=24, width=32):
    """Build a clip whose frame t has every pixel equal to t, so values identify frames."""
    values = torch.arange(frames, dtype=torch.uint8).view(1, frames, 1, 1)
    return values.expand(3, frames, height, width).contiguous()


@pytest.fixture(scope="module")
def sample_video(tmp_path_factory) -> pathlib.Path:
    return video.ensure_sample_video(tmp_path_factory.mktemp("video_cache"))


@pytest.fixture(scope="module")
def sample_frames(sample_video) -> torch.Tensor:
    return video.decode_video(sample_video)


# Sample clip


def test_sample_video_decodes_to_expected_shape(sample_video, sample_frames):
    assert sample_video.name == video.SAMPLE_FILE_NAME
    assert sample_frames.dtype == torch.uint8
    assert sample_frames.shape == (3, video.SAMPLE_FRAME_COUNT, video.SAMPLE_HEIGHT, video.SAMPLE_WIDTH)
    assert video.SAMPLE_FRAME_COUNT == 90


def test_sample_video_stream_metadata(sample_video):
    with av.open(str(sample_video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4")
        assert stream.average_rate == video.SAMPLE_FPS
        assert stream.width == video.SAMPLE_WIDTH
        assert stream.height == video.SAMPLE_HEIGHT


def test_sample_video_has_motion_and_structure(sample_frames):
    clip = sample_frames.float()
    frame_step_change = (clip[:, 1:] - clip[:, :-1]).abs().mean(dim=(0, 2, 3))
    spatial_std = clip.std(dim=(0, 2, 3))

    # Every frame differs from the one before, so the clip is not a still image.
    assert frame_step_change.min() > 0.5
    # Halfway through, the shapes and the background wave have moved far from the start.
    assert (clip[:, 45] - clip[:, 0]).abs().mean() > 10.0
    assert spatial_std.min() > 20.0


def test_sample_video_matches_rendered_frames(sample_frames):
    rendered = torch.stack([torch.from_numpy(video._render_sample_frame(i)) for i in (0, 45, 89)])
    decoded = sample_frames[:, [0, 45, 89]].permute(1, 2, 3, 0).float()
    # Lossy yuv420p coding moves shape edges by a few levels, but not the mean.
    assert (decoded - rendered.float()).abs().mean() < 4.0


def test_sample_video_cache_reuse_skips_encoding(tmp_path, monkeypatch):
    first = video.ensure_sample_video(tmp_path)
    first_stat = first.stat()

    def fail_encode(path):
        raise AssertionError(f"sample clip encoded again into {path}")

    monkeypatch.setattr(video, "_encode_sample", fail_encode)
    second = video.ensure_sample_video(tmp_path)
    second_stat = second.stat()

    assert second == first
    assert second_stat.st_ino == first_stat.st_ino
    assert second_stat.st_mtime_ns == first_stat.st_mtime_ns


def test_sample_video_mpeg4_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "SAMPLE_ENCODERS", ("no_such_encoder", "mpeg4"))
    path = video.ensure_sample_video(tmp_path)

    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    frames = video.decode_video(path)
    assert frames.shape == (3, video.SAMPLE_FRAME_COUNT, video.SAMPLE_HEIGHT, video.SAMPLE_WIDTH)


def test_sample_video_without_encoder_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "SAMPLE_ENCODERS", ("no_such_encoder",))
    with pytest.raises(RuntimeError, match="no_such_encoder"):
        video.ensure_sample_video(tmp_path)
    assert not (tmp_path / video.SAMPLE_FILE_NAME).exists()


def test_sample_video_creates_missing_cache_dir(tmp_path):
    cache_dir = tmp_path / "nested" / "cache"
    path = video.ensure_sample_video(cache_dir)
    assert path.parent == cache_dir
    assert path.is_file()


def test_sample_video_leaves_no_temp_files(tmp_path):
    video.ensure_sample_video(tmp_path)
    names = sorted(os.listdir(tmp_path))
    assert names == [video.SAMPLE_FILE_NAME, f"{video.SAMPLE_FILE_NAME}.lock"]


def test_sample_video_failed_encode_leaves_nothing(tmp_path, monkeypatch):
    def fail_after_partial_write(path):
        path.write_bytes(b"partial")
        raise RuntimeError("encoder failed")

    monkeypatch.setattr(video, "_encode_sample", fail_after_partial_write)
    with pytest.raises(RuntimeError, match="encoder failed"):
        video.ensure_sample_video(tmp_path)
    assert not (tmp_path / video.SAMPLE_FILE_NAME).exists()
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp.mp4")] == []


def test_sample_video_concurrent_processes_encode_once(tmp_path):
    cache_dir = tmp_path / "cache"
    encode_log = tmp_path / "encodes.log"
    # Each worker records its encodes and holds the lock a while, so the
    # workers overlap and the later ones must wait for the first.
    worker = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from fixtures import video
        original_encode = video._encode_sample
        def logged_encode(path):
            with open({str(encode_log)!r}, "a") as log:
                log.write("encode\\n")
            time.sleep(2.0)
            original_encode(path)
        video._encode_sample = logged_encode
        print(video.ensure_sample_video({str(cache_dir)!r}))
        """
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", worker], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=300) for process in processes]

    for process, (stdout, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr
        assert stdout.strip() == str(cache_dir / video.SAMPLE_FILE_NAME)
    assert encode_log.read_text().splitlines() == ["encode"]
    assert video.decode_video(cache_dir / video.SAMPLE_FILE_NAME).shape[1] == video.SAMPLE_FRAME_COUNT


# Decoding errors


def _assert_names_path_and_fix(error, path):
    message = str(error)
    assert str(path) in message
    assert "--video=PATH" in message


def test_decode_missing_file_raises(tmp_path):
    path = tmp_path / "missing.mp4"
    with pytest.raises(video.VideoError) as caught:
        video.decode_video(path)
    _assert_names_path_and_fix(caught.value, path)
    assert "not found" in str(caught.value)


def test_decode_directory_raises(tmp_path):
    with pytest.raises(video.VideoError) as caught:
        video.decode_video(tmp_path)
    _assert_names_path_and_fix(caught.value, tmp_path)


def test_decode_text_file_raises(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a video\n")
    with pytest.raises(video.VideoError) as caught:
        video.decode_video(path)
    _assert_names_path_and_fix(caught.value, path)


def test_decode_empty_file_raises(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(video.VideoError) as caught:
        video.decode_video(path)
    _assert_names_path_and_fix(caught.value, path)


def test_decode_truncated_file_raises(tmp_path, sample_video):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(sample_video.read_bytes()[:4000])
    with pytest.raises(video.VideoError) as caught:
        video.decode_video(path)
    _assert_names_path_and_fix(caught.value, path)


def test_decode_audio_only_file_raises(tmp_path):
    path = tmp_path / "audio.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=1600)
        frame.sample_rate = 16000
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)

    with pytest.raises(video.VideoError) as caught:
        video.decode_video(path)
    _assert_names_path_and_fix(caught.value, path)
    assert "no video stream" in str(caught.value)


def test_decode_zero_frame_video_raises(tmp_path):
    # An AVI with a video stream and no packets opens cleanly, then decodes nothing.
    path = tmp_path / "no_frames.avi"
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width = 64
        stream.height = 48
        stream.pix_fmt = "yuv420p"
        container.start_encoding()

    with pytest.raises(video.VideoError) as caught:
        video.decode_video(path)
    _assert_names_path_and_fix(caught.value, path)
    assert "no decodable frames" in str(caught.value)


def test_decode_accepts_string_path(sample_video, sample_frames):
    assert torch.equal(video.decode_video(str(sample_video)), sample_frames)


def test_video_error_is_value_error():
    assert issubclass(video.VideoError, ValueError)


# SlowFast preprocessing


def test_preprocess_sample_clip_shapes(sample_frames):
    slow, fast = video.preprocess_slowfast(sample_frames)

    assert slow.shape == (3, 8, 256, 256)
    assert fast.shape == (3, 32, 256, 256)
    assert slow.dtype == torch.float32
    assert fast.dtype == torch.float32
    assert torch.isfinite(fast).all()


@pytest.mark.parametrize(
    "shape",
    [(3, 90, 240, 320), (3, 20, 300, 200), (3, 7, 256, 256), (3, 64, 181, 333)],
    ids=["landscape", "portrait", "square_short", "odd_sizes"],
)
def test_preprocess_matches_pytorchvideo_tutorial(shape):
    frames = _random_clip(*shape, seed=sum(shape))
    slow, fast = video.preprocess_slowfast(frames)
    expected_slow, expected_fast = _tutorial_reference(frames)

    assert fast.shape == expected_fast.shape
    assert slow.shape == expected_slow.shape
    torch.testing.assert_close(fast, expected_fast, rtol=0, atol=PREPROCESS_ATOL)
    torch.testing.assert_close(slow, expected_slow, rtol=0, atol=PREPROCESS_ATOL)


@pytest.mark.parametrize(
    "arguments",
    [
        dict(num_frames=32, side_size=256, crop_size=256, mean=(0.45,) * 3, std=(0.225,) * 3, alpha=4),
        dict(
            num_frames=16,
            side_size=160,
            crop_size=128,
            mean=(0.43, 0.4, 0.39),
            std=(0.23, 0.22, 0.22),
            alpha=8,
        ),
        dict(num_frames=5, side_size=64, crop_size=64, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), alpha=2),
    ],
    ids=["tutorial_defaults", "other_sizes", "odd_frame_count"],
)
def test_preprocess_matches_formulas(arguments):
    frames = _random_clip(3, 45, 240, 320, seed=7)
    slow, fast = video.preprocess_slowfast(frames, **arguments)
    expected_slow, expected_fast = _formula_reference(frames, **arguments)

    crop_size = arguments["crop_size"]
    assert slow.shape == (3, arguments["num_frames"] // arguments["alpha"], crop_size, crop_size)
    assert fast.shape == (3, arguments["num_frames"], crop_size, crop_size)
    torch.testing.assert_close(fast, expected_fast, rtol=0, atol=PREPROCESS_ATOL)
    torch.testing.assert_close(slow, expected_slow, rtol=0, atol=PREPROCESS_ATOL)


def test_preprocess_normalizes_constant_colour():
    rgb = (200, 100, 50)
    mean = (0.45, 0.4, 0.35)
    std = (0.225, 0.2, 0.25)
    slow, fast = video.preprocess_slowfast(_constant_clip(rgb), mean=mean, std=std)

    for channel in range(3):
        expected = (rgb[channel] / 255.0 - mean[channel]) / std[channel]
        torch.testing.assert_close(fast[channel], torch.full_like(fast[channel], expected), rtol=0, atol=1e-5)
        torch.testing.assert_close(slow[channel], torch.full_like(slow[channel], expected), rtol=0, atol=1e-5)


def test_preprocess_keeps_first_and_last_frame():
    frames = _frame_index_clip(90)
    slow, fast = video.preprocess_slowfast(frames, side_size=24, crop_size=24, **IDENTITY_NORMALIZATION)
    fast_indices = (fast[0, :, 0, 0] * 255).round().long()
    slow_indices = (slow[0, :, 0, 0] * 255).round().long()

    assert fast_indices[0] == 0
    assert fast_indices[-1] == 89
    assert slow_indices[0] == 0
    assert slow_indices[-1] == 89
    assert torch.equal(fast_indices, torch.linspace(0, 89, 32).long())
    assert (fast_indices.diff() > 0).all()


def test_preprocess_repeats_frames_of_short_clip():
    frames = _frame_index_clip(10)
    slow, fast = video.preprocess_slowfast(frames, side_size=24, crop_size=24, **IDENTITY_NORMALIZATION)
    fast_indices = (fast[0, :, 0, 0] * 255).round().long()

    assert fast.shape[1] == 32
    assert slow.shape[1] == 8
    assert fast_indices[0] == 0
    assert fast_indices[-1] == 9
    assert (fast_indices.diff() >= 0).all()
    assert set(fast_indices.tolist()) == set(range(10))


@pytest.mark.parametrize(
    "height, width, expected",
    [(240, 320, (256, 341)), (320, 240, (341, 256)), (256, 256, (256, 256)), (1080, 1920, (256, 455))],
)
def test_short_side_size_keeps_aspect(height, width, expected):
    assert video._short_side_size(height, width, 256) == expected


@pytest.mark.parametrize("orientation", ["landscape", "portrait"])
def test_preprocess_short_side_scale_keeps_aspect(orientation):
    # A 120x480 clip scales to 256x1024, and the centre crop spans source columns
    # 180 to 300. The white band at columns 200 to 280 fills 2/3 of the crop when
    # the aspect ratio is kept but only 1/6 of it if the clip were squashed to a square.
    frames = torch.zeros(3, 4, 120, 480, dtype=torch.uint8)
    frames[:, :, :, 200:280] = 255
    if orientation == "portrait":
        frames = frames.transpose(2, 3).contiguous()

    _, fast = video.preprocess_slowfast(frames, num_frames=4, alpha=1, **IDENTITY_NORMALIZATION)
    profile = fast[0, 0, 128, :] if orientation == "landscape" else fast[0, 0, :, 128]
    white_fraction = (profile > 0.5).float().mean().item()

    assert white_fraction == pytest.approx(2 / 3, abs=0.01)
    assert profile[0] < 0.5
    assert profile[-1] < 0.5


def test_preprocess_keeps_device_of_input(sample_frames):
    frames = sample_frames[:, :8].clone()
    cpu_slow, cpu_fast = video.preprocess_slowfast(frames, num_frames=8)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))

    for device in devices:
        slow, fast = video.preprocess_slowfast(frames.to(device), num_frames=8)
        assert slow.device.type == device.type
        assert fast.device.type == device.type
        torch.testing.assert_close(slow.cpu(), cpu_slow, rtol=0, atol=1e-4)
        torch.testing.assert_close(fast.cpu(), cpu_fast, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "frames, arguments, message",
    [
        (torch.zeros(3, 4, 8, 8), {}, "uint8"),
        (torch.zeros(4, 8, 8, dtype=torch.uint8), {}, "shape"),
        (torch.zeros(3, 0, 8, 8, dtype=torch.uint8), {}, "at least one frame"),
        (torch.zeros(1, 4, 8, 8, dtype=torch.uint8), {}, "one value per channel"),
        (torch.zeros(3, 4, 8, 8, dtype=torch.uint8), dict(num_frames=2, alpha=4), "slow pathway"),
        (torch.zeros(3, 4, 8, 8, dtype=torch.uint8), dict(num_frames=4, alpha=0), "slow pathway"),
        (torch.zeros(3, 4, 8, 8, dtype=torch.uint8), dict(side_size=128, crop_size=224), "crop_size"),
    ],
    ids=[
        "float_input",
        "three_dims",
        "no_frames",
        "channel_mismatch",
        "too_few_frames",
        "zero_alpha",
        "crop_too_large",
    ],
)
def test_preprocess_rejects_invalid_arguments(frames, arguments, message):
    with pytest.raises(ValueError, match=message):
        video.preprocess_slowfast(frames, **arguments)


# Kinetics-400 labels


def test_kinetics400_labels_count():
    labels = video.kinetics400_labels()

    assert len(labels) == 400
    assert len(set(labels)) == 400
    assert all(isinstance(label, str) and label for label in labels)
    assert labels[0] == "abseiling"


def test_kinetics400_labels_returns_copy():
    video.kinetics400_labels().clear()
    assert len(video.kinetics400_labels()) == 400


def test_top_k_labels_orders_best_first():
    labels = video.kinetics400_labels()
    logits = torch.zeros(2, 400)
    logits[0, [10, 20, 30]] = torch.tensor([3.0, 2.0, 1.0])
    logits[1, [399, 0]] = torch.tensor([5.0, 4.0])

    top = video.top_k_labels(logits, k=3)

    assert len(top) == 2
    assert top[0] == [labels[10], labels[20], labels[30]]
    assert top[1][:2] == [labels[399], labels[0]]
    assert len(video.top_k_labels(logits)[0]) == 5


@pytest.mark.parametrize(
    "shape, k",
    [((400,), 5), ((2, 399), 5), ((2, 400), 0), ((2, 400), 401)],
    ids=["one_dim", "wrong_class_count", "k_zero", "k_too_large"],
)
def test_top_k_labels_rejects_invalid_input(shape, k):
    with pytest.raises(ValueError):
        video.top_k_labels(torch.zeros(shape), k=k)
