"""Prometheus metrics: counters fed by requests and finished runs, pool figures read at scrape.

Labels never carry participant data: routes are templates (`/api/v1/sessions/{username}`),
never paths, and nothing is labelled by username or task.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from application.durations import WAIT_BUCKETS_S, DurationCounts
from application.ports import GenerationObserver, RunStarted
from domain.generation import GenerationRecord, TextStep
from entrypoints.observability.sources import MonitoredAdapters

# Every counter would also export a `<name>_created` series (its creation time), which
# Prometheus users never query and which doubles the series count.
disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_ROUTE = "unmatched"

_GENERATION_BUCKETS = (1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
_TEXT_STEP_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


def build_version() -> str:
    try:
        return version("inspilot-api")
    except PackageNotFoundError:
        return "unknown"


def status_class(status: int) -> str:
    """`2xx`, `4xx`...: the histogram's label, few enough values to keep series bounded."""
    return f"{status // 100}xx"


def text_step_outcome(step: TextStep) -> str:
    """succeeded; unusable (an answer the parser could not fit); failed (no answer)."""
    if step.error is None:
        return "succeeded"
    return "unusable" if step.raw_answer is not None else "failed"


class ServiceMetrics(GenerationObserver):
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # The standard process_* (CPU, memory, open files) and python_info series.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        Gauge(
            "inspilot_build_info",
            "The running version (always 1).",
            ["version"],
            registry=self.registry,
        ).labels(build_version()).set(1)
        self.http_requests = Counter(
            "inspilot_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "inspilot_http_request_seconds",
            "Time to answer an HTTP request, by route template, method and status class.",
            ["route", "method", "status_class"],
            registry=self.registry,
        )
        self.generations = Counter(
            "inspilot_generations",
            "Pipeline runs finished, by pipeline and outcome "
            "(succeeded, failed, cancelled, abandoned).",
            ["pipeline", "outcome"],
            registry=self.registry,
        )
        self.generation_seconds = Histogram(
            "inspilot_generation_seconds",
            "Duration of a pipeline run, by pipeline.",
            ["pipeline"],
            buckets=_GENERATION_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "inspilot_generations_in_flight",
            "Pipeline runs started and not finished.",
            registry=self.registry,
        )
        self.text_steps = Counter(
            "inspilot_text_steps",
            "Text model attempts, by outcome (succeeded, unusable, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.text_step_seconds = Histogram(
            "inspilot_text_step_seconds",
            "Duration of one text model attempt, by step (its template key).",
            ["step"],
            buckets=_TEXT_STEP_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route, method, status_class(status)).observe(seconds)

    def run_started(self, run: RunStarted) -> None:
        self.in_flight.inc()

    def run_finished(self, record: GenerationRecord) -> None:
        self.in_flight.dec()
        pipeline = record.pipeline.value
        self.generations.labels(pipeline, record.outcome.value).inc()
        self.generation_seconds.labels(pipeline).observe(max(record.duration_s, 0.0))
        for step in record.text_steps:
            self.text_steps.labels(text_step_outcome(step)).inc()
            seconds = (step.finished_at - step.started_at).total_seconds()
            self.text_step_seconds.labels(step.name).observe(max(seconds, 0.0))


@dataclass(frozen=True)
class MetricsExposition:
    """One scrape of `/metrics`, provided per request by the container."""

    metrics: ServiceMetrics
    adapters: MonitoredAdapters

    def render(self) -> bytes:
        """Counters kept here, then what the adapters report right now."""
        scraped = CollectorRegistry()
        scraped.register(_ScrapeTimeCollector(self.adapters))
        return generate_latest(self.metrics.registry) + generate_latest(scraped)


class _ScrapeTimeCollector(Collector):
    """Figures the adapters already keep, read when Prometheus scrapes: the SD pool's hot
    path carries no metrics code, and the figures cannot drift from what the pool decides."""

    def __init__(self, adapters: MonitoredAdapters) -> None:
        self._adapters = adapters

    def collect(self) -> Iterator[Metric]:
        yield from _sd_families(self._adapters.pool_stats())
        yield from _record_families(self._adapters.record_queue())
        yield from _text_endpoint_families(self._adapters.endpoint_stats())


