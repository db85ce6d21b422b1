"""Options, markers, the case matrix, the report header and the report hooks."""

from __future__ import annotations

import importlib.util
import os
import platform

import pytest
import torch

from fixtures import expectation_file, reporting, throughput_options, weights
from fixtures.cases import DEVICES, DTYPES, Case
from fixtures.conversion import MODES
from fixtures.zoo import EXCLUDED_MODELS, ZooError, registry, select

# Plugins: --shard K/N, and the cache counts that xdist workers send to the report.
pytest_plugins = ("fixtures.sharding", "fixtures.cache_counts")

TIERS = ("quick", "nightly")
TIER_BATCH_SIZES = {"quick": (1, 2), "nightly": (1, 2, 4, 8)}
# Inputs are seeded with seed + 1000 * offset + 1. A seed below 2**31 keeps that sum far inside the
# 64-bit integer range of torch's generators, and a seed of 10**20 failed there with an overflow.
MAX_SEED = 2**31 - 1

# (option, environment variable, help). Every list option takes comma-separated values.
LIST_OPTIONS = (
    ("--models", "CONFORMANCE_MODELS", "models to test (default: every registered model)"),
    ("--modes", "CONFORMANCE_MODES", f"conversion modes to test (default: all of {', '.join(MODES)})"),
    ("--devices", "CONFORMANCE_DEVICES", "devices: cpu, cuda (default: cpu)"),
    ("--dtypes", "CONFORMANCE_DTYPES", "dtypes: fp32, fp16, bf16 (default: fp32)"),
    ("--batch-sizes", "CONFORMANCE_BATCH_SIZES", "batch sizes (default: the tier's)"),
    ("--clip-lengths", "CONFORMANCE_CLIP_LENGTHS", "clip lengths in frames (default: the tier's, per model)"),
)


def pytest_addoption(parser):
    """Register the suite's options; each can also be set by the environment variable in its help."""
    group = parser.getgroup("conformance", "video model conformance suite")
    for flag, variable, text in LIST_OPTIONS:
        group.addoption(flag, default=os.environ.get(variable), help=f"{text}; comma-separated; env {variable}")
    group.addoption("--tier", default=os.environ.get("CONFORMANCE_TIER", "quick"),
                    help="quick (the default): small geometry; nightly: canonical geometry and every axis; env CONFORMANCE_TIER")
    group.addoption("--model-file", action="append", default=_env_list("CONFORMANCE_MODEL_FILE"),
                    help="Python file defining MODEL_SPECS to add to the matrix; repeatable; env CONFORMANCE_MODEL_FILE")
    group.addoption("--video", default=os.environ.get("CONFORMANCE_VIDEO"),
                    help="video file for the real-video test (default: a clip the suite encodes); env CONFORMANCE_VIDEO")
    group.addoption("--seed", default=os.environ.get("CONFORMANCE_SEED", "0"),
                    help="seed of weights and inputs, an integer (default 0); env CONFORMANCE_SEED")
    group.addoption("--expectations", default=os.environ.get("CONFORMANCE_EXPECTATIONS"),
                    help="expectations file (default: fixtures/expectations/torch-MAJOR.MINOR.json, or "
                         "torch-MAJOR.MINOR-nightly.json in the nightly tier); env CONFORMANCE_EXPECTATIONS")
    group.addoption("--update-expectations", action="store_true",
                    help="rewrite the expectations file from this run's outcomes")
    group.addoption("--report-dir", default=os.environ.get("CONFORMANCE_REPORT_DIR", "reports/runs"),
                    help="folder for the JSON, Markdown and HTML run reports; env CONFORMANCE_REPORT_DIR")
    group.addoption("--weights", default=os.environ.get("CONFORMANCE_WEIGHTS", "random"),
                    help="random (seeded, the default), pretrained (hub checkpoints from the local torch hub "
                         "cache, nightly tier only) or PATH of a checkpoint for one model; env CONFORMANCE_WEIGHTS")
    throughput_options.add_options(group)


