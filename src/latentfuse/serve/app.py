"""The HTTP API over an index (FastAPI): search by text and/or image, embed, health, thumbnails, a web page.

    GET  /                        the search page (search box, image upload, filter fields, grid of results)
    GET  /search?q=TEXT&k=10      text search (&label=dog&label=cat, &split=, &source=: only those items)
    POST /search                  multipart (text, k, file image, label...) or JSON (text, k, image_base64,
                                  filter: {"label": ["dog", "cat"], "split": "test"})
    POST /embed                   the joint embedding of a text or an image
    GET  /health                  item count, model fingerprint, backend
    GET  /items/{row}/thumbnail   JPEG thumbnail of an image hit; /items/{row}/image the original
    GET  /items/{row}/similar     more like this: the item's own embedding as the query
    GET  /docs, /openapi.json     OpenAPI
    GET  /indices-list            clip-retrieval's API (``serve.clip_compat``): its ClipClient works as is
    POST /knn-service

Queries from concurrent requests are encoded together (``Batcher``); the search itself runs in the thread
pool, so the event loop keeps accepting requests. Limits (body size, k, text length) come from
``ServeConfig``; bad input is a 4xx whose ``detail`` says what was wrong.
"""
from __future__ import annotations

import io
import time
from contextlib import asynccontextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
from fastapi import FastAPI, HTTPException, Query as Param, Request
from fastapi_offline import FastAPIOffline
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..version import __version__
from ..errors import LatentfuseError
from ..utils.blobs import is_blob
from .bodies import SearchForm, SearchJSON, openapi
from ..index import Index
from .batcher import Batcher
from .clip_compat import add_clip_routes
from .config import ServeConfig
from .inputs import Query, check_filter, check_k, check_text, read_query
from .limits import BodyLimit


class Result(BaseModel):
    rank: int
    row: int
    id: str
    score: float
    """What the hit was ranked by: the cosine, or under QB-Norm its normalised score (non-increasing by rank)."""
    cosine: float
    modality: str
    text: str | None = None
    thumbnail_url: str | None = None
    image_url: str | None = None
    source: str
    label: str | None = None


class SearchResponse(BaseModel):
    text: str | None
    image: bool
    k: int
    took_ms: float
    results: list[Result]


class EmbedResponse(BaseModel):
    modality: str
    dim: int
    embedding: list[float]


class Health(BaseModel):
    status: str
    items: int
    modality: str
    model: str
    method: str
    backend: str
    version: str
    queries_encoded: int
    encoder_calls: int


FILTER_PARAM = "Only items whose {} is one of the values given (repeatable)."
QUERY_BODY = openapi(("multipart/form-data", SearchForm), ("application/json", SearchJSON))


