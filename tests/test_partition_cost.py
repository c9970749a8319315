"""The partition cost model: a partition is worth delegating when its ops save more than a boundary."""
from __future__ import annotations

from types import SimpleNamespace as NS

from tflc.analyses.partition import cost_model
from tflc.profiler.boundary import boundary_models, per_boundary_us
from tflc.runtime.delegation import xnnpack_delegation
from tflc.targets.plan import PartitionPlan, Subset


def _profile(builtin: dict[int, float], xnn: dict[int, float], b_lat: float, x_lat: float):
    def view(name, times, lat):
        return NS(name=name, measured_us=lat, ops=[NS(subgraph=0, index=i, avg_us=t) for i, t in times.items()])
    return NS(views={"builtin": view("builtin", builtin, b_lat), "xnnpack": view("xnnpack", xnn, x_lat)})


def test_a_partition_that_saves_less_than_its_boundary_is_not_worth_it():
    plan = PartitionPlan("xnnpack", "test", "test", [], {0: [Subset(True, [0, 1]), Subset(False, [2]),
                                                             Subset(True, [3])]})
    prof = _profile({0: 50.0, 1: 30.0, 2: 5.0, 3: 0.4}, {0: 10.0, 1: 5.0, 2: 5.0, 3: 0.3}, 90.0, 25.0)
    c = cost_model(plan, prof, per_boundary_us=0.5)
    big, tiny = c["partitions"]
    assert big["worth_it"] and big["saving_us"] == 50.0 + 30.0 - 15.0 - 0.5
    assert not tiny["worth_it"], "0.4 -> 0.3 µs does not pay for a 0.5 µs boundary"
    assert c["model"] == {"builtin_us": 90.0, "delegated_us": 25.0, "worth_it": True}


def test_without_both_views_there_is_no_cost_model():
    plan = PartitionPlan("xnnpack", "test", "test", [], {0: []})
    assert cost_model(plan, NS(views={"xnnpack": None}), 1.0) == {}


def test_the_calibration_models_differ_only_in_their_partitions():
    a, b = boundary_models(4)
    da, db = xnnpack_delegation(a), xnnpack_delegation(b)
    assert len(da.partitions) == 1 and len(db.partitions) == 4
    assert da.nodes == db.nodes == 8
    assert per_boundary_us(10.0, 14.0, 4) == 1.0 and per_boundary_us(10.0, 9.0, 4) == 0.0
