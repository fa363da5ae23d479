"""Live audio: a microphone source, a speaker sink and a duplex mode, on sounddevice.

N: frames, C: channels.

::

    device ──callback──> input ring ──worker: Pipeline (stages)──> output ring ──callback──> device

The PortAudio callback (:class:`AudioBridge`) only copies: captured frames into the
input ring, the output ring into the device buffer, and (when recording) the played
frames into a monitor ring. It allocates no sample memory, never blocks, logs
nothing and never calls the model. The worker is the thread that runs
:meth:`~sigstream.stream.pipeline.Pipeline.run`: :class:`MicSource` hands it what the
callback captured (it sleeps in short steps while the ring is empty: no lock is ever
shared with the callback), the stages run, :class:`SpeakerSink` puts the result into
the output ring.

Timing of the output. Processed frame ``i`` is played at device frame ``i + D``:
``D`` (the output delay, "ring depth") is ``max(prefill, first callback size)``, so
the worker has one block period to process a block before it is due. When the worker
is late, the callback plays zeros for the missing frames (an output *ring underrun*,
counted) and the frames that arrive after their slot are discarded (``late_frames``),
so the delay never creeps up: the played stream stays sample-aligned with the input,
with zeros where it was late. When the worker falls so far behind that the input ring
is full, the callback drops the captured block (an input *ring overrun*, counted).
PortAudio's own flags (``input_overflow``, ``output_underflow``, ...; the device or
JACK missed a deadline) are counted separately.

sounddevice is imported lazily (:func:`load_sounddevice`), so the rest of sigstream
works on machines without PortAudio; a missing library or device is one
:class:`~sigstream.core.errors.InputError` line naming what to install.
"""

from sigstream.stream.audio.bridge import AudioBridge, LatencyBudget, XrunCounters
from sigstream.stream.audio.device import (
    PORTAUDIO_HINT,
    AudioConfig,
    AudioDevice,
    find_device,
    list_devices,
    load_sounddevice,
    parse_latency,
    probe_devices,
)
from sigstream.stream.audio.endpoints import (
    MicSource,
    RecordingSink,
    RecordingSource,
    SpeakerSink,
    open_audio,
    rate_adapted,
    warm_up,
)

__all__ = [
    "AudioConfig", "AudioBridge", "AudioDevice", "MicSource", "SpeakerSink", "XrunCounters",
    "LatencyBudget", "RecordingSource", "RecordingSink", "load_sounddevice", "open_audio",
    "parse_latency", "list_devices", "rate_adapted", "warm_up", "find_device",
    "probe_devices", "PORTAUDIO_HINT",
]
