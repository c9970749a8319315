"""Paired latency ratios (tflc.profiler.paired): the arithmetic on made-up rounds, never on timings.

A broken implementation fails here: one that pools the runs instead of pairing them by round,
one that reads a ratio as a difference while its interval holds 1 (or lies within the ±2% noise
band), one that pairs rounds by position where a configuration skipped a round.
"""
from __future__ import annotations

import numpy as np
import pytest

from tflc.profiler.latency import LatencyStats, comparison_from_rounds
from tflc.profiler.paired import (FASTER, NO_DIFFERENCE, NOISE_BAND, SLOWER, UNDECIDED, paired_ratio, ratio_interval,
                                  reading, split_rounds)


def test_reading_needs_the_whole_interval_beyond_the_band():
    assert NOISE_BAND == 0.02
    assert reading(0.95, 1.05) == NO_DIFFERENCE                  # holds 1
    assert reading(0.985, 0.995) == NO_DIFFERENCE                # excludes 1, but within ±2%: noise here
    assert reading(1.005, 1.03) == NO_DIFFERENCE                 # reaches into the band
    assert reading(0.90, 0.97) == FASTER
    assert reading(1.03, 1.20) == SLOWER
    assert reading(None, None) == UNDECIDED and reading(float("nan"), 1.0) == UNDECIDED
    assert reading(0.985, 0.995, band=0.0) == FASTER             # the band is what absorbs it


def test_ratio_is_paired_by_round_not_pooled():
    # the machine has a slow phase in rounds 2-4 (both models 1.6x slower there); B is 10% faster in
    # every round, but got most of its runs in the slow phase: pooled, B reads 44% slower
    speed = [100.0, 100.0, 160.0, 160.0, 160.0]
    a = [[s] * (10 if s == 100.0 else 2) for s in speed]
    b = [[0.9 * s] * (2 if s == 100.0 else 10) for s in speed]
    pooled = np.median([x for r in b for x in r]) / np.median([x for r in a for x in r])
    assert pooled == pytest.approx(1.44)             # what an unpaired ratio would have said
    pr = paired_ratio(a, b)
    assert pr.ratio == pytest.approx(0.9) and pr.rounds == 5
    assert pr.ci_low == pytest.approx(0.9) and pr.ci_high == pytest.approx(0.9)
    assert pr.verdict == FASTER


def test_rounds_are_matched_by_id():
    # B skipped round 1 (--max-time): its round 2 must meet A's round 2, not A's round 1
    a = {0: [100.0], 1: [200.0], 2: [300.0]}
    b = {0: [110.0], 2: [330.0]}
    pr = paired_ratio(a, b)
    assert pr.rounds == 2 and pr.ratio == pytest.approx(1.1)
    st = LatencyStats.from_samples([100.0, 101.0, 300.0])
    st.round_sizes, st.round_ids = [2, 1], [0, 2]
    assert st.by_round() == {0: [100.0, 101.0], 2: [300.0]}
    assert split_rounds([1.0, 2.0], [3]) == {}                  # sizes that do not add up: unknown


def test_quantile_and_one_round():
    a, b = [[1.0, 2.0, 3.0, 10.0]], [[1.0, 2.0, 3.0, 20.0]]
    one = paired_ratio(a, b, quantile=50)
    assert one.ratio == pytest.approx(1.0) and one.ci_low is None and one.verdict == UNDECIDED
    tail = paired_ratio(a * 3, b * 3, quantile=90)
    assert tail.ratio == pytest.approx(np.percentile(b[0], 90) / np.percentile(a[0], 90))
    assert paired_ratio([], []) is None and ratio_interval([]) is None


def test_identical_models_read_no_difference_in_simulation():
    """Two identical models, timed in 20 interleaved rounds: each round's ratio scatters by ~2%
    (noise of the round's median) around 1. Over 500 simulated benchmarks the reading says "no
    difference beyond noise" every time; without the band, the interval alone would call some
    of them faster or slower (that is what the band is for)."""
    rng = np.random.default_rng(7)
    with_band = without = 0
    for _ in range(500):
        ratios = np.exp(rng.normal(0.0, 0.02, size=20))
        pr = ratio_interval(ratios)
        with_band += pr.verdict == NO_DIFFERENCE
        without += reading(pr.ci_low, pr.ci_high, band=0.0) == NO_DIFFERENCE
    assert with_band == 500
    assert without < 490                 # the interval alone: ~5% false differences


def test_a_real_difference_is_found():
    rng = np.random.default_rng(3)
    for effect in (0.90, 1.10):
        pr = ratio_interval(effect * np.exp(rng.normal(0.0, 0.02, size=20)))
        assert pr.verdict == (FASTER if effect < 1 else SLOWER)


def test_comparison_from_rounds_keeps_ratio_and_p50s_from_the_same_runs():
    ra = [[100.0 + k] * 10 for k in range(8)]
    rb = [[103.0 + k] * 10 for k in range(8)]
    c = comparison_from_rounds(ra, rb)
    assert c.rounds == 8 and c.a.runs == c.b.runs == 80
    assert c.ratio == pytest.approx(np.median([(103.0 + k) / (100.0 + k) for k in range(8)]))
    assert c.p50_ratio == pytest.approx(c.b.p50_us / c.a.p50_us)
    assert abs(c.p50_ratio - c.ratio) < 0.002                    # the same runs: they agree
    assert c.ci_low <= c.ratio <= c.ci_high and c.verdict == SLOWER
    assert c.to_json()["verdict"] == SLOWER and c.to_json()["p50_ratio"] == pytest.approx(c.p50_ratio)
    assert c.a.by_round()[3] == [103.0] * 10
