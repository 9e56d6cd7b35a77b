"""clip-retrieval's back-end API over a latentfuse index, so the clients people already use work unchanged
(``clip_retrieval.clip_client.ClipClient``, the clip-retrieval front end, scripts that POST to it).

    GET  /indices-list    ["<index name>"]
    POST /knn-service     {"text" | "image" (base64) | "embedding_input", "modality", "num_images",
                           "indice_name", ...}  →  [{"id", "similarity", "url" | "caption", ...}, ...]

Follows ``clip_retrieval/clip_back.py`` (``IndicesList.get``, ``KnnService.post`` / ``query`` /
``map_to_metadata``): the body is read as JSON whatever its content type (ClipClient sends none), results
are a bare list, best first, each with the row ``id`` and the ``similarity``. Deviations, each for a reason:

- ``image_url`` is refused with a 422: the server runs offline and fetches nothing (send ``image``).
- ``modality`` must be the index's own (one index holds one modality here; clip-retrieval keeps an image
  and a text index per name) — another is a 422 naming the one it holds, not an empty list.
- Missing or bad fields are 4xx with a ``detail`` (clip-back answers 500 with a KeyError).
- ``deduplicate``, ``use_safety_model``, ``use_violence_detector``, ``use_mclip``, ``aesthetic_*`` and
  ``num_result_ids`` are accepted and ignored: there are no safety / aesthetic models here, and
  ``num_images`` results are returned (at most the server's ``max_k``).
- Text and image together are combined into one query (as ``/search`` does), not an error.
- Metadata: ``url`` (this server's ``/items/{row}/image``) for images, ``caption`` for texts, plus the
  item's own ``item_id`` and ``source``.
- ``similarity`` is what the results were ranked by: the cosine, or under the model's QB-Norm the normalised
  score (so it never increases down the list); ``cosine`` stands beside it.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..index import Index
from .bodies import KnnBody, check_fields, openapi
from .config import ServeConfig
from .inputs import check_k, check_text, decode_base64, decode_image, parse_json

Embed = Callable[[str, Any], np.ndarray]


def add_clip_routes(app: FastAPI, index: Index, config: ServeConfig, embed: Embed) -> None:
    name = config.index_name or index.directory.name

    @app.get("/indices-list", tags=["clip-retrieval"])
    async def indices_list() -> list[str]:
        """The index names a clip-retrieval client may pass as ``indice_name`` (here: one)."""
        return [name]

    @app.post("/knn-service", tags=["clip-retrieval"], openapi_extra=openapi(("application/json", KnnBody)))
    async def knn_service(request: Request) -> list[dict[str, Any]]:
        """clip-retrieval's nearest-neighbour query (see the module docstring for the fields)."""
        body = parse_json(await request.body())
        if not isinstance(body, dict):
            raise HTTPException(422, "the JSON body must be an object like {\"text\": \"a dog\", "
                                     "\"modality\": \"image\", \"num_images\": 10, \"indice_name\": ...}")
        check_fields(body, KnnBody)
        check_target(body, name, index.modality)
        k = check_k(_required(body, "num_images"), config.max_k)
        vector, side = await query_vector(body, index, config, embed)
        hits = (await run_in_threadpool(index.search_vectors, vector[None, :], k, side))[0]
        base = str(request.base_url).rstrip("/")
        return [result(hit, base) for hit in hits]


def check_target(body: dict[str, Any], name: str, modality: str) -> None:
    indice = _required(body, "indice_name")
    if indice is not None and indice != name:
        raise HTTPException(422, f"no index named {str(indice)[:80]!r}; this server has {[name]}")
    wanted = _required(body, "modality")
    if wanted not in ("image", "text"):
        raise HTTPException(422, f"modality must be 'image' or 'text', got {str(wanted)[:40]!r}")
    if wanted != modality:
        raise HTTPException(422, f"modality {wanted!r}: this index holds {modality}s; ask for modality "
                                 f"{modality!r}")


async def query_vector(body: dict[str, Any], index: Index, config: ServeConfig,
                       embed: Embed) -> tuple[np.ndarray, str | None]:
    """The query's vector and the model side that embedded it (None for a given vector or text+image)."""
    if body.get("image_url") is not None:
        raise HTTPException(422, "image_url is not supported: this server fetches nothing from the network; "
                                 "send the image itself, base64-encoded, as 'image'")
    text = check_text(body.get("text"), config.max_query_chars)
    raw = decode_base64(body.get("image"), "image")
    vector = body.get("embedding_input")
    if vector is not None:
        if text is not None or raw is not None:
            raise HTTPException(422, "give embedding_input alone, or text and/or image")
        return check_embedding(vector, index.model.dim), None
    if text is None and raw is None:
        raise HTTPException(422, "a query needs one of text, image (base64) or embedding_input")
    image = await run_in_threadpool(decode_image, raw) if raw is not None else None
    return await run_in_threadpool(index.query_vector, text, image, embed), index.query_side(text, image)


def check_embedding(vector: Any, dim: int) -> np.ndarray:
    if not isinstance(vector, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in vector):
        raise HTTPException(422, f"embedding_input must be a list of {dim} numbers")
    if len(vector) != dim:
        raise HTTPException(422, f"embedding_input has {len(vector)} numbers; this index's model embeds in {dim}")
    try:
        array = np.asarray(vector, dtype=np.float64)
    except OverflowError:  # an integer beyond any float (JSON allows it): not a 500
        raise HTTPException(422, "embedding_input must be finite and not all zeros") from None
    norm = float(np.linalg.norm(array))
    if not np.isfinite(array).all() or not np.isfinite(norm) or norm == 0.0:
        raise HTTPException(422, "embedding_input must be finite and not all zeros")
    return (array / norm).astype(np.float32)


def result(hit: Any, base: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": hit.row, "similarity": round(float(hit.score), 6), "item_id": hit.id,
                           "source": hit.source, "cosine": round(float(hit.cosine), 6)}
    if hit.modality == "image":
        out["url"] = f"{base}/items/{hit.row}/image"
    else:
        out["caption"] = hit.payload
    return out


def _required(body: dict[str, Any], key: str) -> Any:
    if key not in body:
        raise HTTPException(422, f"field {key!r} is required (clip-retrieval's knn-service API)")
    return body[key]
