"""``sigstream models``: the built-in models with hop, latency, state size and weights."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the built-in models",
                       description="List the built-in models with hop, latency, state size, "
                                   "sample rate and whether pretrained weights ship.",
                       epilog="example: sigstream models --json | jq '.[].name'")
    p.add_argument("--json", action="store_true",
                   help="print the list as JSON (one object per model) instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sigstream.core import state as st
    from sigstream.models.registry import MODELS, shipped_weights

    rows = [("model", "hop", "latency", "state/stream", "rate Hz", "in->out", "pretrained",
             "description")]
    records = []
    for name, entry in MODELS.items():
        m = entry.build(entry.config_type())
        size = st.state_size(m.init_state(1))
        rate = f"{m.sample_rate:g}" if m.sample_rate else "any"
        files = shipped_weights(entry) if entry.weights else []
        if entry.weights:
            weights = ("yes: " + ", ".join(files)) if files else "not yet (train it)"
        else:
            weights = "none needed"
        rows.append((name, str(m.hop), str(m.latency), str(size), rate,
                     f"{m.in_channels}->{m.out_channels}", weights, entry.description))
        records.append({"name": name, "hop": int(m.hop), "latency": int(m.latency),
                        "decimation": int(getattr(m, "decimation", 1)),
                        "state_size": int(size), "sample_rate": m.sample_rate,
                        "in_channels": m.in_channels, "out_channels": m.out_channels,
                        "needs_weights": bool(entry.weights), "weights": files,
                        "description": entry.description})
    if args.json:
        import json

        print(json.dumps(records, indent=2))
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0
