"""The FastAPI application: routes, API-key check, body limit, JSON errors, access log."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ConfigError, ImageReadError
from .batcher import MicroBatcher, QueueFull
from .service import ClassifierService

log = logging.getLogger("coderclip.serve")
access_log = logging.getLogger("coderclip.serve.access")

STATIC = Path(__file__).parent / "static"
#: environment variable holding the API key (never logged, never echoed)
API_KEY_ENV = "CODERCLIP_API_KEY"
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
     b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class ApiError(Exception):
    """An error answered as JSON ``{"status", "message"}`` with extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


# ---------------------------------------------------------------------- schema (OpenAPI)
class ClassifyJSON(BaseModel):
    images: list[str] = Field(description="images as base64 strings (file bytes, any format PIL reads)")
    top_k: int | None = Field(None, description="classes returned per image (default 5, or every "
                                                "class when there are fewer)")
    method: str | None = Field(None, description="one of the methods the server offers "
                                                 "(GET /v1/model); default: its default method")
    explain: bool = Field(False, description="add the texts that decided each answer")
    names: list[str] | None = Field(None, description="optional names echoed back per image")


class Prediction(BaseModel):
    label: str
    score: float


class ExplanationText(BaseModel):
    text: str
    type: str
    model_config = {"extra": "allow"}


class ImageResult(BaseModel):
    image: str
    label: str
    score: float
    predictions: list[Prediction]
    reranked: bool = Field(description="the one-vs-one rerank changed the answer (as in "
                                       "`coderclip classify` rows)")
    rerank_applied: bool = Field(description="the image was below the confidence gap, so the "
                                             "rerank decided among the top candidates")
    stage1_label: str = Field(description="the answer before the rerank")
    explanation: list[ExplanationText] | None = None


class ClassifyResponse(BaseModel):
    method: str
    results: list[ImageResult]


class ErrorResponse(BaseModel):
    status: int
    message: str


_CLASSIFY_BODY = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": ClassifyJSON.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "top_k": {"type": "integer", "default": 5},
            "method": {"type": "string"},
            "explain": {"type": "boolean", "default": False}}, "required": ["images"]}}}},
}
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 413, 415, 503)}


# ---------------------------------------------------------------------- middleware (pure ASGI)
def _json_bytes(status: int, message: str) -> bytes:
    return json.dumps({"status": status, "message": message}).encode()