def _env_list(variable):
    value = os.environ.get(variable)
    return [item for item in value.split(",") if item] if value else []


def _split(value):
    return [item.strip() for item in value.split(",") if item.strip()] if value else []


def _flag(flag):
    """Return the option and its environment variable, as error messages name them."""
    variable = next(variable for option, variable, _ in LIST_OPTIONS if option == flag)
    return f"{flag} (or {variable})"


def _choose(flag, value, valid):
    chosen = _split(value)
    if value is not None and not chosen:
        raise pytest.UsageError(f"{_flag(flag)}: {value!r} names no value; valid values: "
                                f"{', '.join(map(str, valid))}, or leave it out for the default")
    for item in chosen:
        if item not in valid:
            raise pytest.UsageError(f"{_flag(flag)}: unknown value {item!r}; valid values: "
                                    f"{', '.join(map(str, valid))}")
    return chosen


def _integers(flag, value):
    try:
        numbers = [int(item) for item in _split(value)]
    except ValueError:
        raise pytest.UsageError(f"{_flag(flag)}: {value!r} is not a comma-separated list of positive integers") from None
    if value is not None and not numbers:
        raise pytest.UsageError(f"{_flag(flag)}: {value!r} names no value; give comma-separated positive integers, "
                                "or leave it out for the default")
    if any(number < 1 for number in numbers):
        raise pytest.UsageError(f"{_flag(flag)}: {value!r} contains a value below 1; give positive integers")
    return numbers


class Matrix:
    """The validated options and the cases they select, built once before collection."""

    def __init__(self, config):
        option = config.option
        if option.tier not in TIERS:
            raise pytest.UsageError(f"--tier: unknown value {option.tier!r}; valid values: {', '.join(TIERS)}")
        self.tier = option.tier
        self.user_video = bool(getattr(option, "video", None))
        try:
            self.seed = int(option.seed)
        except ValueError:
            raise pytest.UsageError(f"--seed (or CONFORMANCE_SEED): {option.seed!r} is not an integer") from None
        if not 0 <= self.seed <= MAX_SEED:
            raise pytest.UsageError(f"--seed (or CONFORMANCE_SEED): {self.seed} is out of range; give an integer "
                                    f"from 0 to {MAX_SEED}")
        if option.models is not None and not _split(option.models):
            raise pytest.UsageError(f"--models (or CONFORMANCE_MODELS): {option.models!r} names no model; give "
                                    "comma-separated model names, or leave both out to test every model")
        for name in _split(option.models):
            if name in EXCLUDED_MODELS:
                raise pytest.UsageError(f"--models: {name!r} is not in the matrix: {EXCLUDED_MODELS[name]}")
        try:
            self.specs = registry(option.model_file or [])
            self.selected = select(self.specs, _split(option.models))
        except ZooError as error:
            raise pytest.UsageError(str(error)) from None
        self.modes = _choose("--modes", option.modes, MODES) or list(MODES)
        self.devices = _choose("--devices", option.devices, DEVICES) or ["cpu"]
        self.dtypes = _choose("--dtypes", option.dtypes, list(DTYPES)) or ["fp32"]
        self.batch_sizes = _integers("--batch-sizes", option.batch_sizes) or list(TIER_BATCH_SIZES[self.tier])
        self.base_batch = min(self.batch_sizes)
        self.clip_lengths = _integers("--clip-lengths", option.clip_lengths)
        self.cases = self._cases()
        if not self.cases and "cuda" not in self.devices:
            raise pytest.UsageError(f"--dtypes {','.join(self.dtypes)}: half precision runs on CUDA only, so the "
                                    "CPU matrix is empty; add --devices cuda, or include fp32")

    def clip_lengths_for(self, spec):
        """Return the clip lengths to test for a model: the option's, else the tier's."""
        if self.clip_lengths:
            return self.clip_lengths
        if self.tier == "quick":
            return [spec.quick.frames]
        return list(spec.clip_lengths or (spec.canonical.frames,))

    def base_clip_length(self, spec):
        """Return the clip length of a model's base point: the tier's own, else the first selected."""
        lengths = self.clip_lengths_for(spec)
        preferred = spec.quick.frames if self.tier == "quick" else spec.canonical.frames
        return preferred if preferred in lengths else lengths[0]

    def is_base(self, case):
        """Return True for a case at its model's base point (smallest batch size, the tier's clip length)."""
        return case.batch_size == self.base_batch and case.clip_length == self.base_clip_length(self.specs[case.model])

    def base_cases(self):
        """Return the cases at their model's base point, where every check runs."""
        return {case_id: case for case_id, case in self.cases.items() if self.is_base(case)}

    def _cases(self):
        # One factor at a time: every batch size at the base clip length, and every clip length
        # at the base batch size. The full cross product at canonical geometry would take many
        # hours on a CPU, and this way every axis value still meets every model, mode and dtype.
        cases = {}
        for spec in self.selected:
            base_frames = self.base_clip_length(spec)
            points = [(batch, base_frames) for batch in self.batch_sizes]
            points += [(self.base_batch, frames) for frames in self.clip_lengths_for(spec) if frames != base_frames]
            for mode in self.modes:
                for device in self.devices:
                    for dtype in self.dtypes:
                        # Half precision is a CUDA configuration; on the CPU many kernels lack it.
                        if device == "cpu" and dtype != "fp32":
                            continue
                        for batch, frames in points:
                            case = Case(spec.name, mode, device, dtype, batch, frames)
                            cases[case.id] = case
        return cases

    def geometry(self, case):
        """Return the geometry of a case: the tier's, with the case's clip length."""
        return self.specs[case.model].geometry(case.clip_length, self.tier)


