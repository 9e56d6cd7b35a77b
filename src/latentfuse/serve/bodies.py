"""The request bodies the server accepts, as pydantic models: the one place their fields are declared. The
OpenAPI schema (``/docs``, ``/openapi.json``) is generated from them, and a body is validated against them
before it is read — a field they do not declare is a 422 naming it (``{"top_k": 2}`` is not ``k``), never
silently dropped. Values are then checked by ``inputs`` (ranges, base64, image decoding) with messages that
say what was expected."""
from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError


# Values are declared loosely (their schema type only) and checked by ``inputs``, whose messages say what was
# expected ("k must be an integer between 1 and 50, got 'ten'"); what the models decide is the set of fields.
STRING, INTEGER = {"type": "string"}, {"type": "integer"}
FILTER = ("Search only the items whose source / split / label is one of those listed, e.g. "
          "{\"label\": [\"dog\", \"cat\"], \"split\": \"test\"}.")


class SearchJSON(BaseModel):
    """``/search`` and ``/embed`` as application/json."""

    model_config = ConfigDict(extra="forbid")
    text: Any = Field(None, json_schema_extra=STRING, description="Text query.")
    k: Any = Field(10, json_schema_extra=INTEGER, description="How many results (1..max_k).")
    image_base64: Any = Field(None, json_schema_extra=STRING, description="Image query, base64-encoded.")
    filter: Any = Field(None, json_schema_extra={"type": "object", "additionalProperties": {
        "anyOf": [STRING, {"type": "array", "items": STRING}]}}, description=FILTER)


class SearchForm(BaseModel):
    """``/search`` and ``/embed`` as multipart/form-data or application/x-www-form-urlencoded."""

    model_config = ConfigDict(extra="forbid")
    text: Any = Field(None, json_schema_extra=STRING, description="Text query.")
    q: Any = Field(None, json_schema_extra=STRING, description="Text query (the GET spelling).")
    k: Any = Field(10, json_schema_extra=INTEGER, description="How many results (1..max_k).")
    image: Any = Field(None, json_schema_extra={"type": "string", "format": "binary"}, description="Image file.")
    source: Any = Field(None, json_schema_extra=STRING, description="Only items of this source (repeatable).")
    split: Any = Field(None, json_schema_extra=STRING, description="Only items of this split (repeatable).")
    label: Any = Field(None, json_schema_extra=STRING, description="Only items with this label (repeatable).")


class KnnBody(BaseModel):
    """clip-retrieval's ``/knn-service`` body (``clip_retrieval/clip_back.py``); the fields it ignores here
    are declared so its clients' bodies validate."""

    model_config = ConfigDict(extra="forbid")
    modality: Any = Field(json_schema_extra={"enum": ["image", "text"]})
    num_images: Any = Field(json_schema_extra=INTEGER)
    indice_name: Any = Field(json_schema_extra=STRING)
    text: Any = Field(None, json_schema_extra=STRING)
    image: Any = Field(None, json_schema_extra=STRING, description="base64")
    image_url: Any = Field(None, json_schema_extra=STRING)
    embedding_input: Any = Field(None, json_schema_extra={"type": "array", "items": {"type": "number"}})
    num_result_ids: Any = None
    deduplicate: Any = None
    use_safety_model: Any = None
    use_violence_detector: Any = None
    use_mclip: Any = None
    aesthetic_score: Any = None
    aesthetic_weight: Any = None


def fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields)


def check_fields(body: Any, model: type[BaseModel]) -> None:
    """A 422 naming the first field ``model`` does not declare (with the accepted ones and a did-you-mean)."""
    from ..specs import did_you_mean

    known = fields(model)
    unknown = sorted(str(key) for key in body if key not in known)
    if unknown:
        hint = did_you_mean(unknown[0], known)
        raise HTTPException(422, f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(known)}.{hint}")


def validate(body: dict[str, Any], model: type[BaseModel]) -> BaseModel:
    """``body`` as ``model``: unknown fields, then types and required fields, each a one-line 422."""
    check_fields(body, model)
    try:
        return model.model_validate(body)
    except ValidationError as exc:  # a required field missing
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise HTTPException(422, f"field {where!r}: {first['msg'].lower()}") from None


def openapi(*content: tuple[str, type[BaseModel]]) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads its body itself: the request body's schemas, from the models."""
    return {"requestBody": {"required": True, "content": {
        media: {"schema": {**model.model_json_schema(), "additionalProperties": False}} for media, model in content}}}
