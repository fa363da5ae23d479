"""sigstream.models.enhancer: speech enhancement (models, corpus, training, evaluation).

* ``enhancer``: the 48 kHz live speech enhancer (:mod:`.speech`; band gains and deep
  filtering on a low-delay STFT, 9.98 ms latency), trained on real speech and noise
  (:mod:`.corpus`, :mod:`.noises`, :mod:`.train_speech`) and evaluated against RNNoise
  (:mod:`.evaluate`).
* ``audio-enhancer``: the first release's zero-lookahead enhancer for 16 kHz
  audio-like signals (:mod:`.model`, a frame-rate GRU steering a per-sample FIR); kept
  for signals where no sample may wait.

``ENTRIES``: what this family adds to the model registry (built on first access, so
importing the package stays free of torch); ``TRAINING``: what it adds to
``sigstream train`` and ``sigstream eval`` (``enhancer --arch speech``, the default, and
``--arch causal``).
"""

from sigstream.models.training.family import Trainable

TRAINING = (
    Trainable(
        command="enhancer",
        arch="speech",
        default_arch=True,
        summary="the 48 kHz live speech enhancer (real speech and noise)",
        description="the 48 kHz speech enhancer on the real speech and noise corpus built "
                    "by `sigstream data speech` (mixtures drawn afresh every update).",
        config="sigstream.models.enhancer.train_speech:SpeechTrainConfig",
        train="sigstream.models.enhancer.train_speech:train",
        eval_config="sigstream.models.enhancer.evaluate:CausalEvalConfig",
        evaluate="sigstream.models.enhancer.evaluate:run",
        eval_description="the corpus's held-out talkers and noises at -5..15 dB: SI-SDR, "
                         "PESQ-WB, STOI and ESTOI against the noisy input, RNNoise, the "
                         "causal baselines and an offline spectral baseline; real-time "
                         "factors on ONNX Runtime in the same run.",
        example="sigstream train enhancer --out runs/speech --max-minutes 60",
        eval_example="sigstream eval enhancer --json r.json --figures figs/",
        resumable=True,
    ),
    Trainable(
        command="enhancer",
        arch="causal",
        summary="the zero-lookahead 16 kHz audio-enhancer (audio-like data)",
        description="the zero-lookahead causal enhancer on audio-like data (16 kHz), "
                    "registry name audio-enhancer. Deterministic for a given --seed and "
                    "thread count.",
        config="sigstream.models.enhancer.train:CausalTrainConfig",
        train="sigstream.models.enhancer.train:train",
        eval_config="sigstream.models.enhancer.evaluate_audio:CausalEvalConfig",
        evaluate="sigstream.models.enhancer.evaluate_audio:run",
        eval_description="held-out audio-like clips: SNR improvement against the causal "
                         "baselines (Butterworth with drift removal, ...).",
        example="sigstream train enhancer --arch causal --out runs/a",
        eval_example="sigstream eval enhancer --arch causal --json r.json --figures figs/",
        aliases={"data.audio.sample_rate": ("--rate",),
                 "data.audio.snr_range[0]": ("--snr-low",),
                 "data.audio.snr_range[1]": ("--snr-high",)},
    ),
)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: ENTRIES imports torch on first use
    if name == "ENTRIES":
        from sigstream.models.enhancer.model import CausalEnhancer, EnhancerConfig
        from sigstream.models.enhancer.speech import SpeechConfig, SpeechEnhancer
        from sigstream.models.entry import ModelEntry

        return (
            ModelEntry(
                "enhancer", "live speech enhancer, 48 kHz, 9.98 ms latency: band gains and "
                "deep filtering on a low-delay STFT (real speech and noise)", SpeechConfig,
                SpeechEnhancer, weights="enhancer.pt",
                train="sigstream train enhancer", stream_options=("atten_lim",)),
            ModelEntry(
                "audio-enhancer", "causal enhancer, zero lookahead: frame-rate GRU steering "
                "a per-sample FIR (16 kHz audio-like signals)", EnhancerConfig, CausalEnhancer,
                weights="audio-enhancer.pt", train="sigstream train enhancer --arch causal",
            ),
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
