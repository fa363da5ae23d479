"""Pipeline: source -> ring buffer -> stage(s) -> sink.

N: frames, C: channels.

The source delivers chunks of any size; the ring buffer re-blocks them into
blocks of exactly ``block`` frames for the stages (a live source's callback
writes into the same ring from its own thread). At the end of input, or on
Ctrl-C / :meth:`Pipeline.stop`, the ring is drained: the last partial block is
zero-padded up to a whole hop, processed, and trimmed, so every frame that
entered leaves — output length equals input length (times the stages'
decimation). On an error the sink is aborted, leaving no output file that looks
complete.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from sigstream.core.errors import ConfigError, InputError
from sigstream.core.protocol import chain
from sigstream.stream.io.sinks import Sink
from sigstream.stream.io.sources import Source
from sigstream.stream.ring_buffer import RingBuffer
from sigstream.stream.stage import Stage
from sigstream.stream.stats import Stats


@dataclass(frozen=True)
class PipelineConfig:
    """block: frames per stage call; realtime: pace a file/synthetic source at its sample rate;
    max_frames: stop after this many input frames; ring_blocks: ring capacity in blocks;
    status_interval: seconds between ``on_status`` calls."""

    block: int = 256
    realtime: bool = False
    max_frames: int | None = None
    ring_blocks: int = 8
    status_interval: float = 0.5


class Pipeline:
    """Wire a source through stages into a sink; :meth:`run` returns the :class:`Stats`."""

    def __init__(self, source: Source, stages: Sequence[Stage], sink: Sink,
                 config: PipelineConfig | None = None) -> None:
        self.source, self.stages, self.sink = source, list(stages), sink
        self.config = config or PipelineConfig()
        block = self.config.block
        self.hop, self.latency, self.decimation = chain(self.stages)
        if block < 1:
            raise ConfigError(f"block must be >= 1, got {block}")
        if block % self.hop:
            good = self.hop * max(1, round(block / self.hop))
            raise ConfigError(
                f"block {block} is not a multiple of the model's hop {self.hop}; use --block {good}"
            )
        self.channels = source.channels
        if self.stages:
            want = int(self.stages[0].in_channels or 0)
            if want and want != self.channels:
                model = getattr(getattr(self.stages[0], "runner", None), "model", None)
                config = getattr(model, "config", None)
                choose = ("--mix averages the channels into one, --pick 1 takes the first"
                          if want == 1 else
                          f"--pick {','.join(str(i + 1) for i in range(want))} takes the "
                          f"first {want}")
                ways = ([f"configure the model for {self.channels} (e.g. NAME:channels="
                         f"{self.channels})"] if hasattr(config, "channels") else [])
                ways += [choose] if want < self.channels else []
                hint = ", or ".join(ways) if ways else f"give it {want}-channel input"
                raise InputError(
                    f"the source has {self.channels} channel(s) but the model expects {want}; "
                    + hint)
        self.sample_rate = source.sample_rate
        for s in self.stages:
            rate = getattr(s, "sample_rate", None)
            if rate and self.sample_rate and float(rate) != float(self.sample_rate):
                raise InputError(
                    f"the source runs at {self.sample_rate:g} Hz but the model expects "
                    f"{float(rate):g} Hz; add --resample to resample it to {float(rate):g} Hz "
                    f"and back (or, for a filter, set its rate: "
                    f"NAME:sample_rate={self.sample_rate:g})"
                )
            if rate and not self.sample_rate:
                self.sample_rate = float(rate)
        if self.config.realtime and not self.sample_rate:
            raise ConfigError("real-time pacing needs a sample rate; give the source a rate")
        self.out_channels = int(self.stages[-1].out_channels) if self.stages else self.channels
        self.out_rate = self.sample_rate / self.decimation if self.sample_rate else None
        # count NaN output rows only for models that may write them on purpose (a check per
        # block costs a pass over the output)
        self._nan_check = any(
            getattr(getattr(getattr(s, "runner", None), "model", None), "accepts_nan", False)
            for s in self.stages)
        self.ring = RingBuffer(block * max(2, self.config.ring_blocks), self.channels, "error")
        self._stop = threading.Event()
        self.interrupted = False  # set when Ctrl-C (SIGINT) stopped the run

    def stop(self) -> None:
        """Ask :meth:`run` to stop reading; it drains what has entered and returns."""
        self._stop.set()
        stop_source = getattr(self.source, "stop", None)
        if callable(stop_source):  # a live source may be blocked waiting for data
            stop_source()

    # -- the loop ------------------------------------------------------------------
    def run(self, on_status: Callable[[Stats], None] | None = None,
            on_start: Callable[[], None] | None = None) -> Stats:
        """Run until the end of input or :meth:`stop`; ``on_start`` is called once Ctrl-C
        is handled (stop and drain), ``on_status`` every ``status_interval`` seconds."""
        cfg = self.config
        block = cfg.block
        stats = Stats(sample_rate=self.sample_rate,
                      algorithmic_latency_s=(self.latency / self.sample_rate
                                             if self.sample_rate else 0.0))
        channels, ring = self.channels, self.ring
        buf = np.zeros((block, channels), dtype=np.float32)  # one block, reused
        arrivals: deque[tuple[int, float]] = deque()  # (end frame index, arrival time)
        consumed = 0
        clock = time.perf_counter
        t0 = clock()
        next_status = t0 + cfg.status_interval
        limit = cfg.max_frames

        def process(n_valid: int, n_padded: int, x: np.ndarray = buf) -> None:
            nonlocal consumed
            t_start = clock()
            y = x[:n_padded]
            for stage in self.stages:
                y = stage.process(y)
            t_done = clock()
            n_out = y.shape[0] if n_valid == n_padded else y.shape[0] * n_valid // n_padded
            self.sink.write(y[:n_out])
            t_written = clock()
            while arrivals and arrivals[0][0] <= consumed:
                arrivals.popleft()
            if arrivals:
                stats.latency.add(t_written - arrivals[0][1])
            stats.compute.add(t_done - t_start)
            stats.chunks += 1
            stats.samples_out += n_out
            if n_out and self._nan_check:
                stats.nan_rows += int(np.isnan(y[:n_out]).any(axis=1).sum())
            consumed += n_valid

        self.sink.open(self.out_rate, self.out_channels)
        try:
            with self._sigint_stops():
                if on_start is not None:
                    on_start()
                while not self._stop.is_set():
                    # what completes the next block: whole blocks after a short read
                    waiting = ring.available
                    want = block - waiting
                    if limit is not None:
                        want = min(want, limit - stats.samples_in)
                    if want <= 0:
                        break
                    data = self.source.read(want)
                    if data is None:
                        break
                    n = data.shape[0]
                    if cfg.realtime and not getattr(self.source, "live", False):
                        delay = t0 + (stats.samples_in + n) / self.sample_rate - clock()
                        if delay > 0:
                            time.sleep(delay)
                    stats.samples_in += n
                    arrivals.append((stats.samples_in, clock()))
                    if (n == block and not waiting and type(data) is np.ndarray
                            and data.dtype == np.float32 and data.shape[1:] == (channels,)
                            and data.flags.c_contiguous and data.flags.writeable):
                        # a whole block and nothing waiting: straight to the stages (they
                        # only read it), without the copy in and out of the ring (read-only
                        # blocks, e.g. views of received messages, take the ring: torch
                        # warns on them)
                        process(block, block, data)
                    else:
                        ring.write(data)
                        while ring.available >= block:
                            ring.read_into(buf)
                            process(block, block)
                    if on_status is not None and clock() >= next_status:
                        self._sync_counters(stats, t0)
                        on_status(stats)
                        next_status += cfg.status_interval
                # drain: everything that entered leaves
                while self.ring.available >= block:
                    self.ring.read_into(buf)
                    process(block, block)
                n = self.ring.available
                if n:
                    padded = -(-n // self.hop) * self.hop
                    buf[n:padded] = 0.0
                    self.ring.read_into(buf[:n])
                    process(n, padded)
        except BaseException:
            self.sink.abort()
            raise
        finally:
            self.source.close()
        self.sink.close()
        self._sync_counters(stats, t0)
        return stats

    def _sync_counters(self, stats: Stats, t0: float) -> None:
        stats.wall_s = time.perf_counter() - t0
        ring = self.ring
        stats.overruns = ring.overruns + int(getattr(self.source, "overruns", 0))
        stats.underruns = ring.underruns + int(getattr(self.sink, "underruns", 0))
        stats.dropped = ring.dropped + int(getattr(self.source, "dropped", 0))
        stats.rejected = int(getattr(self.source, "rejected", 0))

    @contextmanager
    def _sigint_stops(self) -> Iterator[None]:
        """In the main thread, the first Ctrl-C stops reading (then drains); a second one aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:
            if self._stop.is_set():
                raise KeyboardInterrupt
            self.interrupted = True
            self.stop()

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
