"""``sigstream serve``: run a model for remote streams over ZeroMQ (wire format v1)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sigstream.cli.args import non_negative_float, positive_int, seconds, sigint_stops


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``sigstream`` sub-command parsers; returns its parser."""
    s = sub.add_parser(
        "serve", help="serve a model to remote streams over ZeroMQ",
        epilog="example: sigstream serve --model butterworth --bind tcp://127.0.0.1:5555 "
               "--max-streams 1024",
        description="Serve a model over a ZeroMQ ROUTER socket: clients (DEALER) send chunks "
                    "of any number of streams in wire format v1 and get the model's output "
                    "back per chunk; streams are batched into one model call. Binds loopback "
                    "only unless --curve-secret or --insecure is given. Ctrl-C stops "
                    "gracefully.")
    s.add_argument("--model", required=True, help="NAME, NAME:key=value,... or a checkpoint path")
    s.add_argument("--backend", default=None, choices=("torch", "torchscript", "onnx"),
                   help="run the model in eager torch, TorchScript or ONNX Runtime (default: "
                        "torch; an exported .onnx/.ts file: its own runtime)")
    s.add_argument("--threads", type=positive_int, default=1,
                   help="threads for the model runtime (default: 1)")
    s.add_argument("--bind", default="tcp://127.0.0.1:5555",
                   help="endpoint to bind (default: tcp://127.0.0.1:5555; port * picks one)")
    s.add_argument("--max-batch", type=positive_int, default=1024,
                   help="messages taken per loop iteration, so streams per model call "
                        "(default: 1024)")
    s.add_argument("--idle-timeout", type=seconds, default=60.0,
                   help="free a stream after this many seconds without a message; 0 = never "
                        "(default: 60)")
    s.add_argument("--max-streams", type=positive_int, default=4096,
                   help="streams held at once, over all clients (default: 4096)")
    s.add_argument("--max-streams-per-client", type=positive_int, default=None, metavar="N",
                   help="streams one client (ZeroMQ identity) holds at once, so that one "
                        "client cannot take every slot (default: half of --max-streams)")
    s.add_argument("--new-stream-rate", type=non_negative_float, default=1000.0, metavar="R",
                   help="per client: messages per second that hold no stream yet (new "
                        "streams, malformed messages, STATS); beyond them (and a burst of "
                        "--new-stream-burst) they are dropped unanswered but for one "
                        "rate_limited ERROR per second; 0 = no limit (default: 1000)")
    s.add_argument("--new-stream-burst", type=positive_int, default=None, metavar="N",
                   help="per client: such messages at once before the rate applies "
                        "(default: the per-client stream quota)")
    s.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where the streams' model state lives: this process, or --shards Ray "
                        "actors behind the same ZeroMQ front door (sigstream[ray]) "
                        "(default: local)")
    s.add_argument("--shards", type=positive_int, default=2,
                   help="--engine ray: actors; a new stream goes to the one holding the "
                        "fewest and stays there (default: 2)")
    s.add_argument("--max-shards", type=positive_int, default=None, metavar="M",
                   help="--engine ray: add actors while serving, up to M: one more starts "
                        "when every actor holds --streams-per-shard streams, and takes new "
                        "streams once it answers; existing streams stay (default: --shards)")
    s.add_argument("--streams-per-shard", type=positive_int, default=None, metavar="K",
                   help="--engine ray with --max-shards: streams an actor holds before "
                        "another one starts")
    s.add_argument("--start-timeout", type=seconds, default=120.0, metavar="S",
                   help="--engine ray: seconds an actor may take to start (a node with a "
                        "free CPU, the model loaded) before serve gives up on it (default: 120)")
    s.add_argument("--address", metavar="ADDR",
                   help="--engine ray: an existing cluster (auto, ray://HOST:PORT); default: "
                        "a private local Ray on 127.0.0.1, stopped at the end")
    s.add_argument("--reset-on-gap", action="store_true",
                   help="reset a stream's state when its sequence numbers jump")
    s.add_argument("--stats-every", type=seconds, default=10.0,
                   help="seconds between one-line stats on stderr; 0 = off (default: 10)")
    s.add_argument("--curve-secret", metavar="FILE",
                   help="server certificate with secret key (zmq.auth): encrypt with CURVE")
    s.add_argument("--curve-clients", metavar="DIR",
                   help="with --curve-secret: only clients whose public certificates are in DIR")
    s.add_argument("--insecure", action="store_true",
                   help="allow binding a non-loopback address without encryption")
    s.set_defaults(func=run)
    return s