def pytest_configure(config):
    """Register markers, validate the options and build the case matrix."""
    for line in (
        "gpu: a case that runs on CUDA",
        "benchmark: a throughput measurement",
        "video: the real-video test",
        "selftest: a test of the suite's own machinery",
    ):
        config.addinivalue_line("markers", line)
    _reject_gpu_without_cuda(config)
    config.stash[MATRIX] = Matrix(config)
    throughput_options.configure(config)
    source = weights.parse(config.option.weights)
    try:
        weights.validate(source, config.stash[MATRIX].selected, config.stash[MATRIX].tier)
    except weights.WeightsError as error:
        raise pytest.UsageError(str(error)) from None
    weights.activate(source)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        # Each xdist worker would otherwise start one thread per core, and N
        # workers on N cores then fight over them.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    if config.option.video:
        from fixtures.video import VideoError, decode_video

        try:
            decode_video(config.option.video)
        except VideoError as error:
            raise pytest.UsageError(f"--video: {error}") from None
    path = expectation_file.default_path(tier=config.stash[MATRIX].tier)
    if config.option.expectations:
        path = expectation_file.pathlib.Path(config.option.expectations)
        if not path.exists() and not config.option.update_expectations:
            raise pytest.UsageError(f"--expectations: file {str(path)!r} not found; give an existing file, "
                                    "or add --update-expectations to create it from this run")
    report_dir = reporting.report_dir(config)
    if report_dir.exists() and not report_dir.is_dir():
        raise pytest.UsageError(f"--report-dir: {str(report_dir)!r} is a file, not a folder; give a folder path")
    try:
        config.stash[EXPECTATIONS] = (path, expectation_file.load(path))
    except expectation_file.ExpectationFileError as error:
        raise pytest.UsageError(str(error)) from None
    reporting.configure(config, *config.stash[EXPECTATIONS])


MATRIX = pytest.StashKey[Matrix]()
EXPECTATIONS = pytest.StashKey[tuple]()


