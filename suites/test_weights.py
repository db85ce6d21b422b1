"""Tests of --weights: hub checkpoints from a local TORCH_HOME, user checkpoints, and their errors.

The checkpoints are written by the tests in the formats the hubs publish: PyTorchVideo's
``{"model_state": state_dict}``, and a plain state dict for efficient X3D and torchvision.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from fixtures import building, weights
from fixtures.zoo import builtin_specs, load_model_file

pytestmark = pytest.mark.selftest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY_MODELS = ROOT / "suites" / "data" / "tiny_models.py"


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """Point torch hub at an empty TORCH_HOME and return its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def active_weights():
    """Activate a weights source for one test and restore random weights afterwards."""
    yield weights.activate
    weights.activate(weights.WeightSource(weights.RANDOM))


def distinct_state(spec):
    """Return a state dict for ``spec`` at its canonical geometry whose values no seeding produces."""
    model = spec.builder(spec.canonical)
    generator = torch.Generator().manual_seed(1234)
    state = {}
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            # Positive values keep BatchNorm variances valid.
            state[name] = torch.rand(tensor.shape, generator=generator) + 0.5
        else:
            state[name] = tensor.clone()
    return state


def assert_state_equal(model, state):
    loaded = model.state_dict()
    assert sorted(loaded) == sorted(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), f"{name} differs from the checkpoint"


def test_parse_values():
    assert weights.parse(None) == weights.WeightSource(weights.RANDOM)
    assert weights.parse("random") == weights.WeightSource(weights.RANDOM)
    assert weights.parse("pretrained") == weights.WeightSource(weights.PRETRAINED)
    assert weights.parse("ckpt/model.pt") == weights.WeightSource(weights.FILE, pathlib.Path("ckpt/model.pt"))


def test_hub_file_names(torch_home):
    assert weights.hub_checkpoint("slowfast_r50") == torch_home / "SLOWFAST_8x8_R50.pyth"
    assert weights.hub_checkpoint("mvit_base_32x3") == torch_home / "MVIT_B_32x3_f294077834.pyth"
    assert weights.hub_checkpoint("efficient_x3d_xs") == torch_home / "efficient_x3d_xs_original_form.pyth"
    assert weights.hub_checkpoint("r3d_18") == torch_home / "r3d_18-b3b3357e.pth"


def test_every_builtin_model_has_hub_checkpoint(torch_home):
    names = set(weights.hub_urls())

    assert set(builtin_specs()) - names == set()


def test_missing_hub_file_names_file_and_folder(torch_home):
    spec = builtin_specs()["x3d_xs"]

    with pytest.raises(weights.WeightsError) as caught:
        weights.validate(weights.WeightSource(weights.PRETRAINED), [spec], "nightly")

    message = str(caught.value)
    assert "X3D_XS.pyth" in message
    assert str(torch_home) in message
    assert "TORCH_HOME" in message
    assert "never downloads" in message


def test_missing_hub_file_lists_only_missing(torch_home):
    specs = [builtin_specs()["x3d_xs"], builtin_specs()["x3d_s"]]
    (torch_home / "X3D_XS.pyth").write_bytes(b"")

    with pytest.raises(weights.WeightsError) as caught:
        weights.validate(weights.WeightSource(weights.PRETRAINED), specs, "nightly")

    assert "X3D_S.pyth" in str(caught.value)
    assert "X3D_XS.pyth" not in str(caught.value)


def test_pretrained_quick_tier_rejected(torch_home):
    spec = builtin_specs()["x3d_xs"]
    torch.save({"model_state": {}}, torch_home / "X3D_XS.pyth")

    with pytest.raises(weights.WeightsError, match="--tier nightly"):
        weights.validate(weights.WeightSource(weights.PRETRAINED), [spec], "quick")


def test_pretrained_user_model_rejected(torch_home):
    spec = load_model_file(TINY_MODELS)[0]

    with pytest.raises(weights.WeightsError, match="has no hub checkpoint"):
        weights.validate(weights.WeightSource(weights.PRETRAINED), [spec], "nightly")


