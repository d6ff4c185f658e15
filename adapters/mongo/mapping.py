"""Pure mapping between domain objects and MongoDB documents (no I/O, no driver calls)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from domain.attribution import AttributedBy, ConditionBy, Evidence
from domain.errors import StorageError
from domain.experiment import SCHEME_STAGES, ConditionMove, Experiment, Scheme, Stage
from domain.generation import (
    DEFAULT_CONDITION,
    GenerationRecord,
    ImageStep,
    Outcome,
    Pipeline,
    Source,
    TextStep,
    map_sketches,
)
from domain.images import data_uri, decode_data_uri, image_sha256
from domain.stimuli import Shown
from domain.timeline import SaveMark

IMAGE_KEY = "canvasImage"
# The blob kind of a generation's pictures (a finished job keeps its own under it too).
GENERATION_IMAGE = "generation-image"
# A blob at most this size may stay inside its document...
INLINE_MAX = 256 * 1024
# ...while the document's inline bytes stay well below MongoDB's 16 MB limit.
INLINE_BUDGET = 8 * 1024 * 1024

Document = dict[str, Any]


@dataclass(frozen=True)
class Blob:
    """Bytes stored once under their SHA-256 (hex), whatever documents reference them."""

    data: bytes
    sha: str
    kind: str


class BlobPlan:
    """Decides, for one document, which bytes stay inline and which become blobs.

    Blob references are `{"h": sha, "n": size}`; inline ones are `{"b": bytes}`. The
    document lists every blob it references in `blobs` (a list of hashes, indexed), so
    loads and the sweep find them in one field.
    """

    def __init__(self) -> None:
        self.blobs: dict[str, Blob] = {}
        self._budget = INLINE_BUDGET

    def ref(self, data: bytes, kind: str, *, inline_ok: bool = True) -> dict[str, Any]:
        if inline_ok and len(data) <= min(INLINE_MAX, self._budget):
            self._budget -= len(data)
            return {"b": data}
        sha = image_sha256(data)
        self.blobs.setdefault(sha, Blob(data, sha, kind))
        return {"h": sha, "n": len(data)}

    @property
    def hashes(self) -> list[str]:
        return list(self.blobs)


def resolve(ref: Mapping[str, Any], files: Mapping[str, bytes]) -> bytes:
    """The bytes of a reference; KeyError when its blob was not loaded."""
    if "b" in ref:
        return bytes(ref["b"])
    return files[ref["h"]]


def _as_json(value: object) -> object:
    # Schemes arrive as dicts, but the port allows any Mapping.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _as_json_or_text(value: object) -> object:
    return dict(value) if isinstance(value, Mapping) else str(value)


def dump_json(value: Any, *, lenient: bool = False) -> bytes:
    """Exact JSON: key order kept, unicode unescaped, lone surrogates survive."""
    text = json.dumps(
        value,
        ensure_ascii=False,
        separators=(",", ":"),
        default=_as_json_or_text if lenient else _as_json,
    )
    return text.encode("utf-8", "surrogatepass")


def load_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "surrogatepass"))


def _stage_field(stage: Stage) -> str:
    # ASCII field names keep ad-hoc mongosh queries easy to type.
    return stage.name.lower()


def _encode_scheme(scheme: Scheme, plan: BlobPlan) -> Document:
    image = scheme.get(IMAGE_KEY) if isinstance(scheme, Mapping) else None
    if not isinstance(image, str):
        return {"body": plan.ref(dump_json(scheme), "scheme-body")}
    body = {key: value for key, value in scheme.items() if key != IMAGE_KEY}
    return {
        "body": plan.ref(dump_json(body), "scheme-body"),
        "image": plan.ref(image.encode("utf-8", "surrogatepass"), "scheme-image", inline_ok=False),
        # Where the image key sat, so the scheme comes back with the same key order.
        "image_at": list(scheme).index(IMAGE_KEY),
    }


def _decode_scheme(entry: Mapping[str, Any], files: Mapping[str, bytes]) -> Scheme:
    body = load_json(resolve(entry["body"], files))
    if "image" not in entry:
        return body
    items = list(body.items())
    image = resolve(entry["image"], files).decode("utf-8", "surrogatepass")
    items.insert(entry["image_at"], (IMAGE_KEY, image))
    return dict(items)


def encode_session_state(experiment: Experiment) -> tuple[Document, BlobPlan]:
    """The fields a save replaces (never _id, username or created_at) and their blobs."""
    plan = BlobPlan()
    try:
        schemes = {
            _stage_field(stage): [_encode_scheme(s, plan) for s in experiment.schemes_of(stage)]
            for stage in SCHEME_STAGES
        }
    except (TypeError, ValueError) as exc:
        raise StorageError(
            f"storage: a scheme of '{experiment.username}' is not JSON: {exc}"
        ) from exc
    state = {
        "current_stage": experiment.current_stage.value,
        "design_task": experiment.design_task,
        "updated_at": experiment.updated_at,
        "schemes": schemes,
        # Indexed: a type 3 `/generate` names its participant by notes equal to a scheme's.
        # (Sketches need no field of their own: their blob hashes are in `blobs`.)
        "text_keys": text_keys(experiment),
    }
    return state, plan


def text_keys(experiment: Experiment) -> list[str]:
    schemes = (s for stage in SCHEME_STAGES for s in experiment.schemes_of(stage))
    return sorted(Evidence.of_schemes(schemes).texts)


def new_session_document(experiment: Experiment) -> tuple[Document, BlobPlan]:
    state, plan = encode_session_state(experiment)
    document = {
        "_id": experiment.id,
        "username": experiment.username,
        "created_at": experiment.created_at,
        "revision": 0,
        "save_seq": 0,
        "condition": experiment.condition,
        "condition_moves": [],
        **state,
    }
    return document, plan


def encode_move(move: ConditionMove) -> Document:
    return {"from": move.from_condition, "to": move.to_condition, "at": move.at}


def decode_session(document: Mapping[str, Any], files: Mapping[str, bytes]) -> Experiment:
    stored = document.get("schemes", {})
    schemes = {
        stage: tuple(_decode_scheme(entry, files) for entry in stored.get(_stage_field(stage), []))
        for stage in SCHEME_STAGES
    }
    return Experiment(
        username=document["username"],
        id=document["_id"],
        current_stage=Stage(document["current_stage"]),
        design_task=document["design_task"],
        schemes=schemes,
        created_at=document.get("created_at"),
        updated_at=document.get("updated_at"),
        condition=document.get("condition"),
        condition_moves=tuple(
            ConditionMove(move.get("from"), move["to"], move["at"])
            for move in document.get("condition_moves", [])
        ),
    )


def encode_save_mark(experiment: Experiment) -> Document | None:
    if experiment.updated_at is None:
        return None
    mark = SaveMark.of(experiment, experiment.updated_at)
    return {"at": mark.at, "stage": mark.stage.value, "schemes": list(mark.schemes)}


def decode_save_marks(documents: list[Mapping[str, Any]]) -> list[SaveMark]:
    return [
        SaveMark(item["at"], Stage(item["stage"]), tuple(item["schemes"])) for item in documents
    ]


def inline_size(document: Mapping[str, Any]) -> int:
    """Bytes of scheme JSON kept inside a session document (its blobs not counted)."""
    total = 0
    for entries in document.get("schemes", {}).values():
        for entry in entries:
            for ref in (entry.get("body"), entry.get("image")):
                if ref and "b" in ref:
                    total += len(ref["b"])
    return total


def blob_hashes(document: Mapping[str, Any]) -> set[str]:
    return set(document.get("blobs", []))


def _step_fields(step: TextStep | ImageStep | Shown) -> Document:
    # Generic over the dataclass fields, so a field added with a default keeps old records readable.
    return {f.name: getattr(step, f.name) for f in fields(step)}


_SKETCH_REF = "$sketch"


def _store_sketches(inputs: Any, plan: BlobPlan) -> tuple[Any, list[str]]:
    """The inputs with each sketch's data URI replaced by a reference to its picture,
    stored once as a blob (the same sketch sent again, or in 48 schemes, is one blob)."""
    hashes: list[str] = []

    def stored(value: Any) -> Any:
        data = decode_data_uri(value)
        if data is None:
            return value
        ref = plan.ref(data, "generation-sketch", inline_ok=False)
        hashes.append(ref["h"])
        return {_SKETCH_REF: ref, "type": value[len("data:") : value.index(";")]}

    return map_sketches(inputs, stored), hashes


def _load_sketches(inputs: Any, files: Mapping[str, bytes]) -> Any:
    def loaded(value: Any) -> Any:
        if isinstance(value, dict) and _SKETCH_REF in value:
            return data_uri(resolve(value[_SKETCH_REF], files), value["type"])
        return value

    return map_sketches(inputs, loaded)


def encode_generation(record: GenerationRecord) -> tuple[Document, BlobPlan]:
    plan = BlobPlan()
    inputs, sketches = _store_sketches(record.inputs, plan)
    text_steps = [
        {
            **_step_fields(s),
            "items": list(s.items),
            "choices": list(s.choices),
            "image_sizes": list(s.image_sizes),
        }
        for s in record.text_steps
    ]
    image_steps = []
    for step in record.image_steps:
        encoded = _step_fields(step)
        if step.image is not None:
            encoded["image"] = plan.ref(step.image, GENERATION_IMAGE, inline_ok=False)
        image_steps.append(encoded)
    document = {
        "_id": record.id,
        "username": record.username,
        "pipeline": record.pipeline.value,
        "outcome": record.outcome.value,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "error": record.error,
        "error_type": record.error_type,
        "request_id": record.request_id,
        "source": None if record.source is None else record.source.value,
        # Research logs: a value JSON cannot express is kept as text rather than losing the record.
        "inputs": plan.ref(dump_json(inputs, lenient=True), "generation-json"),
        "sketches": sketches,
        "stimuli": [_step_fields(shown) for shown in record.stimuli],
        "result": plan.ref(dump_json(record.result, lenient=True), "generation-json"),
        "text_steps": text_steps,
        "image_steps": image_steps,
        "attributed_by": None if record.attributed_by is None else record.attributed_by.value,
        "attributed_at": record.attributed_at,
        "condition": record.condition,
        "condition_by": record.condition_by.value,
        "evidence": encode_evidence(record.evidence),
    }
    return document, plan


def encode_evidence(evidence: Evidence) -> Document:
    return {
        "sketches": sorted(evidence.sketches),
        "texts": sorted(evidence.texts),
        "address": evidence.address,
    }


def decode_evidence(document: Mapping[str, Any] | None) -> Evidence:
    document = document or {}
    return Evidence(
        frozenset(document.get("sketches", ())),
        frozenset(document.get("texts", ())),
        document.get("address"),
    )


def without_images(document: Mapping[str, Any]) -> Document:
    """A record's document with its image references dropped, so only inputs and result
    are fetched from GridFS: listings stay light however many pictures a record holds."""
    needed = {
        ref["h"] for ref in (document.get("inputs"), document.get("result")) if ref and "h" in ref
    } | set(document.get("sketches", []))
    return {
        **document,
        "image_steps": [
            {key: value for key, value in step.items() if key != "image"}
            for step in document.get("image_steps", [])
        ],
        "blobs": [sha for sha in document.get("blobs", []) if sha in needed],
    }


def decode_generation(document: Mapping[str, Any], files: Mapping[str, bytes]) -> GenerationRecord:
    text_steps = tuple(
        TextStep(
            **{
                **step,
                "items": tuple(step.get("items", ())),
                "choices": tuple(step.get("choices", ())),
                "image_sizes": tuple(step.get("image_sizes", ())),
            }
        )
        for step in document.get("text_steps", [])
    )
    image_steps = tuple(
        ImageStep(
            **{
                **step,
                "image": resolve(step["image"], files) if step.get("image") else None,
                # Seeds beyond 2**31 come back as bson.Int64; the domain holds plain ints.
                "seed": None if step.get("seed") is None else int(step["seed"]),
            }
        )
        for step in document.get("image_steps", [])
    )
    return GenerationRecord(
        id=document["_id"],
        username=document.get("username"),
        pipeline=Pipeline(document["pipeline"]),
        outcome=Outcome.stored(
            document["outcome"], document.get("error_type"), document.get("error")
        ),
        started_at=document["started_at"],
        finished_at=document["finished_at"],
        error=document.get("error"),
        error_type=document.get("error_type"),
        request_id=document.get("request_id"),
        source=Source(document["source"]) if document.get("source") else None,
        inputs=_load_sketches(load_json(resolve(document["inputs"], files)), files),
        result=load_json(resolve(document["result"], files)),
        text_steps=text_steps,
        image_steps=image_steps,
        stimuli=tuple(Shown(**shown) for shown in document.get("stimuli", [])),
        attributed_by=AttributedBy(by) if (by := document.get("attributed_by")) else None,
        attributed_at=document.get("attributed_at"),
        condition=document.get("condition") or DEFAULT_CONDITION,
        condition_by=ConditionBy(document.get("condition_by") or ConditionBy.DEFAULT),
        evidence=decode_evidence(document.get("evidence")),
    )
