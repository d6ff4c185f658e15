"""The composition root: one container picks every adapter from the settings."""

from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from adapters.demo_images import DemoImageGenerator
from adapters.demo_text import DemoTextGenerator
from adapters.filesystem_prompts import FilesystemPromptCatalog
from adapters.memory_access import InMemoryAccessRecords
from adapters.memory_repository import InMemoryExperimentRepository
from adapters.prompt_watcher import PromptWatcher
from adapters.system_clock import SystemClock
from application.attribution import Attributor, RunContexts
from application.concurrency import ByteBudget
from application.dashboard_access import DashboardAccess
from application.generation_run import ModelGateway
from application.job_board import OrphanRecorder
from application.jobs import JobService
from application.monitoring import RunMonitor
from application.record_writer import RecordWriter
from application.steps import IMAGE_KINDS, IMAGE_POSITIVE, TEXT_STEPS
from application.study import ConditionAssigner, MoveParticipant
from application.use_cases.research import (
    ChooseGenerations,
    GetGeneration,
    GetGenerationImage,
    GetSession,
    ListGenerations,
    ListParticipants,
    ListSaves,
    StudyReading,
)
from application.use_cases.sessions import SaveSession, StartSession
from domain.experiment import Roster
from entrypoints import adapter_builders
from entrypoints.http.client import ClientView
from entrypoints.http.free_space import FreeSpace
from entrypoints.http.participant_cookie import ParticipantCookies
from entrypoints.observability.health import Readiness
from entrypoints.observability.logs import current_request_id
from entrypoints.observability.metrics import MetricsExposition, ServiceMetrics
from entrypoints.observability.sources import MonitoredAdapters
from entrypoints.secret_key import signing_key
from entrypoints.settings import Settings
from entrypoints.study_file import load_study, served_prompt_sets


def _present_job_result(job: Any) -> Any:
    """A done job's result as clients read it, for the job board (the HTTP layer's spelling;
    imported here, not at the top: the HTTP layer imports this module)."""
    from entrypoints.http.jobs import present_result

    return present_result(job)


