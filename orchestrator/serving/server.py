"""An OpenAI-compatible completions server for one nightshift model (FastAPI).

    POST /v1/completions   prompt, max_tokens, temperature, top_k, top_p, stop, n, seed, stream (SSE)
    GET  /v1/models        the one model served
    GET  /health           {"status": "ok", ...}

Requests run one at a time per model (a lock: the families keep caches that
concurrent generation would interleave); FastAPI runs the handlers in its
thread pool, so a waiting request never blocks the event loop. Every error
is a JSON body in OpenAI's shape, `{"error": {"message", "type", "param",
"code"}}`, with a 4xx status for a bad request and never a traceback.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from nightshift.orchestrator.serving.bundle import Bundle
from nightshift.orchestrator.serving.complete import Sampling, prompt_ids, request_seed, stream, supports_top_p

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    max_tokens: int = 512  # per completion
    max_prompt_bytes: int = 16_384  # UTF-8 bytes per prompt
    max_n: int = 8
    max_prompts: int = 16


class ApiError(Exception):
    """A request the server refuses: becomes an OpenAI-shaped JSON error with this status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class CompletionRequest(BaseModel):
    """The fields of OpenAI's `POST /v1/completions` that a sampled language model can honour (plus top_k)."""

    model_config = ConfigDict(extra="ignore")

    model: str
    prompt: str | list[str] = ""
    max_tokens: int = 16
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    echo: bool = False


class Served:
    """The model, its name, the limits and the lock that serializes generation."""

    def __init__(self, bundle: Bundle, name: str, limits: Limits) -> None:
        self.bundle, self.name, self.limits = bundle, name, limits
        self.lock = threading.Lock()
        self.created = int(time.time())
        self.top_p = supports_top_p(bundle)

    def check(self, req: CompletionRequest) -> tuple[list[str], Sampling]:
        lim = self.limits
        if req.model != self.name:
            raise ApiError(404, f"The model '{req.model}' does not exist; this server serves '{self.name}'",
                           "model", "model_not_found")
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts or len(prompts) > lim.max_prompts:
            raise ApiError(400, f"prompt: give 1 to {lim.max_prompts} prompts, got {len(prompts)}", "prompt")
        for text in prompts:
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:
                raise ApiError(400, "prompt is not valid UTF-8 text (it holds an unpaired surrogate)",
                               "prompt") from None
            if size > lim.max_prompt_bytes:
                raise ApiError(400, f"prompt is {size} bytes; this server accepts at most {lim.max_prompt_bytes}",
                               "prompt", "context_length_exceeded")
        if not 1 <= req.max_tokens <= lim.max_tokens:
            raise ApiError(400, f"max_tokens={req.max_tokens}: accepted 1..{lim.max_tokens}", "max_tokens")
        if not 1 <= req.n <= lim.max_n:
            raise ApiError(400, f"n={req.n}: accepted 1..{lim.max_n}", "n")
        stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
        if len(stop) > 4 or any(not s for s in stop):
            raise ApiError(400, "stop: up to 4 non-empty strings", "stop")
        if req.top_p < 1.0 and not self.top_p:
            raise ApiError(400, f"top_p < 1 needs a full next-token distribution, which {self.bundle.label} over "
                                f"{self.bundle.tokenizer.name} tokens does not give; use top_k", "top_p")
        if req.echo:
            raise ApiError(400, "echo is not supported", "echo")
        return prompts, Sampling(max_tokens=req.max_tokens, temperature=req.temperature, top_k=req.top_k or None,
                                 top_p=req.top_p, stop=stop, n=req.n, seed=req.seed)


def build_app(bundle: Bundle, name: str, limits: Limits | None = None) -> FastAPI:
    served = Served(bundle, name, limits or Limits())
    app = FastAPI(title="nightshift", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.kind, exc.param, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = [str(p) for p in first.get("loc", ()) if p != "body"]
        if first.get("type") in ("json_invalid", "value_error.jsondecode") or not where:
            return JSONResponse(error_body("request body is not valid JSON (UTF-8) with the completion fields: "
                                           f"{first.get('msg', 'unreadable')}"), status_code=400)
        if where[0] == "prompt":
            return JSONResponse(error_body("prompt: a string or a list of strings (token-id prompts are not "
                                           "supported)", param="prompt"), status_code=400)
        return JSONResponse(error_body(f"{where[0]}: {first.get('msg', 'invalid value')}", param=where[0]),
                            status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:  # bytes that are not UTF-8 JSON
            message = "request body is not valid JSON in UTF-8"
        return JSONResponse(error_body(message, code=str(exc.status_code)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s %s failed", request.method, request.url.path)
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "server_error"), status_code=500)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.name, "family": bundle.family, "step": bundle.step}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(served)]}

    @app.get("/v1/models/{model_id:path}")
    def model(model_id: str) -> dict[str, Any]:
        if model_id != served.name:
            raise ApiError(404, f"The model '{model_id}' does not exist", "model", "model_not_found")
        return _model_card(served)

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> Any:
        prompts, sampling = served.check(req)
        cid, seed = f"cmpl-{uuid.uuid4().hex[:24]}", request_seed(sampling)
        if req.stream:
            return StreamingResponse(_sse(served, cid, prompts, sampling, seed), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        choices, used = [], 0
        with served.lock:
            for index, (text, s) in enumerate(_jobs(prompts, sampling, seed)):
                pieces = list(stream(bundle, text, sampling, s))
                used += pieces[-1].tokens
                choices.append({"text": "".join(p.text for p in pieces), "index": index, "logprobs": None,
                                "finish_reason": pieces[-1].finish_reason})
            prompt_tokens = sum(len(prompt_ids(bundle, p)) - 1 for p in prompts)
        return {"id": cid, "object": "text_completion", "created": int(time.time()), "model": served.name,
                "choices": choices, "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": used,
                                              "total_tokens": prompt_tokens + used}}

    return app


def _model_card(served: Served) -> dict[str, Any]:
    return {"id": served.name, "object": "model", "created": served.created, "owned_by": "nightshift",
            "family": served.bundle.family, "flavor": served.bundle.config.model.flavor, "step": served.bundle.step}


def _jobs(prompts: list[str], sampling: Sampling, seed: int) -> Iterator[tuple[str, int]]:
    """(prompt, seed) per choice: index = prompt_index * n + j, as OpenAI numbers them."""
    for i, text in enumerate(prompts):
        for j in range(sampling.n):
            yield text, seed + i * sampling.n + j


def _sse(served: Served, cid: str, prompts: list[str], sampling: Sampling, seed: int) -> Iterator[str]:
    """Server-sent events: one `data:` chunk per piece of text, `finish_reason` on each choice's last, then [DONE]."""
    created = int(time.time())
    with served.lock:
        try:
            for index, (text, s) in enumerate(_jobs(prompts, sampling, seed)):
                for piece in stream(served.bundle, text, sampling, s):
                    chunk = {"id": cid, "object": "text_completion", "created": created, "model": served.name,
                             "choices": [{"text": piece.text, "index": index, "logprobs": None,
                                          "finish_reason": piece.finish_reason}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
        except Exception as exc:
            log.exception("streamed completion %s failed", cid)
            yield f"data: {json.dumps(error_body(f'internal error: {type(exc).__name__}', 'server_error'))}\n\n"
    yield "data: [DONE]\n\n"