def pytest_generate_tests(metafunc):
    """Parametrize every test that takes ``case_id`` with the matrix's case ids."""
    if "case_id" not in metafunc.fixturenames:
        return
    matrix = metafunc.config.stash[MATRIX]
    # A module may choose its own cases with case_ids(matrix); test_video.py names it video_case_ids.
    case_source = getattr(metafunc.module, "case_ids", None) or getattr(metafunc.module, "video_case_ids", None)
    case_ids = case_source(matrix) if case_source else list(matrix.cases)
    metafunc.parametrize("case_id", case_ids, ids=case_ids)


def pytest_collection_modifyitems(config, items):
    """Mark CUDA cases, group cases by model for xdist, apply expectations as strict xfails, deselect benchmarks."""
    from fixtures.outcomes import FAILURES

    _, expectations = config.stash[EXPECTATIONS]
    # parametrize() with no case ids still yields one placeholder item. Dropping it keeps
    # a check without cases in this matrix, such as the CUDA-only one, out of the run.
    placeholders = [item for item in items if _has_empty_case_id(item)]
    if placeholders:
        config.hook.pytest_deselected(items=placeholders)
        items[:] = [item for item in items if not _has_empty_case_id(item)]
    keys = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "case_id" not in callspec.params:
            continue
        case = Case.parse(callspec.params["case_id"])
        check = item.get_closest_marker("check").args[0]
        keys.append((case.id, check))
        item.add_marker(pytest.mark.xdist_group(case.model))
        if case.device == "cuda":
            item.add_marker(pytest.mark.gpu)
            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason=CUDA_SKIP_REASON))
        expectation = expectation_file.find(expectations, case.id, check)
        if expectation is not None and expectation.outcome in FAILURES:
            item.stash[reporting.EXPECTED] = expectation
            item.add_marker(pytest.mark.xfail(
                strict=True,
                raises=FAILURES[expectation.outcome],
                reason=f"expected {expectation.outcome} ({expectation.error_class}): {expectation.reason} "
                       f"[seen on torch {', '.join(expectation.seen_on)}; rerun with --runxfail to see it fail]",
            ))
    # Only an entry this selection should have used is stale: --models, --modes or a test path
    # that leaves its case or check out of the run does not make it unused.
    checks = {check for _, check in keys}
    in_scope = [entry for entry in expectations
                if any(entry.matches(case_id, check) for case_id in config.stash[MATRIX].cases for check in checks)]
    for stale in expectation_file.unused(in_scope, keys) if keys else []:
        reporting.note_unused_expectation(config, stale)
    # Throughput cases take seconds each, so they run only when -m names them: pytest -m benchmark.
    if "benchmark" not in (config.option.markexpr or ""):
        benchmarks = [item for item in items if item.get_closest_marker("benchmark")]
        if benchmarks:
            config.hook.pytest_deselected(items=benchmarks)
            items[:] = [item for item in items if not item.get_closest_marker("benchmark")]
    _group_by_model(items, config.stash[MATRIX].specs)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Send every case of one model to one xdist worker, so each model is built and converted once.

    pytest-xdist's ``--dist loadgroup`` appends the xdist_group name to a private
    node id attribute that pytest 9.2 no longer reads, so there every item was
    its own group and both workers built and converted every model. This
    scheduler takes the model from the case id in the node id instead.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModelScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            case = _case_of_nodeid(nodeid)
            return case.model if case else nodeid

        def remove_node(self, node):
            # LoadScopeScheduling hands the case that crashed a worker to the next worker with
            # the rest of its model, so a case that crashes every time would use up
            # --max-worker-restart and end the run. It is marked done here; xdist reports it failed.
            workload = self.assigned_work.get(node, {})
            crashed = next((nodeid for unit in workload.values() for nodeid, done in unit.items() if not done), None)
            for unit in workload.values():
                if crashed in unit:
                    unit[crashed] = True
            super().remove_node(node)
            # It also puts the crashed worker's finished units back in the queue. A worker given
            # only finished cases would wait forever for one to run, so they are dropped.
            finished = [scope for scope, unit in self.workqueue.items() if all(unit.values())]
            for scope in finished:
                del self.workqueue[scope]
            for remaining in self.nodes:
                self._reschedule(remaining)
            return crashed

        def schedule(self):
            replacing = self.collection is not None
            super().schedule()
            if replacing:
                # A worker runs an item only once it has the next one or the shutdown signal. A
                # replacement worker whose model has one case left would otherwise wait forever,
                # so it gets a second unit or, when none is left, the shutdown signal.
                for node in self.nodes:
                    self._reschedule(node)

    return ModelScheduling(config, log)