def test_checkpoint_path_needs_one_model(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({}, path)
    specs = list(builtin_specs().values())[:2]

    with pytest.raises(weights.WeightsError, match="--models NAME"):
        weights.validate(weights.WeightSource(weights.FILE, path), specs, "quick")


def test_checkpoint_path_missing(tmp_path):
    path = tmp_path / "absent.pt"
    spec = builtin_specs()["x3d_xs"]

    with pytest.raises(weights.WeightsError, match="file not found") as caught:
        weights.validate(weights.WeightSource(weights.FILE, path), [spec], "quick")

    assert str(path) in str(caught.value)


def test_pretrained_model_state_loaded_unchanged(torch_home, active_weights):
    spec = builtin_specs()["x3d_xs"]
    state = distinct_state(spec)
    torch.save({"model_state": state, "epoch": 196}, torch_home / "X3D_XS.pyth")
    active_weights(weights.WeightSource(weights.PRETRAINED))

    model = building.build_model(spec, spec.canonical, seed=0)

    # Seeding the norms or calibrating BatchNorm would have changed these values.
    assert_state_equal(model, state)
    assert not model.training


def test_pretrained_plain_state_dict_loaded(torch_home, active_weights):
    spec = builtin_specs()["efficient_x3d_xs"]
    state = distinct_state(spec)
    torch.save(state, torch_home / "efficient_x3d_xs_original_form.pyth")
    active_weights(weights.WeightSource(weights.PRETRAINED))

    model = building.build_model(spec, spec.canonical, seed=0)

    assert_state_equal(model, state)


def test_random_weights_are_seeded(active_weights):
    spec = load_model_file(TINY_MODELS)[0]
    active_weights(weights.WeightSource(weights.RANDOM))

    first = building.build_model(spec, spec.quick, seed=3)
    second = building.build_model(spec, spec.quick, seed=3)

    assert_state_equal(second, first.state_dict())
    # Calibration replaced the default running variance of 1.
    assert not torch.equal(first.norm.running_var, torch.ones(8))


def test_mismatched_checkpoint_names_model_and_geometry(tmp_path, active_weights):
    spec = load_model_file(TINY_MODELS)[0]
    state = spec.builder(spec.quick).state_dict()
    state["head.weight"] = torch.zeros(3, 8)
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    active_weights(weights.WeightSource(weights.FILE, path))

    with pytest.raises(weights.WeightsError) as caught:
        building.build_model(spec, spec.quick, seed=0)

    message = str(caught.value)
    assert "does not fit tiny_conv" in message
    assert "head.weight" in message


def test_non_state_dict_rejected(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)

    with pytest.raises(weights.WeightsError, match="neither a state dict"):
        weights.read_state_dict(path)


def run_pytest(tmp_path, *args, torch_home=None):
    """Run the equivalence tests in a subprocess; return (completed process, report or None)."""
    report_dir = tmp_path / "runs"
    expectations = tmp_path / "expectations.json"
    expectations.write_text(json.dumps({"expectations": []}))
    command = [
        sys.executable, "-m", "pytest", "suites/test_equivalence.py", "-q", "-n", "0",
        "--expectations", str(expectations), "--report-dir", str(report_dir), *args,
    ]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONFORMANCE_")}
    if torch_home is not None:
        environment["TORCH_HOME"] = str(torch_home)
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)
    latest = report_dir / "latest.json"
    report = json.loads(latest.read_text()) if latest.exists() else None
    return completed, report


@pytest.mark.selftest
def test_cli_missing_hub_file_stops_run(tmp_path):
    completed, report = run_pytest(
        tmp_path, "--models", "x3d_xs", "--modes", "trace", "--tier", "nightly", "--weights", "pretrained",
        torch_home=tmp_path / "empty-home",
    )

    output = completed.stdout + completed.stderr
    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert "X3D_XS.pyth" in output
    assert str(tmp_path / "empty-home" / "hub" / "checkpoints") in output
    assert report is None


@pytest.mark.selftest
def test_cli_user_checkpoint_run_passes(tmp_path):
    spec = load_model_file(TINY_MODELS)[0]
    path = tmp_path / "tiny.pt"
    torch.save({"model_state": distinct_state(spec)}, path)

    completed, report = run_pytest(
        tmp_path, "--model-file", str(TINY_MODELS), "--models", "tiny_conv", "--modes", "trace",
        "--batch-sizes", "1", "--weights", str(path),
    )

    assert completed.returncode == pytest.ExitCode.OK, completed.stdout[-2000:]
    assert report["environment"]["weights"] == str(path)
    assert [result["outcome"] for result in report["results"]] == ["pass"]