def _sd_families(stats: Any | None) -> Iterable[Metric]:
    healthy = GaugeMetricFamily(
        "inspilot_sd_instance_healthy",
        "1 when the SD instance passes its probes.",
        labels=["instance"],
    )
    busy = GaugeMetricFamily(
        "inspilot_sd_instance_busy", "Slots of the SD instance rendering now.", labels=["instance"]
    )
    jobs = CounterMetricFamily(
        "inspilot_sd_jobs",
        "Jobs an SD instance finished, by outcome (succeeded, failed, cancelled).",
        labels=["instance", "outcome"],
    )
    render = HistogramMetricFamily(
        "inspilot_sd_render_seconds",
        "Time an SD instance's slot was held per finished job.",
        labels=["instance"],
    )
    queue = GaugeMetricFamily("inspilot_sd_queue_depth", "Image jobs waiting for a free slot.")
    wait = HistogramMetricFamily(
        "inspilot_sd_queue_wait_seconds", "Time image jobs waited for a slot."
    )
    if stats is not None:
        waits = []
        for item in stats.instances:
            label = [item.instance]
            finished = max(item.jobs - item.busy, 0)
            healthy.add_metric(label, 1.0 if item.healthy else 0.0)
            busy.add_metric(label, item.busy)
            succeeded = max(finished - item.failures - item.cancelled, 0)
            jobs.add_metric([item.instance, "succeeded"], succeeded)
            jobs.add_metric([item.instance, "failed"], item.failures)
            jobs.add_metric([item.instance, "cancelled"], item.cancelled)
            if item.render_counts is not None:
                render.add_metric(label, *_histogram(item.render_counts))
            if item.wait_counts is not None:
                waits.append(item.wait_counts)
        queue.add_metric([], stats.queue_length)
        wait.add_metric([], *_histogram(DurationCounts.merged(WAIT_BUCKETS_S, waits)))
    return (healthy, busy, jobs, render, queue, wait)


def _histogram(counts: DurationCounts) -> tuple[list[tuple[str, float]], float]:
    """Buckets (cumulative, ending with +Inf) and sum, as HistogramMetricFamily takes them."""
    pairs = zip(counts.bounds, counts.cumulative, strict=True)
    buckets = [(floatToGoString(bound), float(n)) for bound, n in pairs]
    return [*buckets, ("+Inf", float(counts.count))], counts.sum_s


def _record_families(writer: Any | None) -> Iterable[Metric]:
    depth = GaugeMetricFamily(
        "inspilot_record_queue_depth", "Generation records waiting to be written."
    )
    failures = CounterMetricFamily(
        "inspilot_record_failures", "Generation records the writer could not store."
    )
    if writer is not None:
        depth.add_metric([], writer.depth())
        failures.add_metric([], writer.failures())
    return (depth, failures)


def _text_endpoint_families(rows: list[dict[str, Any]]) -> Iterable[Metric]:
    """The text adapter's per-endpoint stats; the adapter decides what it counts.

    A numeric field becomes the gauge `inspilot_text_endpoint_<field>{endpoint}`, or the
    counter of that name when the field ends in `_total` (`cooldowns_total`); a mapping
    of counts becomes the counter `inspilot_text_<field>_total{endpoint,outcome}`
    (`calls` by outcome: `inspilot_text_calls_total`).
    """
    Family = CounterMetricFamily | GaugeMetricFamily
    families: dict[str, Family] = {}

    def family(
        key: str,
        kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
        name: str,
        labels: list[str],
    ) -> Any:
        if key not in families:
            what = f"Text endpoint figure '{key}' as the text adapter reports it."
            families[key] = kind(name, what, labels=labels)
        return families[key]

    for row in rows:
        endpoint = str(row.get("endpoint", ""))
        for key, value in row.items():
            if isinstance(value, dict):
                counts = family(
                    key, CounterMetricFamily, f"inspilot_text_{key}", ["endpoint", "outcome"]
                )
                for outcome, count in value.items():
                    counts.add_metric([endpoint, str(outcome)], float(count))
            elif key != "endpoint" and isinstance(value, int | float):
                counter = key.endswith("_total")
                name = f"inspilot_text_endpoint_{key.removesuffix('_total')}"
                kind = CounterMetricFamily if counter else GaugeMetricFamily
                family(key, kind, name, ["endpoint"]).add_metric([endpoint], float(value))
    return families.values()
