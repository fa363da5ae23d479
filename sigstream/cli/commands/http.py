"""``sigstream http``: an HTTP endpoint for signal enhancement (FastAPI + uvicorn, optional).

``POST /enhance`` takes ``{"signal": [float, ...], "uncertainty": N}`` and returns the
enhanced signal (same length, aligned with the input), the actuator commands (SensorAugmentor)
and, with ``uncertainty > 0``, the mean and standard deviation of N Monte-Carlo dropout
passes. ``GET /health`` describes the model; ``GET /docs`` is a self-contained HTML page
of the API made from its OpenAPI schema (no scripts, nothing fetched from elsewhere, so it
works offline) and ``GET /openapi.json`` the schema itself.

Models: the SensorAugmentor (``augmentor``; a 128-sample window gives one window's
output and commands, a longer signal is streamed through ``OverlapCrossfade`` and
flushed, so the output is aligned; commands are given for every complete window at the
model's hop), the causal enhancer (``enhancer``; any length), or any one-channel built-in
model or checkpoint. ``enhanced`` is the first output channel; a model with several output
channels (the extractor's four) also returns ``out_channels`` and ``outputs``, one list per
channel.

Every request a client can get wrong gets a 4xx with one sentence naming what was expected:
an empty body (400), a body that is not JSON or not an object (400), a body or signal over
the limits (413), a missing or non-numeric signal, non-finite values (``NaN``/``Infinity``
tokens, or numbers too large for float32), a wrong length, or a bad ``uncertainty`` (422).
Anything failing inside the model is a 500 with a JSON reason, and the server goes on.
Install with ``pip install 'sigstream[http]'`` (in a checkout: ``pip install -e '.[http]'``).
Requests are logged one line each (uvicorn's access log) at ``--log-level info``, the
default; ``warning`` keeps only problems.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint's annotations
# at run time, and the classes they name are imported inside ``create_app``.
import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from sigstream.cli.args import positive_int
from sigstream.core.errors import ConfigError

FLOAT32_MAX = float(np.finfo(np.float32).max)
INSTALL_HINT = ("sigstream http needs FastAPI and uvicorn: pip install 'sigstream[http]' (in a "
                "checkout: pip install -e '.[http]')")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class HttpConfig:
    """Limits: request body bytes, samples per signal, MC-dropout passes, and passes x
    samples (the work one request may ask for)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body: int = 16 * 1024 * 1024
    max_samples: int = 500_000
    max_passes: int = 64
    max_work: int = 4_000_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("http", help="HTTP endpoint: POST /enhance (FastAPI; needs sigstream[http])",
                       epilog="example: sigstream http --model augmentor --port 8000",
                       description="Serve a model over HTTP: POST /enhance with JSON "
                                   "{\"signal\": [...], \"uncertainty\": N}; OpenAPI docs at "
                                   "/docs. Binds 127.0.0.1 unless --host says otherwise. Needs "
                                   "the optional extra: pip install 'sigstream[http]'.")
    p.set_defaults(func=run)
    p.add_argument("--model", default="augmentor",
                   help="augmentor | enhancer | NAME[:key=val,...] | checkpoint path "
                        "(default: augmentor)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--max-body", type=positive_int, default=HttpConfig.max_body,
                   help="largest request body in bytes (default: 16 MiB)")
    p.add_argument("--max-samples", type=positive_int, default=HttpConfig.max_samples,
                   help="longest signal in samples (default: 500000)")
    p.add_argument("--max-passes", type=positive_int, default=HttpConfig.max_passes,
                   help="most Monte-Carlo dropout passes per request (default: 64)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default: 1)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                   help="server log: info logs one line per request (the access log), "
                        "warning only problems (default: info)")


