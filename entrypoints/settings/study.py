"""Settings of the study: prompts, participants and conditions, request limits, jobs."""

from __future__ import annotations

from dataclasses import dataclass

from entrypoints.settings.parsing import (
    REPO_ROOT,
    _choice,
    _flag,
    _positive_float,
    _positive_int,
    _roster,
    _setting,
    _text,
)


@dataclass(frozen=True)
class StudySettings:
    """The study: its prompts, its participants and conditions, the limits of a request, jobs."""

    max_num: int = _setting("12", _positive_int, "Largest `num` accepted by /generate.")
    max_image_mb: int = _setting(
        "8", _positive_int, "Largest decoded sketch image accepted, in MB."
    )
    max_task_chars: int = _setting(
        "10000",
        _positive_int,
        "Longest `designTask` /paint/save accepts, in characters (longer: 400 naming the field).",
    )
    prompts_dir: str = _setting(
        str(REPO_ROOT / "prompts"), _text, "Directory of the prompt templates."
    )
    prompts_watch: bool = _setting(
        "true",
        _flag,
        "Watch the prompt sets while serving: a valid edit serves the next generation, a "
        "broken one is refused (docs/prompts.md).",
    )
    prompts_debounce_ms: int = _setting(
        "400",
        _positive_int,
        "Longest wait gathering one burst of prompt file changes into one reload.",
    )
    participants: tuple[str, ...] = _setting(
        "",
        _roster,
        "The study's roster: comma-separated usernames, or @path to a file with one per line "
        '(`username,condition` with `assignment = "roster"` in the study file) '
        "(empty: any username).",
    )
    study_file: str = _setting(
        "",
        _text,
        "TOML file declaring the study's conditions and their assignment (empty: one "
        "condition, `default`, on the prompts directory). See docs/participants-and-conditions.md.",
    )
    secret_key: str = _setting(
        "",
        _text,
        "Key that signs the participant cookie (empty: one is generated once and kept in "
        "the data directory as `secret-key`, mode 0600).",
        secret=True,
    )
    attribute_by_address: bool = _setting(
        "false",
        _flag,
        "Attribute a generation to the only participant whose start or save came from the "
        "same client address within the window (a lab with one computer per participant).",
    )
    attribution_window_s: float = _setting(
        "14400",
        _positive_float,
        "Seconds an address is remembered, and an unattributed generation is looked at again "
        "when a save arrives.",
    )
    # Generation jobs (/api/v1/jobs and `inspilot generate`).
    job_ttl_s: float = _setting(
        "3600", _positive_float, "Seconds a finished job stays readable (result, events, images)."
    )
    jobs_per_user: int = _setting(
        "4", _positive_int, "Running jobs one username may have at once (more: 429)."
    )
    max_jobs: int = _setting(
        "1000",
        _positive_int,
        "Jobs one process holds, running or kept for reading: past it the longest-finished "
        "are forgotten first (their records stay), and when all are running a new one is 429.",
    )
    jobs_backend: str = _setting(
        "memory",
        _choice("memory", "mongodb"),
        "Where jobs' state and events live: memory (one process) or mongodb (read, followed "
        "and cancelled on any worker or replica; docs/scaling.md).",
    )
