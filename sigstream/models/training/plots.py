"""Training curves: the figure ``--plots`` writes when a run ends."""

from __future__ import annotations

import io

from sigstream.core.files import write_atomic

__all__ = ["plot_history"]

_WORDS = {"val": "validation", "nll": "NLL", "mse": "MSE", "psnr": "PSNR", "snr": "SNR",
          "db": "(dB)", "lr": "learning rate"}


def _words(key: str) -> str:
    """A history key in words: ``val_nll`` -> "validation NLL"."""
    return " ".join(_WORDS.get(w, w) for w in key.split("_"))


def plot_history(rows: list[dict], monitor: str, path: str) -> str:
    """Train loss and the monitored validation value per epoch (left), the learning rate
    (right), as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.6))
    if all("train_loss" in r for r in rows):
        ax.plot(epochs, [r["train_loss"] for r in rows], label="train loss")
    ax.plot(epochs, [r[monitor] for r in rows], label=_words(monitor))
    ax.set(xlabel="epoch", ylabel="loss (task units, lower is better)",
           title="Training curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax_lr.semilogy(epochs, [r["lr"] for r in rows], color="C4")
    ax_lr.set(xlabel="epoch", ylabel="learning rate (log scale)",
              title="Learning rate")
    ax_lr.grid(alpha=0.3, which="both")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
    return path