class RequestError(Exception):
    """A client error: HTTP status and one-sentence reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words (not Python's type names)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "not a number"


def _reject_constant(token: str) -> float:
    raise RequestError(422, f"non-finite value {token} in the request: JSON numbers must be "
                            f"finite")


def parse_request(body: bytes, cfg: HttpConfig) -> tuple[np.ndarray, int]:
    """Body bytes -> (signal float32 (T,), uncertainty passes); RequestError on any problem."""
    if not body or not body.strip():
        raise RequestError(400, 'empty request body: send JSON {"signal": [numbers, ...]}')
    if len(body) > cfg.max_body:
        raise RequestError(413, f"request body is {len(body)} bytes, at most {cfg.max_body}")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid JSON ({str(exc)[:80]})") from None
    except RecursionError:
        raise RequestError(400, "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise RequestError(400, 'request body must be a JSON object {"signal": [...]}')
    unknown = sorted(set(data) - {"signal", "uncertainty"})
    if unknown:
        raise RequestError(422, f"unknown field {unknown[0]!r}; fields: signal, uncertainty")
    if "signal" not in data:
        raise RequestError(422, 'missing field "signal": a list of numbers')
    sig = data["signal"]
    if not isinstance(sig, list):
        raise RequestError(422, '"signal" must be a list of numbers')
    if not sig:
        raise RequestError(422, '"signal" is empty: send at least one sample')
    if len(sig) > cfg.max_samples:
        raise RequestError(413, f'"signal" has {len(sig)} samples, at most {cfg.max_samples}')
    bad = next((i for i, v in enumerate(sig)
                if isinstance(v, bool) or not isinstance(v, (int, float))), None)
    if bad is not None:
        raise RequestError(422, f'"signal"[{bad}] is {_json_kind(sig[bad])}, expected a '
                                f'number')
    try:
        arr = np.asarray(sig, dtype=np.float64)
    except OverflowError:
        raise RequestError(422, '"signal" holds an integer too large to be a number '
                                "(non-finite)") from None
    finite = np.isfinite(arr) & (np.abs(arr) <= FLOAT32_MAX)
    if not finite.all():
        i = int(np.argmin(finite))
        raise RequestError(422, f'"signal"[{i}] is not a finite float32 number '
                                f"(got {sig[i]!r})")
    n = data.get("uncertainty", 0)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= cfg.max_passes:
        raise RequestError(422, f'"uncertainty" must be a whole number of Monte-Carlo '
                                f"dropout passes from 0 to {cfg.max_passes}, got {n!r}")
    if n * len(sig) > cfg.max_work:
        raise RequestError(413, f"uncertainty x samples = {n * len(sig)} exceeds "
                                f"{cfg.max_work}; send fewer passes or a shorter signal")
    return arr.astype(np.float32), n


class Enhancer:
    """The model behind the endpoint: ``describe()`` and ``enhance(signal, passes)``."""

    def __init__(self, model: Any, name: str) -> None:
        from sigstream.models.augmentor.model import AugmentorStream

        self.model, self.name = model.eval(), name
        self.is_augmentor = isinstance(model, AugmentorStream)
        if getattr(model, "in_channels", 1) != 1:
            raise ConfigError(f"the HTTP endpoint serves one-channel models; {name} takes "
                              f"{model.in_channels} channels")
        self.window = model.net.config.window if self.is_augmentor else None
        self.min_samples = self.window or 1

    def describe(self) -> dict:
        return {"model": self.name, "sample_rate": self.model.sample_rate,
                "latency_samples": int(self.model.latency), "hop": int(self.model.hop),
                "window": self.window, "min_samples": self.min_samples,
                "kind": "window model (crossfaded)" if self.is_augmentor else "streaming model",
                "uncertainty": _has_dropout(self.model)}

    def check_length(self, n: int) -> None:
        if n < self.min_samples:
            raise RequestError(422, f'"signal" has {n} samples; the {self.name} model needs at '
                                    f"least {self.min_samples} (one {self.window}-sample "
                                    f"window)")

    def _aligned(self, x):  # (1, T, 1) -> (1, T, C) aligned with the input
        import torch

        m = self.model
        t = x.shape[1]
        lat, hop = int(m.latency), int(m.hop)
        total = t + lat
        pad = total + (-total % hop) - t  # flush the latency, whole hops
        y = m(torch.nn.functional.pad(x, (0, 0, 0, pad)))
        return y[:, lat:lat + t]

    def enhance(self, signal: np.ndarray, passes: int) -> dict:
        import torch

        from sigstream.models.uncertainty import mc_dropout

        self.check_length(len(signal))
        x = torch.from_numpy(signal)[None, :, None]  # (1, T, 1)
        out: dict[str, Any] = {"model": self.name, "samples": len(signal),
                               "sample_rate": self.model.sample_rate}
        with torch.no_grad():
            if self.is_augmentor:
                net = self.model.net
                if len(signal) == self.window:  # one window: the window model itself
                    res = net(x[..., 0])
                    y = res.reconstruction[0]
                    commands = res.actuator
                    starts = [0]
                    fn = (lambda v: net(v[..., 0]).reconstruction[0])  # noqa: E731
                else:
                    y = self._aligned(x)[0, :, 0]
                    hop = self.model.hop
                    starts = list(range(0, len(signal) - self.window + 1, hop))
                    frames = torch.stack([x[0, s:s + self.window, 0] for s in starts])
                    commands = net(frames).actuator
                    fn = (lambda v: self._aligned(v)[0, :, 0])  # noqa: E731
                out["actuator_commands"] = [
                    {"start": s, "damping": float(c[0]), "stiffness": float(c[1])}
                    for s, c in zip(starts, commands, strict=True)]
                out["latency_samples"] = 0 if len(signal) == self.window else \
                    int(self.model.latency)
            else:
                full = self._aligned(x)[0]  # (T, C)
                y = full[:, 0]
                if full.shape[1] > 1:  # every output channel, not only the first
                    out["out_channels"] = int(full.shape[1])
                    out["outputs"] = full.T.numpy().astype(float).tolist()
                fn = (lambda v: self._aligned(v)[0, :, 0])  # noqa: E731
                out["latency_samples"] = int(self.model.latency)
            if passes:
                mean, std = mc_dropout(fn, x, passes, module=self.model, seed=0)
        y_np = y.numpy()
        if not np.all(np.isfinite(y_np)):
            raise RequestError(422, "the model's output is not finite for this signal (values "
                                    "far outside the sensor's range?)")
        out["enhanced"] = y_np.astype(float).tolist()
        if passes:
            out["uncertainty"] = {"passes": passes, "mean": mean.numpy().astype(float).tolist(),
                                  "std": std.numpy().astype(float).tolist()}
        return out


def _has_dropout(model: Any) -> bool:
    from sigstream.models.uncertainty import has_dropout

    return has_dropout(model)


def create_app(enhancer: Enhancer, cfg: HttpConfig = HttpConfig()) -> Any:
    """The FastAPI application (importing fastapi only here)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.concurrency import run_in_threadpool
        from fastapi.responses import JSONResponse
        from pydantic import BaseModel, Field
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None

    class EnhanceRequest(BaseModel):
        signal: list[float] = Field(..., description="samples of one channel, in sensor "
                                                     "units; finite float32 values")
        uncertainty: int = Field(0, ge=0, le=cfg.max_passes,
                                 description="Monte-Carlo dropout passes (0: none)")

    class Command(BaseModel):
        start: int
        damping: float
        stiffness: float

    class Uncertainty(BaseModel):
        passes: int
        mean: list[float]
        std: list[float]

    class EnhanceResponse(BaseModel):
        model: str
        samples: int
        sample_rate: float | None
        latency_samples: int
        enhanced: list[float]
        out_channels: int | None = None
        outputs: list[list[float]] | None = None
        actuator_commands: list[Command] | None = None
        uncertainty: Uncertainty | None = None

    app = FastAPI(title="sigstream enhancement API",
                  description="Low-quality signal in, high-quality signal out. "
                              + ", ".join(f"{k}: {v}" for k, v in enhancer.describe().items()),
                  version="1", docs_url=None, redoc_url=None)

    @app.get("/docs", include_in_schema=False)
    def docs() -> Any:
        from fastapi.responses import HTMLResponse

        return HTMLResponse(docs_page(app.openapi(), cfg))

    def error(status: int, reason: str) -> JSONResponse:
        return JSONResponse({"detail": reason}, status_code=status)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", **enhancer.describe()}

    @app.post("/enhance", response_model=EnhanceResponse, response_model_exclude_none=True,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": EnhanceRequest.model_json_schema()}}}},
              responses={400: {"description": "empty or malformed body"},
                         413: {"description": "body or signal too large"},
                         415: {"description": "a content type other than application/json"},
                         422: {"description": "wrong length, non-finite values, bad fields"},
                         500: {"description": "the model failed (JSON reason)"}})
    async def enhance(request: Request) -> Any:
        ctype = request.headers.get("content-type", "")
        media = ctype.split(";", 1)[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            return error(415, f"content type {media!r}: the body is JSON, send it with "
                              "Content-Type: application/json (curl: -H 'Content-Type: "
                              "application/json')")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cfg.max_body:
            return error(413, f"request body is {length} bytes, at most {cfg.max_body}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cfg.max_body:
                return error(413, f"request body exceeds {cfg.max_body} bytes")
            chunks.append(chunk)
        try:
            signal, passes = parse_request(b"".join(chunks), cfg)
            enhancer.check_length(len(signal))
            return await run_in_threadpool(enhancer.enhance, signal, passes)
        except RequestError as exc:
            return error(exc.status, exc.reason)
        except Exception as exc:  # noqa: BLE001 - a model failure must not kill the server
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            return error(500, f"internal error while enhancing: {type(exc).__name__}: {first}")

    return app


def run(args: argparse.Namespace) -> int:
    import torch

    from sigstream.models.registry import build_model

    torch.set_num_threads(args.threads)
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    try:
        import uvicorn
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    cfg = HttpConfig(host=args.host, port=args.port, max_body=args.max_body,
                     max_samples=args.max_samples, max_passes=args.max_passes)
    model = build_model(args.model)
    app = create_app(Enhancer(model, args.model), cfg)
    _check_port(cfg.host, cfg.port)
    print(f"sigstream http: {args.model} on http://{cfg.host}:{cfg.port} (docs at /docs)",
          file=sys.stderr, flush=True)
    import copy

    from uvicorn.config import LOGGING_CONFIG

    logging = copy.deepcopy(LOGGING_CONFIG)  # the access log on stderr too (uvicorn: stdout)
    logging["handlers"]["access"]["stream"] = "ext://sys.stderr"
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=args.log_level,
                access_log=args.log_level in ("debug", "info"), log_config=logging)
    return 0


def docs_page(schema: dict, cfg: HttpConfig) -> str:
    """The API as one HTML page from its OpenAPI ``schema``: each operation with its
    request fields, its responses and a curl example; plain HTML and CSS, nothing fetched."""
    from html import escape

    comps = schema.get("components", {}).get("schemas", {})

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = comps.get(node["$ref"].rsplit("/", 1)[-1], {})
        return node

    def kind(node: dict) -> str:
        node = resolve(node)
        if "anyOf" in node:
            return " or ".join(kind(n) for n in node["anyOf"])
        if node.get("type") == "array":
            return f"array of {kind(node.get('items', {}))}"
        return str(node.get("type", node.get("title", "object")))

    def fields(node: dict) -> str:
        node = resolve(node)
        props = node.get("properties", {})
        if not props:
            return ""
        need = set(node.get("required", []))
        rows = "".join(
            f"<tr><td><code>{escape(name)}</code></td><td>{escape(kind(p))}</td>"
            f"<td>{'yes' if name in need else 'no'}</td>"
            f"<td>{escape(str(resolve(p).get('description', p.get('description', ''))))}</td></tr>"
            for name, p in props.items())
        return ("<table><tr><th>field</th><th>type</th><th>required</th><th>meaning</th></tr>"
                f"{rows}</table>")

    base = f"http://{cfg.host}:{cfg.port}"
    parts = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            body = (op.get("requestBody", {}).get("content", {})
                    .get("application/json", {}).get("schema"))
            ok = (op.get("responses", {}).get("200", {}).get("content", {})
                  .get("application/json", {}).get("schema"))
            curl = (f"curl -s -X POST {base}{path} -H 'Content-Type: application/json' "
                    "-d '{\"signal\": [0.1, 0.2, 0.3]}'" if method == "post"
                    else f"curl -s {base}{path}")
            responses = "".join(f"<li><b>{escape(code)}</b>: {escape(r.get('description', ''))}"
                                "</li>" for code, r in op.get("responses", {}).items())
            parts.append(
                f"<h2><code>{method.upper()} {escape(path)}</code></h2>"
                f"<p>{escape(op.get('summary', ''))}</p>"
                + (f"<h3>Request body (JSON)</h3>{fields(body)}" if body else "")
                + (f"<h3>Response 200 (JSON)</h3>{fields(ok)}" if ok else "")
                + f"<h3>Responses</h3><ul>{responses}</ul>"
                f"<h3>Example</h3><pre>{escape(curl)}</pre>")
    info = schema.get("info", {})
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{escape(info.get('title', 'API'))}</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;"
            "text-align:left;vertical-align:top}pre{background:#f4f4f4;padding:.6em;"
            "overflow-x:auto}</style></head><body>"
            f"<h1>{escape(info.get('title', 'API'))}</h1>"
            f"<p>{escape(info.get('description', ''))}</p>"
            "<p>The machine-readable schema: <a href='/openapi.json'>/openapi.json</a>.</p>"
            + "".join(parts) + "</body></html>")


def _check_port(host: str, port: int) -> None:
    """ConfigError (one line) if the address cannot be bound, before uvicorn tries."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
