"""Measure the throughput gate's false-alarm and detection rates with injected slowdowns.

Each trial measures a baseline of TinyConv (suites/data/tiny_models.py): eager
and a fresh trace, interleaved, each call repeating the model 20 times on its
input. It then measures a current run in each condition below and judges it
against the baseline with the gate's defaults (threshold 10%, alpha 0.01):

    same             the same model again, so every "slower" is a false alarm
    converted +10%   each converted call repeats the traced model 22 times instead of 20
    converted +25%   25 times instead of 20
    both +25%        eager and converted both repeat 25 times, as when the model itself changed

The units are identical, so 2 extra units are 10% more of the same work (see
fixtures/slowdown_injection.py). Before the trials the script measures the
extra time of both slowed modules against the reference one, and the table
reports the extra time the trials themselves measured. A 10% longer call is
9.1% fewer clips/s, which is under the 10% threshold, so the gate is expected
to flag that condition only sometimes.

Run from the repository root:

    .venv/bin/python benchmarks/gate_trials.py --trials 20 --seconds 1.5
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import sys
import time
import warnings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from fixtures import gate, slowdown_injection, throughput  # noqa: E402
from fixtures.throughput_options import ALPHA, DEFAULT_THRESHOLD  # noqa: E402

CONDITIONS = ("same", "converted +10%", "converted +25%", "both +25%")
VERDICTS = ("slower", "cannot-judge", "pass")
# Extra work per condition, as a fraction of the reference call's repetitions.
EXTRA = {"same": 0.0, "converted +10%": 0.10, "converted +25%": 0.25, "both +25%": 0.25}


def parse_arguments(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per condition (default 20)")
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="measured seconds per side of a trial: baseline and current each (default 1.5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine, waits at the barriers of "
                             "multi-threaded kernels swamp the extra work being measured)")
    parser.add_argument("--crop", type=int, default=24, help="input height and width of TinyConv (default 24)")
    return parser.parse_args(argv)


def fresh_trace(model, make_input):
    """Trace the model again, as a separate pytest run would."""
    with torch.no_grad():
        return torch.jit.trace(model, (make_input(),))


def run_condition(condition, model, make_input, seconds):
    """Measure a baseline and a current run in ``condition``; return the gate's verdict and the extra times.

    The absolute extra time compares converted medians. The corrected one
    compares per-round converted/eager time ratios, which cancels the load
    change between the two measurements.
    """
    extra = EXTRA[condition]
    baseline = throughput.measure(slowdown_injection.with_extra_work(model),
                                  slowdown_injection.with_extra_work(fresh_trace(model, make_input)),
                                  make_input, "cpu", 1, seconds)
    eager = slowdown_injection.with_extra_work(model, extra if condition == "both +25%" else 0.0)
    converted = slowdown_injection.with_extra_work(fresh_trace(model, make_input), extra)
    current = throughput.measure(eager, converted, make_input, "cpu", 1, seconds)
    verdict = gate.compare_with_baseline(current.samples_eager, current.samples_converted,
                                         baseline.samples_eager, baseline.samples_converted, DEFAULT_THRESHOLD, ALPHA)
    absolute = gate.median(current.samples_converted) / gate.median(baseline.samples_converted) - 1.0
    corrected = (gate.median(gate.time_ratios(current.samples_eager, current.samples_converted))
                 / gate.median(gate.time_ratios(baseline.samples_eager, baseline.samples_converted)) - 1.0)
    return verdict, absolute, corrected


def main(argv=None) -> int:
    """Measure the injected extra time, run the trials and print the rates."""
    arguments = parse_arguments(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(arguments.threads)
    started = time.perf_counter()
    model, traced, make_input = slowdown_injection.tiny_conv(8, arguments.crop)

    reference = slowdown_injection.with_extra_work(traced)
    for fraction in (0.10, 0.25):
        slower = slowdown_injection.with_extra_work(traced, fraction)
        measured = slowdown_injection.measured_extra(reference, slower, make_input, 2 * arguments.seconds)
        print(f"{slower.times} units instead of {reference.times}: measured {100 * measured:+.1f}% time per call, "
              f"nominal {100 * fraction:+.0f}%", flush=True)

    counts = {condition: collections.Counter() for condition in CONDITIONS}
    absolute_extra = {condition: [] for condition in CONDITIONS}
    corrected_extra = {condition: [] for condition in CONDITIONS}
    for trial in range(arguments.trials):
        # The order rotates so that a load change during the run hits every condition alike.
        order = CONDITIONS[trial % len(CONDITIONS):] + CONDITIONS[:trial % len(CONDITIONS)]
        for condition in order:
            verdict, absolute, corrected = run_condition(condition, model, make_input, arguments.seconds)
            counts[condition][verdict["verdict"]] += 1
            absolute_extra[condition].append(absolute)
            corrected_extra[condition].append(corrected)
        print(f"trial {trial + 1}/{arguments.trials} done after {time.perf_counter() - started:.0f} s", flush=True)

    print()
    print("Rates of the gate's verdicts, and the median extra converted time per call over the trials")
    print(f"{'condition':<16} {'trials':>6} {'slower':>8} {'cannot-judge':>13} {'pass':>6} "
          f"{'absolute extra':>15} {'corrected extra':>16}")
    for condition in CONDITIONS:
        total = sum(counts[condition].values())
        rates = [f"{100 * counts[condition][verdict] / total:.0f}%" for verdict in VERDICTS]
        absolute = 100 * gate.median(absolute_extra[condition])
        corrected = 100 * gate.median(corrected_extra[condition])
        print(f"{condition:<16} {total:>6} {rates[0]:>8} {rates[1]:>13} {rates[2]:>6} "
              f"{absolute:>+14.1f}% {corrected:>+15.1f}%")
    print(f"\nthreads {arguments.threads}, {arguments.seconds:g} s per side, crop {arguments.crop}, "
          f"wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
