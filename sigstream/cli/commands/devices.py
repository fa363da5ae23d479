"""``sigstream devices``: the audio devices PortAudio sees, as ``python -m sounddevice``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list audio devices (for mic:DEVICE / speaker:DEVICE)",
                       description="List the audio devices PortAudio sees, like `python -m "
                                   "sounddevice`: '>' marks the default input, '<' the default "
                                   "output. Use the index or a name substring in mic:DEVICE "
                                   "and speaker:DEVICE.",
                       epilog="example: sigstream devices | grep -i usb")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sigstream.stream.audio.device import list_devices

    print(list_devices())
    return 0