class GuardMiddleware:
    """Outermost layer: security headers, body-size limit (Content-Length and streamed bytes) and
    one JSON access-log line per request (no keys, no bodies)."""

    def __init__(self, app, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        state = {"status": 0, "bytes": 0}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            body_receive = await self._buffer_body(scope, receive)
            if body_receive is None:
                await self._reply(send_wrapped, 413, f"request body larger than the limit of "
                                                      f"{self.max_body_bytes:,} bytes; send fewer "
                                                      "or smaller images")
            else:
                await self.app(scope, body_receive, send_wrapped)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "client": client[0], "method": scope["method"],
                "path": scope["path"], "status": state["status"], "bytes": state["bytes"],
                "ms": round(1000 * (time.perf_counter() - t0), 2),
                "request_id": scope.get("state", {}).get("request_id")}))

    async def _buffer_body(self, scope, receive):
        """A ``receive`` that replays the whole body, or None when it is over the limit."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return receive
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    if int(v) > self.max_body_bytes:
                        return None
                except ValueError:
                    return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                chunks.append(b"")
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    async def _reply(send, status: int, message: str) -> None:
        body = _json_bytes(status, message)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------- the app
def create_app(service: ClassifierService, api_key: str | None = None, max_batch: int = 32,
               batch_window_ms: float = 5.0, max_queued: int = 256) -> GuardMiddleware:
    """The service's ASGI app: the FastAPI app (``.app``) inside :class:`GuardMiddleware`.
    ``api_key``: when set, every ``/v1`` request must carry it (``Authorization: Bearer KEY`` or
    ``X-API-Key: KEY``), compared in constant time."""
    batcher = MicroBatcher(service.run_batch, max_batch=max_batch,
                           window_s=batch_window_ms / 1000.0, max_queued=max_queued)
    key = api_key.encode() if api_key else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()        # in-flight requests have finished: drain what is queued

    app = FastAPI(title="coderclip", version=service.model_info()["versions"]["coderclip"],
                  description="CODER zero-shot image classification over HTTP.", lifespan=lifespan,
                  docs_url=None, redoc_url=None)   # Swagger UI would load assets from a CDN
    app.state.service, app.state.batcher = service, batcher

    def check_key(request: Request) -> None:
        if key is None:
            return
        given = request.headers.get("x-api-key", "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), key):
            raise ApiError(401, "missing or wrong API key: send it as 'Authorization: Bearer KEY' "
                                "or 'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"})

    # ------------------------------------------------------------------ errors as JSON
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return JSONResponse({"status": e.status, "message": e.message}, e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        msg = e.detail if isinstance(e.detail, str) else json.dumps(e.detail)
        if e.status_code == 404:
            msg = f"no such endpoint: {request.method} {request.url.path}"
        return JSONResponse({"status": e.status_code, "message": msg}, e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"status": 400, "message": f"bad request: {where}: {first.get('msg')}"}, 400)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, e: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"status": 500, "message": "internal error; the server log has the "
                                                       "details"}, 500)

    # ------------------------------------------------------------------ routes
    @app.get("/healthz", summary="liveness and queue depth")
    async def healthz() -> dict:
        return {"status": "ok", "queued_images": batcher.queued}

    @app.get("/v1/model", summary="model identity, knowledge hash, versions, limits")
    async def model(request: Request) -> dict:
        check_key(request)
        return service.model_info()

    @app.get("/v1/classes", summary="the class names, in label order")
    async def classes(request: Request) -> dict:
        check_key(request)
        return {"count": len(service.classes), "classes": service.classes}

    @app.get("/v1/stats", summary="batches formed and requests served or refused")
    async def stats(request: Request) -> dict:
        check_key(request)
        return {"batch_sizes": {str(k): v for k, v in sorted(batcher.batch_sizes.items())},
                "served_requests": batcher.served, "rejected_requests": batcher.rejected,
                "queued_images": batcher.queued}

    @app.post("/v1/classify", response_model=ClassifyResponse, response_model_exclude_none=True,
              openapi_extra=_CLASSIFY_BODY,
              responses=_ERRORS, summary="classify one or more images")
    async def classify(request: Request) -> dict[str, Any]:
        check_key(request)
        request.scope.setdefault("state", {})["request_id"] = uuid.uuid4().hex[:12]
        blobs, names, opts = await _read_request(request, service)
        try:
            method, opts["top_k"] = service.check_options(opts["method"], opts["top_k"], opts["explain"])
        except ConfigError as e:
            raise ApiError(400, str(e)) from None
        try:
            pixels = await run_in_threadpool(_decode_all, service, blobs, names)
        except ImageReadError as e:
            raise ApiError(400, str(e)) from None
        try:
            rows = await batcher.submit(pixels, len(blobs), method=method, top_k=opts["top_k"],
                                        explain=opts["explain"])
        except QueueFull as e:
            raise ApiError(503, f"server busy ({e}); retry after a second",
                           {"Retry-After": "1"}) from None
        for r, n in zip(rows, names):
            r["image"] = n
        return {"method": method, "results": [{"image": r.pop("image"), **r} for r in rows]}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return GuardMiddleware(app, service.limits.max_body_bytes)


def _decode_all(service: ClassifierService, blobs: list[bytes], names: list[str]):
    import torch

    return torch.stack([service.decode(b, n) for b, n in zip(blobs, names)])


def _as_int(value: Any, field: str) -> Any:
    try:
        return int(value) if isinstance(value, str) else value
    except ValueError:
        raise ApiError(400, f"{field} must be an integer, got {value!r}") from None


def _as_bool(value: Any) -> Any:
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
    return value


async def _read_request(request: Request, service: ClassifierService
                        ) -> tuple[list[bytes], list[str], dict[str, Any]]:
    """Images (bytes), their names and the options, from a multipart form or a JSON body."""
    limit = service.limits.max_images
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=limit, max_fields=16,
                                      max_part_size=service.limits.max_body_bytes)
        except Exception as e:  # noqa: BLE001 - python-multipart / starlette parse errors
            detail = str(getattr(e, "detail", e))
            raise ApiError(413 if detail.startswith("Too many") else 400,
                           f"cannot read the multipart form: {detail}") from None
        files = [v for k, v in form.multi_items() if not isinstance(v, str)]
        blobs = [await f.read() for f in files]
        names = [f.filename or f"image {i}" for i, f in enumerate(files)]
        opts = {"top_k": _as_int(form.get("top_k"), "top_k"), "method": form.get("method") or None,
                "explain": _as_bool(form.get("explain", False))}
    elif ctype == "application/json":
        try:
            body = ClassifyJSON.model_validate_json(await request.body())
        except ValueError as e:
            errs = getattr(e, "errors", lambda: [])()
            detail = errs[0].get("msg") if errs else str(e)
            where = ".".join(str(p) for p in errs[0].get("loc", ())) if errs else ""
            raise ApiError(400, f"bad JSON body{' at ' + where if where else ''}: {detail}") from None
        if len(body.images) > limit:
            raise ApiError(413, f"{len(body.images)} images in one request, more than the limit of {limit}")
        blobs = []
        for i, s in enumerate(body.images):
            try:
                blobs.append(base64.b64decode(s.split(",", 1)[1] if s.startswith("data:") else s,
                                              validate=True))
            except (binascii.Error, ValueError):
                raise ApiError(400, f"images[{i}] is not valid base64") from None
        if body.names is not None and len(body.names) != len(blobs):
            raise ApiError(400, f"{len(body.names)} names for {len(blobs)} images: give one name per "
                                "image, or none")
        names = body.names or [f"image {i}" for i in range(len(blobs))]
        opts = {"top_k": body.top_k, "method": body.method, "explain": body.explain}
    else:
        raise ApiError(415, f"unsupported content type {ctype or 'none'!r}: send multipart/form-data "
                            "with image files, or application/json with base64 images")
    if not blobs:
        raise ApiError(400, "no images in the request: attach files as 'images' or list base64 "
                            "strings under 'images'")
    if len(blobs) > limit:
        raise ApiError(413, f"{len(blobs)} images in one request, more than the limit of {limit}")
    return blobs, names, opts
