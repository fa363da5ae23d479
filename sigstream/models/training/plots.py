"""Training curves: the figure ``--plots`` writes when a run ends."""

from __future__ import annotations

import io

from sigstream.core.files import write_atomic

__all__ = ["plot_history"]


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
    ax.plot(epochs, [r[monitor] for r in rows], label=monitor.replace("_", " "))
    ax.set(xlabel="epoch", title="Training curves")
    ax.legend(fontsize=8)
    ax_lr.semilogy(epochs, [r["lr"] for r in rows], color="C4")
    ax_lr.set(xlabel="epoch", title="Learning rate")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
    return path