def create_app(index: Index, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    if config.hubness:
        index.hubness = config.hubness
    batcher = Batcher(index.embed_queries, config.max_batch, config.batch_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        await run_in_threadpool(warm_up, index, batcher)  # load encoder weights before the first request
        yield
        batcher.close()

    # /docs and /redoc from Swagger UI's and ReDoc's files installed with fastapi-offline, not a CDN: they work
    # on an offline machine
    app = FastAPIOffline(title="latentfuse search", version=__version__, lifespan=lifespan,
                         description=f"Search {len(index)} {index.modality} items in a joint embedding space.")
    app.state.index, app.state.batcher, app.state.config = index, batcher, config
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes)
    thumbnail = lru_cache(maxsize=4096)(lambda row: make_thumbnail(index.payload(row), config.thumbnail_px))
    fingerprint = index.model.fingerprint  # hashes every weight: once, not per /health

    @app.exception_handler(LatentfuseError)
    async def _bad_request(_: Request, exc: LatentfuseError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE()

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        return Health(status="ok", items=len(index), modality=index.modality, model=fingerprint,
                      method=index.model.method.name, backend=index.backend_config.kind, version=__version__,
                      queries_encoded=batcher.items, encoder_calls=batcher.batches)

    @app.get("/search", response_model=SearchResponse)
    async def search_get(q: str = Param(..., description="Text query."),
                         k: str = Param("10", description=f"Results, 1–{config.max_k}."),
                         source: list[str] | None = Param(None, description=FILTER_PARAM.format("source")),
                         split: list[str] | None = Param(None, description=FILTER_PARAM.format("split")),
                         label: list[str] | None = Param(None, description=FILTER_PARAM.format("label"))
                         ) -> SearchResponse:
        text = check_text(q, config.max_query_chars)
        if text is None:
            raise HTTPException(422, "q must be a non-empty text")
        where = query_filter(config, source=source, split=split, label=label)
        return await run_search(Query(text, None, check_k(k, config.max_k), where))

    @app.post("/search", response_model=SearchResponse, openapi_extra=QUERY_BODY)
    async def search_post(request: Request) -> SearchResponse:
        return await run_search(await read_query(request, config.max_k, config.max_query_chars))

    @app.post("/embed", response_model=EmbedResponse, openapi_extra=QUERY_BODY)
    async def embed(request: Request) -> EmbedResponse:
        query = await read_query(request, config.max_k, config.max_query_chars, need_k=False)
        if query.text is not None and query.image is not None:
            raise HTTPException(422, "embed takes a text or an image, not both")
        modality, payload = ("text", query.text) if query.text is not None else ("image", query.image)
        vector = await run_in_threadpool(batcher.submit, modality, payload)
        return EmbedResponse(modality=modality, dim=len(vector), embedding=[float(v) for v in vector])

    @app.get("/items/{row}/similar", response_model=SearchResponse)
    async def item_similar(row: int, k: str = Param("10", description=f"Results, 1–{config.max_k}."),
                           source: list[str] | None = Param(None, description=FILTER_PARAM.format("source")),
                           split: list[str] | None = Param(None, description=FILTER_PARAM.format("split")),
                           label: list[str] | None = Param(None, description=FILTER_PARAM.format("label"))
                           ) -> SearchResponse:
        """More like this: the indexed item's own embedding as the query (no encoder call)."""
        check_row(index, row)
        started, count = time.perf_counter(), check_k(k, config.max_k)
        where = query_filter(config, source=source, split=split, label=label)
        query = np.asarray(index.vector(row), dtype=np.float32)[None, :]
        hits = (await run_in_threadpool(index.search_vectors, query, count, index.side, where))[0]
        return search_response(None, False, count, started, hits)

    @app.get("/items/{row}/thumbnail", responses={200: {"content": {"image/jpeg": {}}}})
    async def item_thumbnail(row: int) -> Response:
        check_image_row(index, row)
        try:
            data = await run_in_threadpool(thumbnail, row)
        except (LatentfuseError, OSError, ValueError) as exc:
            raise HTTPException(404, f"item {row} ({index.record(row).id}) can no longer be read: {exc}") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/items/{row}/image", responses={200: {"content": {"image/*": {}}}})
    async def item_image(row: int) -> Response:
        check_image_row(index, row)
        payload = index.payload(row)
        if isinstance(payload, (str, Path)):
            if not Path(payload).is_file():
                raise HTTPException(404, f"item {row} ({index.record(row).id}): {payload} is gone")
            return FileResponse(payload)
        if is_blob(payload):  # a tar shard's member (webdataset:), a dataset's cell (hf:): its own bytes
            try:
                data = await run_in_threadpool(payload.read_bytes)
            except OSError as exc:
                raise HTTPException(404, f"item {row} ({index.record(row).id}) can no longer be read: {exc}") from None
            return Response(data, media_type=image_type(data))
        return Response(await run_in_threadpool(png_bytes, payload), media_type="image/png")

    add_clip_routes(app, index, config, batcher.submit)

    async def run_search(query: Query) -> SearchResponse:
        started = time.perf_counter()
        vector = await run_in_threadpool(index.query_vector, query.text, query.image, batcher.submit)
        side = index.query_side(query.text, query.image)
        hits = (await run_in_threadpool(index.search_vectors, vector[None, :], query.k, side, query.where))[0]
        return search_response(query.text, query.image is not None, query.k, started, hits)

    return app


def query_filter(config: ServeConfig, **params: list[str] | None) -> str | None:
    """The index filter of a GET request's repeatable source / split / label parameters."""
    return check_filter({column: values for column, values in params.items() if values}, config.max_query_chars)


def warm_up(index: Index, batcher: Batcher) -> None:
    from PIL import Image

    samples = {"text": "warm up", "image": Image.new("RGB", (64, 64), (128, 128, 128))}
    for modality in dict.fromkeys(side.modality for side in index.model.sides.values()):
        batcher.submit(modality, samples[modality])


def search_response(text: str | None, image: bool, k: int, started: float, hits: list[Any]) -> SearchResponse:
    return SearchResponse(text=text, image=image, k=k, took_ms=round(1000 * (time.perf_counter() - started), 2),
                          results=[result_of(h) for h in hits])


def result_of(hit: Any) -> Result:
    image = hit.modality == "image"
    return Result(rank=hit.rank, row=hit.row, id=hit.id, score=round(hit.score, 6), cosine=round(hit.cosine, 6),
                  modality=hit.modality,
                  text=None if image else hit.payload,
                  thumbnail_url=f"/items/{hit.row}/thumbnail" if image else None,
                  image_url=f"/items/{hit.row}/image" if image else None, source=hit.source, label=hit.label)


def check_image_row(index: Index, row: int) -> None:
    if index.modality != "image":
        raise HTTPException(404, "this index holds texts; results carry their text instead of an image")
    check_row(index, row)


def check_row(index: Index, row: int) -> None:
    try:
        index.record(row)
    except KeyError:
        raise HTTPException(404, f"no item {row}; this index has {len(index)} items, numbered from 0 as they "
                                 "were added (deleted ones leave gaps)") from None


def make_thumbnail(payload: Any, size: int) -> bytes:
    from ..encoders.images import load_image

    image = load_image(payload).convert("RGB")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def image_type(data: bytes) -> str:
    """The media type of encoded image bytes, from their header (Pillow reads no pixels for it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError):
        return "application/octet-stream"


def png_bytes(payload: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(payload)).save(buffer, format="PNG")
    return buffer.getvalue()


@lru_cache(maxsize=1)
def PAGE() -> str:  # noqa: N802 - a constant, read once
    return resources.files("latentfuse.serve").joinpath("page.html").read_text(encoding="utf-8")
