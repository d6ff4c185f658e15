"""Request bodies as typed, documented parameters that are decoded when and where we choose.

Litestar would decode a `data` parameter on the event loop with its own error messages.
`JsonBody[T]` hands the handler the raw bytes instead, while the OpenAPI document shows
`T`: the handler decodes them in one pass (in a worker thread past about 1 MB, for whole
sessions of sketches) with refusals in the client's field names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any, Generic, TypedDict, TypeVar

from litestar.dto import AbstractDTO
from litestar.openapi.spec import Reference, Schema
from litestar.typing import FieldDefinition

T = TypeVar("T")
R = TypeVar("R")
LARGE_BODY_BYTES = 1_000_000


class JsonBody(Generic[T]):
    """A JSON body documented as `T`, still in bytes."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    async def decode(self, decoder: Callable[[bytes], R]) -> R:
        """`decoder(raw)`, off the event loop when the body is large."""
        if len(self.raw) > LARGE_BODY_BYTES:
            return await asyncio.to_thread(decoder, self.raw)
        return decoder(self.raw)


class JsonBodyDTO(AbstractDTO[Any]):
    """Litestar's hook for a handler's `data`: the body schema from `T`, the bytes as they came."""

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        return None  # nothing to prepare: the handler decodes

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Reference | Schema:
        (documented,) = field_definition.inner_types
        schema: Reference | Schema = schema_creator.for_field_definition(documented)
        return schema

    def decode_bytes(self, value: bytes) -> JsonBody[Any]:
        return JsonBody(value)

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[Any, None, None]:
        raise NotImplementedError("JsonBodyDTO never inspects a model")

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False


NO_BODY: JsonBody[Any] = JsonBody(b"")
"""The default of a `data: JsonBody[...]`: an empty body reaches the decoder, which refuses
it in the envelope like any other bad body."""


class BodyOptions(TypedDict):
    """The route-handler keywords BODY spreads (typed, so the decorators' checks hold)."""

    dto: type[AbstractDTO[Any]]
    return_dto: None


BODY: BodyOptions = {"dto": JsonBodyDTO, "return_dto": None}
"""Route-handler options for a handler whose `data` is a `JsonBody[...]`."""