def _case_of_nodeid(nodeid: str) -> Case | None:
    # "suites/test_equivalence.py::test_equivalence[x3d_xs-trace-cpu-fp32-b1-t4]", with
    # "@x3d_xs" appended by pytest-xdist on pytest releases where its group suffix works.
    parameters = nodeid.split("@")[0].partition("[")[2].rstrip("]")
    try:
        return Case.parse(parameters)
    except ValueError:
        return None


def _group_by_model(items, specs):
    """Reorder items in place so that every check of one model, and within it of one point, runs back to back.

    A point is a clip length and batch size. Other tests keep their places at
    the front. The per-process cache then keeps one model's objects for one
    point at a time (see cache.retain_only). Models run costliest first (the
    spec's ``relative_cost``): xdist hands models out in this order, and a costly
    model handed out last would keep one worker busy after the others finish.
    """
    first_seen = {}
    for position, item in enumerate(items):
        model = _model_of(item)
        if model is not None:
            first_seen.setdefault(model, position)
    rank = {model: (-specs[model].relative_cost if model in specs else 0.0, position)
            for model, position in first_seen.items()}

    def order(pair):
        position, item = pair
        model = _model_of(item)
        if model is None:
            return ((-float("inf"), -1), (), position)
        case = _case_of(item)
        return (rank[model], (case.clip_length, case.batch_size), position)

    items[:] = [item for _, item in sorted(enumerate(items), key=order)]


def _case_of(item):
    return Case.parse(item.callspec.params["case_id"])


