"""Read-only queries for researchers: the overview and the export's selection of a study.

They read light projections; whole sessions and records are then loaded one at a time
by the repository, so an export of any size holds one participant or record at once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from application.ports import ParticipantSummary, StudyFilter
from domain.experiment import Stage
from domain.generation import DEFAULT_CONDITION, Outcome

Collection = AsyncCollection[dict[str, Any]]

_SESSION_FIELDS = {"username": 1, "current_stage": 1, "design_task": 1, "condition": 1}
_SESSION_TIMES = {"created_at": 1, "updated_at": 1}


async def participant_summaries(
    sessions: Collection, generations: Collection
) -> list[ParticipantSummary]:
    """Sessions by username, with counts from one pass over the records' three small fields.

    Counting in Python rather than with $group keeps to queries every MongoDB-wire
    server answers alike (the embedded one included); the pass reads a few bytes per record.
    """
    generated: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    latest: dict[str, datetime] = {}
    fields = {"username": 1, "outcome": 1, "started_at": 1}
    async for record in generations.find({}, projection=fields):
        username = record.get("username")
        if not username:
            continue
        generated[username] += 1
        if record.get("outcome") == Outcome.FAILED.value:
            failed[username] += 1
        started = record.get("started_at")
        if started is not None and (username not in latest or started > latest[username]):
            latest[username] = started
    summaries = []
    cursor = sessions.find({}, projection={**_SESSION_FIELDS, **_SESSION_TIMES})
    async for session in cursor.sort("username", ASCENDING):
        username = session["username"]
        summaries.append(
            ParticipantSummary(
                username=username,
                current_stage=Stage(session["current_stage"]),
                design_task=session.get("design_task", ""),
                created_at=session.get("created_at"),
                updated_at=session.get("updated_at"),
                generations=generated.get(username, 0),
                failures=failed.get(username, 0),
                last_generation_at=latest.get(username),
                condition=session.get("condition"),
            )
        )
    return summaries


def study_query(study: StudyFilter, time_field: str) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if study.usernames is not None:
        query["username"] = {"$in": sorted(study.usernames)}
    if study.conditions is not None:
        wanted: list[str | None] = [*sorted(study.conditions)]
        if DEFAULT_CONDITION in study.conditions:
            wanted.append(None)  # written before the service knew conditions
        query["condition"] = {"$in": wanted}
    window: dict[str, datetime] = {}
    if study.since is not None:
        window["$gte"] = study.since
    if study.until is not None:
        window["$lt"] = study.until
    if window:
        query[time_field] = window
    return query


async def chosen_usernames(sessions: Collection, study: StudyFilter) -> list[str]:
    cursor = sessions.find(study_query(study, "updated_at"), projection={"username": 1})
    return [document["username"] async for document in cursor.sort("username", ASCENDING)]


async def chosen_record_ids(generations: Collection, study: StudyFilter) -> list[str]:
    """Ids only (a few bytes each), so no cursor stays open while an export streams."""
    cursor = generations.find(study_query(study, "started_at"), projection={"_id": 1})
    return [document["_id"] async for document in cursor.sort("started_at", ASCENDING)]
