"""``sigstream route``: one client endpoint in front of several ``sigstream serve`` workers."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sigstream.cli.args import positive_int, positive_seconds, seconds, sigint_stops


def _endpoints(text: str) -> list[str]:
    items = [e.strip() for e in text.split(",") if e.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected comma-separated endpoints, e.g. "
                                         "tcp://127.0.0.1:5601,tcp://127.0.0.1:5602")
    for e in items:
        if "://" not in e:
            raise argparse.ArgumentTypeError(f"bad endpoint {e!r}; expected e.g. "
                                             "tcp://127.0.0.1:5601")
    return items


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``route`` to the ``sigstream`` sub-command parsers; returns its parser."""
    r = sub.add_parser(
        "route", help="spread remote streams over several serve workers",
        epilog="example: sigstream route --bind tcp://127.0.0.1:5555 --workers "
               "tcp://127.0.0.1:5601,tcp://127.0.0.1:5602",
        description="A stream-affine router: clients connect to --bind exactly as to "
                    "'sigstream serve'; each stream (client, stream id) is placed on one of "
                    "the --workers by consistent hashing and stays there. A worker that "
                    "disconnects or stops answering is taken out; its streams continue on "
                    "another worker from a fresh state (the first reply after the move "
                    "carries the RESET flag). With no worker alive, requests get an ERROR "
                    "'no_workers'. Binds loopback only unless --curve-secret or --insecure is "
                    "given; --worker-key encrypts the connections to the workers (each runs "
                    "'sigstream serve --curve-secret ...'). Ctrl-C stops gracefully.")
    r.add_argument("--bind", default="tcp://127.0.0.1:5555",
                   help="endpoint clients connect to (default: tcp://127.0.0.1:5555)")
    r.add_argument("--workers", required=True, type=_endpoints, metavar="ENDPOINTS",
                   help="comma-separated endpoints of running 'sigstream serve' workers")
    r.add_argument("--worker-timeout", type=positive_seconds, default=1.0, metavar="S",
                   help="probe a worker whose requests go unanswered this long (default: 1)")
    r.add_argument("--probe-timeout", type=positive_seconds, default=1.0, metavar="S",
                   help="a worker that does not answer a probe within S s is dead (default: 1)")
    r.add_argument("--rejoin-interval", type=seconds, default=1.0, metavar="S",
                   help="probe dead workers every S s and re-add those that answer; "
                        "0 = never (default: 1)")
    r.add_argument("--stats-every", type=seconds, default=10.0, metavar="S",
                   help="seconds between one-line stats on stderr; 0 = off (default: 10)")
    r.add_argument("--curve-secret", metavar="FILE",
                   help="router certificate with secret key (zmq.auth): encrypt the client "
                        "socket with CURVE; also the router's key pair towards the workers")
    r.add_argument("--curve-clients", metavar="DIR",
                   help="with --curve-secret: only clients whose public certificates are in DIR")
    r.add_argument("--worker-key", metavar="FILE|KEY",
                   help="the workers' public certificate (or Z85 key): connect to them with "
                        "CURVE; a worker with --curve-clients must hold the router's public "
                        "certificate")
    r.add_argument("--insecure", action="store_true",
                   help="allow binding a non-loopback address without encryption")
    r.add_argument("--max-streams", type=positive_int, default=65536,
                   help="streams held at once, over all clients (default: 65536)")
    r.add_argument("--max-streams-per-client", type=positive_int, default=None, metavar="N",
                   help="streams one client (ZeroMQ identity) holds at once (default: half "
                        "of --max-streams)")
    r.set_defaults(func=run)
    return r


def run(args: argparse.Namespace) -> int:
    """Route until Ctrl-C; errors a user can cause raise SigstreamError."""
    from sigstream.stream.net.router import Router, RouterConfig
    from sigstream.stream.net.sockets import is_loopback_endpoint

    config = RouterConfig(worker_timeout=args.worker_timeout, probe_timeout=args.probe_timeout,
                          rejoin_interval=args.rejoin_interval, stats_every=args.stats_every,
                          insecure=args.insecure, curve_secret_file=args.curve_secret,
                          curve_clients_dir=args.curve_clients,
                          curve_worker_key=args.worker_key, log_events=True,
                          max_streams=args.max_streams,
                          max_streams_per_client=args.max_streams_per_client or 0)
    router = Router(args.bind, args.workers, config)
    from sigstream.cli.commands.serve import security_warnings

    for line in security_warnings(args.bind, insecure=args.insecure,
                                  curve_secret=args.curve_secret,
                                  curve_clients=args.curve_clients, role="router"):
        print(f"warning: {line}", file=sys.stderr)
    remote = [w for w in args.workers if not is_loopback_endpoint(w)]
    if remote and not args.worker_key:
        print(f"warning: talking to {', '.join(remote)} unencrypted; give --worker-key to "
              "connect with CURVE", file=sys.stderr)
    curve = [part for part, on in (("CURVE clients", args.curve_secret),
                                   ("CURVE workers", args.worker_key)) if on]
    with sigint_stops(router):
        endpoint = router.bind()
        print(f"routing on {endpoint} to {len(args.workers)} worker(s): "
              f"{', '.join(args.workers)}{''.join(', ' + c for c in curve)}; Ctrl-C stops",
              file=sys.stderr, flush=True)
        router.serve_forever()
    print(f"stopped; {router.stats_line()}", file=sys.stderr)
    return 0