def _cookie_key(settings: Settings) -> bytes:
    ephemeral = settings.storage_backend == "memory"
    return signing_key(settings.secret_key, settings.data_dir, ephemeral=ephemeral)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    roster = providers.Singleton(Roster.of, settings.provided.participants)
    prompts = providers.Singleton(
        FilesystemPromptCatalog,
        directory=settings.provided.prompts_dir,
        text_steps=TEXT_STEPS,
        image_kinds=IMAGE_KINDS,
        positive_spec=IMAGE_POSITIVE,
    )

    # The study: its conditions, each prompt set checked when it is built.
    study = providers.Singleton(load_study, settings, prompts)
    # Every prompt set the service serves (each condition's, once), for the watcher,
    # readiness and the dashboard.
    prompt_catalogs = providers.Callable(served_prompt_sets, study)
    prompt_watcher = providers.Singleton(
        PromptWatcher,
        catalogs=prompt_catalogs,
        debounce_ms=settings.provided.prompts_debounce_ms,
        enabled=settings.provided.prompts_watch,
    )
    store: providers.Provider[Any] = providers.Selector(
        settings.provided.storage_backend,
        memory=providers.Singleton(InMemoryExperimentRepository),
        mongodb=providers.Singleton(adapter_builders.mongodb_repository, settings),
        embedded=providers.Singleton(adapter_builders.embedded_repository, settings),
    )

    # One adapter whichever syntax configured the text model (a one-entry list for the
    # AZURE_OPENAI_* and OPENAI_* variables), built once.
    chat_completions = providers.Singleton(adapter_builders.text_generator, settings)
    text_generator: providers.Provider[Any] = providers.Selector(
        settings.provided.text_backend,
        demo=providers.Singleton(
            DemoTextGenerator, latency_s=settings.provided.demo_text_latency_s
        ),
        azure=chat_completions,
        openai=chat_completions,
        endpoints=chat_completions,
    )
    image_generator: providers.Provider[Any] = providers.Selector(
        settings.provided.images_backend,
        demo=providers.Singleton(
            DemoImageGenerator, latency_s=settings.provided.demo_image_latency_s
        ),
        sd=providers.Singleton(adapter_builders.sd_image_generator, settings, store),
    )
    # Every use case sees the store through the record writer: records are written in
    # the background, sessions straight through.
    repository = providers.Singleton(
        RecordWriter,
        store=store,
        queue_max=settings.provided.record_queue_max,
        shutdown_grace_s=settings.provided.shutdown_grace_s,
    )

    # Monitoring: counters for /metrics (which also reads the adapters at scrape time),
    # and the runs in flight and recent text errors for the dashboard's "now" panel.
    metrics = providers.Singleton(ServiceMetrics)
    run_monitor = providers.Singleton(RunMonitor)
    # Built per request from the providers above, so a test's override is seen at once.
    monitored_adapters = providers.Factory(
        MonitoredAdapters, images=image_generator, text=text_generator, repository=repository
    )
    metrics_exposition = providers.Factory(
        MetricsExposition, metrics=metrics, adapters=monitored_adapters
    )
    # The data disk's free space: the store guard, readiness and the dashboard read it.
    free_space = providers.Singleton(FreeSpace.of, settings)
    readiness = providers.Factory(
        Readiness,
        settings=settings,
        free_space=free_space,
        repository=repository,
        load_prompts=prompt_catalogs.provider,
        images=image_generator,
    )
    # Read from the configuration, not the frozen Settings, each time it is asked for:
    # tests set it after building the container.
    research_token = settings.provided.research_token
    # Dashboard sessions and the wrong-token counters: in the database wherever it is
    # MongoDB, so every worker and replica sees the same ones; in the process otherwise.
    shared_access_records = providers.Singleton(
        adapter_builders.mongodb_access_records, settings, store
    )
    access_records: providers.Provider[Any] = providers.Selector(
        settings.provided.storage_backend,
        memory=providers.Singleton(InMemoryAccessRecords),
        mongodb=shared_access_records,
        embedded=shared_access_records,
    )
    dashboard_access = providers.Singleton(
        DashboardAccess,
        records=access_records,
        clock=clock,
        session_h=settings.provided.dashboard_session_h,
    )

    # Participants and conditions: the attribution rules, the assignment of first starts.
    attributor = providers.Singleton(
        Attributor,
        repository=repository,
        clock=clock,
        by_address=settings.provided.attribute_by_address,
        window_s=settings.provided.attribution_window_s,
    )
    assigner = providers.Singleton(
        ConditionAssigner, study=study, repository=repository, roster=roster
    )
    run_contexts = providers.Singleton(
        RunContexts, study=study, attributor=attributor, repository=repository
    )
    participant_cookies = providers.Singleton(
        ParticipantCookies, providers.Callable(_cookie_key, settings)
    )
    client_view = providers.Singleton(ClientView, settings.provided.trusted_proxies)
    move_participant = providers.Factory(
        MoveParticipant, study=study, repository=repository, clock=clock
    )

    gateway = providers.Singleton(
        ModelGateway,
        text=text_generator,
        images=image_generator,
        prompts=prompts,
        repository=repository,
        clock=clock,
        list_attempts=settings.provided.list_attempts,
        observers=providers.List(metrics, run_monitor),
        request_id=providers.Object(current_request_id),
        roster=roster,
        attributor=attributor,
    )

    start_session = providers.Factory(
        StartSession,
        repository=repository,
        clock=clock,
        roster=roster,
        assigner=assigner,
        attributor=attributor,
    )
    save_session = providers.Factory(
        SaveSession, repository=repository, clock=clock, roster=roster, attributor=attributor
    )
    # Session bytes being decoded and stored at once (their bodies' sizes), all saves.
    saving = providers.Singleton(
        ByteBudget,
        providers.Callable(lambda mb: mb * 1024 * 1024, settings.provided.max_saving_mb),
    )
    job_board: providers.Provider[Any] = providers.Selector(
        settings.provided.jobs_backend,
        memory=providers.Object(None),
        mongodb=providers.Singleton(adapter_builders.mongodb_job_board, settings, store),
    )
    jobs = providers.Singleton(
        JobService,
        clock=clock,
        ttl_s=settings.provided.job_ttl_s,
        per_user=settings.provided.jobs_per_user,
        board=job_board,
        present=providers.Object(_present_job_result),
        record_orphan=providers.Singleton(OrphanRecorder, repository=repository, clock=clock),
        # A replica beats three times a lease: one late beat is not taken for its death.
        beat_s=providers.Callable(lambda lease_s: lease_s / 3, settings.provided.sd_lease_s),
        max_jobs=settings.provided.max_jobs,
        # A finished job's pictures go to the store itself, not the record queue.
        pictures=store,
    )

    get_session = providers.Factory(GetSession, repository=repository)
    list_generations = providers.Factory(ListGenerations, repository=repository)
    get_generation = providers.Factory(GetGeneration, repository=repository)
    get_generation_image = providers.Factory(GetGenerationImage, repository=repository)
    # The dashboard reads through the research API's use cases, and three of its own.
    study_reading = providers.Factory(
        StudyReading,
        get_session=get_session,
        list_generations=list_generations,
        get_generation=get_generation,
        list_participants=providers.Factory(ListParticipants, repository=repository),
        list_saves=providers.Factory(ListSaves, repository=repository),
        choose_generations=providers.Factory(ChooseGenerations, repository=repository),
    )


def build_container(settings: Settings | None = None) -> Container:
    """A container built from `settings` (default: the environment), its only input:
    every provider reads the one Settings object, so a test builds the settings it needs."""
    settings = settings or Settings.load()
    container = Container()
    container.settings.override(providers.Object(settings))
    return container
