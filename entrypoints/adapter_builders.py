"""Builders that turn settings into the real adapters (empty settings mean "not given").

Imports of SDK-heavy or optional adapters stay inside the builders, so choosing the
demo backends never imports them and the GPL embedded server is imported only when chosen.
"""

from __future__ import annotations

from typing import Any

from entrypoints.settings import Settings
from entrypoints.text_endpoints import TextEndpointEntry


def text_endpoint_entries(settings: Settings) -> tuple[TextEndpointEntry, ...]:
    """The text model as one list of endpoints, whichever syntax configured it:
    `AZURE_OPENAI_*` and `OPENAI_*` are a one-entry list named `azure` or `openai`."""
    if settings.text_backend == "azure":
        deployment = settings.azure_openai_deployment
        return (
            TextEndpointEntry(
                name="azure",
                kind="azure",
                url=settings.azure_openai_endpoint,
                model=deployment,
                vision_model=settings.azure_openai_vision_deployment or deployment,
                api_version=settings.azure_openai_api_version,
                use_entra_id=settings.azure_openai_use_entra_id,
                api_key=None
                if settings.azure_openai_use_entra_id
                else settings.azure_openai_api_key,
            ),
        )
    if settings.text_backend == "openai":
        model = settings.openai_model
        return (
            TextEndpointEntry(
                name="openai",
                kind="openai",
                url=settings.openai_base_url,
                model=model,
                # Most chat models today also see images.
                vision_model=settings.openai_vision_model or model,
                api_key=settings.openai_api_key or None,
            ),
        )
    return settings.text_endpoints


def text_generator(settings: Settings) -> Any:
    """The one text adapter: chat completions over the configured endpoints."""
    from adapters.openai_text import ChatCompletionsTextGenerator, TextEndpoint

    endpoints = []
    for entry in text_endpoint_entries(settings):
        shared: dict[str, Any] = {
            "weight": entry.weight,
            "max_concurrency": entry.max_concurrency or settings.text_concurrency,
        }
        if entry.kind == "azure":
            endpoint = TextEndpoint.azure(
                entry.name,
                endpoint=entry.url,
                api_version=entry.api_version or settings.azure_openai_api_version,
                deployment=entry.model,
                vision_deployment=entry.vision_model,
                api_key=entry.api_key,
                use_entra_id=entry.use_entra_id,
                **shared,
            )
        else:
            endpoint = TextEndpoint.openai(
                entry.name,
                base_url=entry.url or None,
                api_key=entry.api_key,
                model=entry.model,
                vision_model=entry.vision_model,
                **shared,
            )
        endpoints.append(endpoint)
    return ChatCompletionsTextGenerator(
        endpoints,
        step_deadline_s=settings.text_deadline_s,
        structured_choices=settings.text_structured_choices,
        vision_max_side=settings.vision_max_side,
    )


def sd_image_generator(settings: Settings, store: Any) -> Any:
    """The SD pool; with INSPILOT_SD_LEDGER=mongodb its slots live in the store's database,
    whose address is known once the store has started (the embedded server's port)."""
    from adapters.sd_webui import SdWebUIImageGenerator, SharedLedger

    ledger = None
    if settings.sd_ledger == "mongodb":
        ledger = SharedLedger(
            lambda: store.uri,
            settings.mongodb_database,
            lease_s=settings.sd_lease_s,
            timeout_ms=settings.mongodb_timeout_ms,
        )
    return SdWebUIImageGenerator(
        settings.sd_instances,
        slots_per_instance=settings.sd_slots_per_instance,
        queue_max=settings.sd_queue_max,
        max_queue_wait_s=settings.sd_queue_wait_s,
        timeout_s=settings.sd_timeout_s,
        health_interval_s=settings.sd_health_interval_s,
        ledger=ledger,
    )


def mongodb_repository(settings: Settings) -> Any:
    from adapters.mongo import MongoExperimentRepository

    return MongoExperimentRepository(
        settings.mongodb_uri, settings.mongodb_database, settings.mongodb_timeout_ms
    )


def embedded_repository(settings: Settings) -> Any:
    from adapters.embedded_mongo import EmbeddedMongoExperimentRepository

    return EmbeddedMongoExperimentRepository(
        settings.data_dir,
        settings.mongodb_database,
        settings.mongodb_timeout_ms,
        cache_mb=settings.embedded_cache_mb,
        unanswered_s=settings.storage_unanswered_s,
    )


def mongodb_job_board(settings: Settings, store: Any) -> Any:
    """Jobs shared by every replica, in the store's database (known once it started)."""
    from adapters.mongo.job_board import MongoJobBoard

    return MongoJobBoard(
        lambda: store.uri,
        settings.mongodb_database,
        ttl_s=settings.job_ttl_s,
        lease_s=settings.sd_lease_s,
        timeout_ms=settings.mongodb_timeout_ms,
    )


def mongodb_access_records(settings: Settings, store: Any) -> Any:
    """Dashboard sessions and wrong-token counters shared by every worker and replica, in
    the store's database (known once it started)."""
    from adapters.mongo.access_records import MongoAccessRecords

    return MongoAccessRecords(
        lambda: store.uri, settings.mongodb_database, timeout_ms=settings.mongodb_timeout_ms
    )