def run(args: argparse.Namespace) -> int:
    """Run the server until Ctrl-C; errors a user can cause raise SigstreamError."""
    from sigstream.export.backends import load_model, resolve_backend
    from sigstream.stream.net.server import Server, ServerConfig

    args.backend = resolve_backend(args.model, args.backend)
    if args.engine != "ray" and args.address:
        from sigstream.core.errors import ConfigError

        raise ConfigError("--address is the Ray cluster's: it needs --engine ray")
    if args.engine != "ray" and (args.max_shards or args.streams_per_shard):
        from sigstream.core.errors import ConfigError

        raise ConfigError("--max-shards and --streams-per-shard need --engine ray")
    if args.engine == "ray":
        from sigstream.cli.ray_serve import check_growth

        check_growth(args.shards, args.max_shards, args.streams_per_shard or 0)
    if args.engine == "ray":
        from sigstream.cli.ray_engine import import_ray

        import_ray()  # one line before anything starts when Ray is missing
        if args.address:
            from sigstream.cli.ray_engine import check_address

            check_address(args.address)  # before the model loads: Ray would retry for minutes

    config = ServerConfig(
        max_batch=args.max_batch, idle_timeout=args.idle_timeout,
        max_streams=args.max_streams, max_streams_per_client=args.max_streams_per_client or 0,
        new_stream_rate=args.new_stream_rate, new_stream_burst=args.new_stream_burst or 0,
        reset_on_gap=args.reset_on_gap, stats_every=args.stats_every,
        curve_secret_file=args.curve_secret, curve_clients_dir=args.curve_clients,
        insecure=args.insecure,
    )
    shards: list[Any] = []

    def factory() -> Any:  # runs after the bind address and keys are checked
        if args.engine == "ray":
            from sigstream.cli.ray_serve import ShardedRunner

            shards.append(ShardedRunner(args.model, args.backend, args.shards, args.threads,
                                        args.address, max_shards=args.max_shards,
                                        streams_per_shard=args.streams_per_shard or 0,
                                        start_timeout=args.start_timeout))
            return shards[0]
        import torch

        torch.set_num_threads(args.threads)  # eager torch too (it took every core)
        return load_model(args.model, args.backend, threads=args.threads)

    server = Server(factory, bind=args.bind, config=config)
    for line in security_warnings(args.bind, insecure=args.insecure,
                                  curve_secret=args.curve_secret,
                                  curve_clients=args.curve_clients):
        print(f"warning: {line}", file=sys.stderr)
    try:
        with sigint_stops(server):
            endpoint = server.bind()
            m = server.runner.model
            where = f", {args.shards} Ray actors" if args.engine == "ray" else ""
            print(f"serving {args.model} on {endpoint}: hop {server.hop}, "
                  f"channels {server.in_channels or 'any'} -> {getattr(m, 'out_channels', '?')}"
                  f"{', CURVE' if args.curve_secret else ''}{where}; Ctrl-C stops",
                  file=sys.stderr, flush=True)
            server.serve_forever()
    finally:
        for runner in shards:
            runner.close()
            if runner.started:
                runner.ray.shutdown()
    print(f"stopped; {server.stats_line()}", file=sys.stderr)
    return 0


def security_warnings(bind: str, *, insecure: bool, curve_secret: str | None,
                      curve_clients: str | None, role: str = "server") -> list[str]:
    """What a user should know about who can reach the server (or the router: ``role``),
    one line each."""
    from sigstream.stream.net.sockets import is_loopback_endpoint

    out = []
    doing = "serving" if role == "server" else "routing"
    if insecure and not curve_secret and not is_loopback_endpoint(bind):
        out.append(f"{doing} {bind} unencrypted and unauthenticated; anyone who can reach it "
                   "can send data")
    if curve_secret and not curve_clients:
        out.append(f"encrypted, but any client key is accepted: anyone who knows the {role}'s "
                   "public key can send data; --curve-clients DIR admits only those clients")
    return out