def _model_of(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None or "case_id" not in callspec.params:
        return None
    return Case.parse(callspec.params["case_id"]).model


def _has_empty_case_id(item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "case_id" in callspec.params and not isinstance(callspec.params["case_id"], str)


CUDA_SKIP_REASON = ("needs a CUDA device, and torch.cuda.is_available() is False here; run the CUDA cases on a "
                    "machine with CUDA: pytest -m gpu --devices cuda (see scripts/gpu_check.sh)")


def _reject_gpu_without_cuda(config):
    """Raise a usage error for ``-m gpu`` on a machine without CUDA, so the run cannot pass by skipping.

    It runs at configure time, so that under xdist the controller stops before any worker starts.
    """
    markexpr = config.option.markexpr or ""
    if "gpu" in markexpr and "not gpu" not in markexpr and not torch.cuda.is_available():
        raise pytest.UsageError("-m gpu: no CUDA device was found (torch.cuda.is_available() is False); "
                                "run the GPU cases on a machine with CUDA")


def pytest_report_header(config):
    """Print the versions, the device and the thread count that the results depend on."""
    matrix = config.stash[MATRIX]
    versions = reporting.environment(config)
    lines = [
        f"conformance: torch {versions['torch']}, torchvision {versions['torchvision']}, "
        f"pytorchvideo {versions['pytorchvideo']}, python {platform.python_version()}",
        f"conformance: cuda device {versions['cuda_device'] or 'none'}, {torch.get_num_threads()} threads, "
        f"tier {matrix.tier}, {len(matrix.cases)} cases (each a test item of one or more checks), "
        f"seed {matrix.seed}, weights {config.option.weights}",
    ]
    excluded = ", ".join(f"{name} ({reason.split(':')[0]})" for name, reason in EXCLUDED_MODELS.items())
    lines.append(f"conformance: not in the matrix: {excluded}")
    path, expectations = config.stash[EXPECTATIONS]
    state = f"{len(expectations)} entries" if path.exists() else "not found, so no failures are expected"
    lines.append(f"conformance: expectations {path} ({state})")
    return lines


@pytest.fixture
def case(case_id, request):
    """Return the Case for the test's case id."""
    return Case.parse(case_id)


@pytest.fixture
def matrix(request):
    """Return the run's Matrix: options, specs and geometry lookup."""
    return request.config.stash[MATRIX]


@pytest.fixture
def record(request):
    """Return a function that stores a check's result and raises its outcome's exception."""

    def record_result(result):
        __tracebackhide__ = True
        reporting.settle(request, result)

    return record_result


@pytest.fixture(autouse=True)
def _one_model_in_cache(request):
    """Free the cached objects of other models and points before a case of a new point starts."""
    model = _model_of(request.node)
    if model is not None:
        from fixtures import cache

        case = _case_of(request.node)
        cache.retain_only(model, case.clip_length, case.batch_size)


@pytest.fixture(autouse=True)
def _restore_rng_state():
    """Restore torch's global RNG state after each test so test order cannot change results."""
    state = torch.random.get_rng_state()
    yield
    torch.random.set_rng_state(state)


def pytest_runtest_logreport(report):
    """Collect result records from test reports (on the xdist controller too)."""
    reporting.collect(report)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Record a ``check-error`` result for a case test that raised before recording a result.

    A model that cannot be built, or a bug in a check, raises an ordinary
    exception. Without this the case would be missing from the report.
    """
    if call.when == "call" and call.excinfo is not None and not _has_result(item) and _model_of(item) is not None:
        item.user_properties.append(reporting.check_error_property(item, call.excinfo, item.config.stash[MATRIX]))
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    """Record a ``check-error`` result for a case whose xdist worker died while running it.

    A segfault or abort inside TorchScript, or the OOM killer, ends the worker
    process before it can report, and the case would otherwise be missing from
    the run report.
    """
    case = _case_of_nodeid(crashitem)
    if case is None:
        return
    config = sched.config
    test_path = crashitem.partition("::")[0]
    check = _check_of_nodeid(config, crashitem)
    worker = getattr(getattr(report.node, "gateway", None), "id", "?")
    report.user_properties.append(reporting.crash_property(case, test_path, check, worker, config.stash[MATRIX]))


def _check_of_nodeid(config, nodeid: str) -> str:
    """Return the check marker's name of the test function that ``nodeid`` names.

    The xdist controller collects no items, so this loads the test module from its file.
    """
    path, _, rest = nodeid.partition("::")
    function_name = rest.partition("[")[0]
    file = config.rootpath / path
    try:
        spec = importlib.util.spec_from_file_location(f"_crashed_{file.stem}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        marks = getattr(getattr(module, function_name), "pytestmark", [])
        return next(mark.args[0] for mark in marks if mark.name == "check")
    except Exception:  # noqa: BLE001 - the crash record matters more than the check's exact name
        return function_name.removeprefix("test_")


def _has_result(item) -> bool:
    return any(name == reporting.RESULT_PROPERTY for name, _ in item.user_properties)


def pytest_sessionstart(session):
    """Write an incomplete report at the start, so an interrupted run leaves one."""
    reporting.start(session)


def pytest_sessionfinish(session, exitstatus):
    """Write the final report and, when asked, the expectations file."""
    if session.config.option.shard and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        # A shard can hold no model when N exceeds the models selected. Its run has nothing to fail.
        exitstatus = session.exitstatus = pytest.ExitCode.OK
    reporting.finish(session, exitstatus)

