"""sigma_playground.telemetry.metrics: declared-once metrics whose label values can't grow without bound."""

from __future__ import annotations

import asyncio
import time

import pytest

from sigma_playground.telemetry import metrics
from tests.monitoring.helpers import sample


def test_a_value_outside_the_declared_set_becomes_other_and_is_counted():
    m = metrics.counter("sigma_test_fold_total", "test", {"kind": {"page", "fragment"}})
    folded_before = sample("sigma_metrics_label_folded_total", {"metric": "sigma_test_fold_total"})
    m.inc(kind="page")
    m.inc(kind="user-4711")  # an id, a path or a search term would be the same
    m.inc(kind="/workbooks/12/secret-plans/")
    assert sample("sigma_test_fold_total", {"kind": "page"}) == 1
    assert sample("sigma_test_fold_total", {"kind": "other"}) == 2
    assert sample("sigma_test_fold_total", {"kind": "user-4711"}) == 0
    assert (
        sample("sigma_metrics_label_folded_total", {"metric": "sigma_test_fold_total"}) == folded_before + 2
    )


def test_a_tag_name_that_was_not_declared_is_a_programming_error():
    m = metrics.counter("sigma_test_tagnames_total", "test", {"kind": {"a"}})
    with pytest.raises(ValueError, match="takes tags"):
        m.inc(kind="a", user="42")
    with pytest.raises(ValueError, match="takes tags"):
        m.inc()


def test_declaring_twice_returns_the_same_metric_and_a_different_shape_is_refused():
    first = metrics.histogram("sigma_test_twice_seconds", "test", {"route": {"home"}})
    assert metrics.histogram("sigma_test_twice_seconds", "test", {"route": {"home"}}) is first
    with pytest.raises(ValueError, match="already declared"):
        metrics.histogram("sigma_test_twice_seconds", "test", {"view": {"home"}})
    with pytest.raises(ValueError, match="already declared"):
        metrics.gauge("sigma_test_twice_seconds", "test", {"route": {"home"}})


@pytest.mark.parametrize(
    "kind,name",
    [("counter", "sigma_test_no_suffix"), ("gauge", "test_without_prefix"), ("gauge", "sigma_Bad_Case")],
)
def test_names_follow_the_conventions(kind, name):
    with pytest.raises(ValueError):
        getattr(metrics, kind)(name, "test")


def test_callable_label_sets_are_evaluated_on_first_use():
    calls = []

    def routes():
        calls.append(1)
        return {"home", "workbooks:list"}

    m = metrics.histogram("sigma_test_lazy_seconds", "test", {"route": routes})
    assert calls == []
    m.observe(0.1, route="home")
    m.observe(0.1, route="/raw/path")
    assert calls == [1]
    assert m.allowed_values("route") == {"home", "workbooks:list", "other"}
    assert sample("sigma_test_lazy_seconds_count", {"route": "other"}) == 1


def test_capped_label_sets_close_after_their_limit_and_refuse_odd_values():
    capped = metrics.Capped(limit=2)
    m = metrics.counter("sigma_test_capped_total", "test", {"name": capped})
    for value in ("alpha", "beta", "gamma", "Has Spaces", "alpha"):
        m.inc(name=value)
    assert capped.values == {"alpha", "beta"}
    assert sample("sigma_test_capped_total", {"name": "alpha"}) == 2
    assert sample("sigma_test_capped_total", {"name": "other"}) == 2


def test_the_design_api_by_name_value_timing_counter():
    metrics.histogram("sigma_test_design_seconds", "test", {"op": {"render"}})
    metrics.gauge("sigma_test_design_level", "test")
    metrics.counter("sigma_test_design_total", "test", {"op": {"render"}})

    start = time.perf_counter()
    metrics.record_timing("sigma_test_design_seconds", start, start + 0.25, {"op": "render"})
    metrics.record_value("sigma_test_design_seconds", 0.5, {"op": "render"})
    metrics.record_value("sigma_test_design_level", 7)
    metrics.record_counter("sigma_test_design_total", 3, {"op": "render"})
    with metrics.timer("sigma_test_design_seconds", {"op": "render"}):
        pass

    assert sample("sigma_test_design_seconds_count", {"op": "render"}) == 3
    assert sample("sigma_test_design_seconds_sum", {"op": "render"}) == pytest.approx(0.75, abs=0.01)
    assert sample("sigma_test_design_level") == 7
    assert sample("sigma_test_design_total", {"op": "render"}) == 3
    with pytest.raises(KeyError, match="not declared"):
        metrics.record_counter("sigma_test_never_declared_total")


def test_the_timer_records_a_block_that_raises():
    m = metrics.histogram("sigma_test_raises_seconds", "test")
    with pytest.raises(RuntimeError), m.time():
        raise RuntimeError("boom")
    assert sample("sigma_test_raises_seconds_count") == 1


def test_kind_mismatches_are_refused():
    h = metrics.histogram("sigma_test_kinds_seconds", "test")
    c = metrics.counter("sigma_test_kinds_total", "test")
    with pytest.raises(TypeError):
        h.inc()
    with pytest.raises(TypeError):
        c.observe(1)
    with pytest.raises(TypeError):
        c.set(1)


def test_initialize_creates_every_series_at_zero():
    metrics.counter("sigma_test_init_total", "test", {"result": ("ok", "bad")}, initialize=True)
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("sigma_test_init_total", {"result": "ok"}) == 0
    assert REGISTRY.get_sample_value("sigma_test_init_total", {"result": "other"}) == 0


def test_declared_metrics_are_listed_and_task_and_table_label_sets_are_real():
    from monitoring.instruments import task_names

    declared = metrics.declared()
    assert "sigma_rum_timing_seconds" in declared and "sigma_cache_requests_total" in declared
    assert "monitoring.tasks.beat_heartbeat" in task_names()
    assert "workbooks.tasks.render_thumbnail_derivatives" in task_names()
    assert "sigma_playground.cdn.tasks.purge_pending" in task_names()  # CELERY_IMPORTS, not an app's tasks
    assert not any(name.startswith("celery.") for name in task_names())
    assert "workbooks_workbook" in metrics.model_tables()


def test_the_profile_decorator_works_on_coroutines_too():
    from monitoring.profiling import profiled

    @profiled("test.async_section")
    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    before = sample("sigma_profile_duration_seconds_count", {"name": "test.async_section"})
    assert asyncio.run(work()) == 7
    assert sample("sigma_profile_duration_seconds_count", {"name": "test.async_section"}) == before + 1
