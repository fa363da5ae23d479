"""Causal Butterworth filters as a streamable model: the classical baseline.

B: batch, T: time, C: channels, S: second-order sections.

The filter is designed with ``scipy.signal.butter(output="sos")`` and run with
``scipy.signal.sosfilt``; its memory (``zi``) is the stream state, so the
streamed output equals ``sosfilt`` over the whole signal. Filtering runs in
float64 (IIR memories of low cut-offs need the precision); input and output
are float32.

Export: ``sosfilt`` cannot be traced, so the model also has a tensor-only path
(:meth:`Butterworth.step_native`), used while tracing for ONNX / TorchScript, or
always with ``native=True``. The cascade is one linear state-space system
``s' = A s + B x``, ``y = C s + D x`` (N = 2S states per channel, in ``zi``'s
order), computed on blocks of K samples: inside a block a (K, K) Toeplitz
matrix of the impulse response, across blocks the block start states from a
block-Toeplitz matrix of the powers ``A^(K d)``. The tables are precomputed in
float64, so a chunk costs a few matrix products and no per-sample loop; they
cover chunks of up to ``max_chunk`` samples (eager calls split longer chunks,
exported runners split them using the file's metadata).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy import signal
from torch import Tensor

from sigstream.core.contract import StreamingModule
from sigstream.core.errors import ConfigError

KINDS = ("lowpass", "highpass", "bandpass", "bandstop")


@dataclass(frozen=True)
class ButterworthConfig:
    """kind: lowpass | highpass | bandpass | bandstop; ``low``/``high`` in Hz.

    Low-pass uses ``high`` as its cut-off, high-pass uses ``low``; band filters use both.
    """

    kind: str = "lowpass"
    order: int = 4
    low: float = 1.0
    high: float = 40.0
    sample_rate: float = 1000.0
    channels: int = 1

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown Butterworth kind {self.kind!r}; choose one of {KINDS}")
        if not 1 <= self.order <= 16:
            raise ConfigError(f"Butterworth order must be 1..16, got {self.order}")
        if self.channels < 1:
            raise ConfigError(f"channels must be >= 1, got {self.channels}")
        nyq = self.sample_rate / 2
        edges = self.edges()
        for e in edges:
            if not 0 < e < nyq:
                raise ConfigError(
                    f"cut-off {e} Hz must lie strictly between 0 and Nyquist ({nyq} Hz)"
                )
        if len(edges) == 2 and not edges[0] < edges[1]:
            raise ConfigError(f"need low < high for a {self.kind} filter, got {edges}")

    def edges(self) -> tuple[float, ...]:
        if self.kind == "lowpass":
            return (self.high,)
        if self.kind == "highpass":
            return (self.low,)
        return (self.low, self.high)

    def sos(self) -> np.ndarray:
        """(S, 6) second-order sections."""
        self.validate()
        wn = self.edges()
        return signal.butter(self.order, wn if len(wn) == 2 else wn[0], btype=self.kind,
                             fs=self.sample_rate, output="sos")


class ButterworthState(NamedTuple):
    """zi: (B, S, 2, C) float64 filter memory (``sosfilt``'s axis-1 ``zi``, B and S swapped)."""

    zi: Tensor


class Butterworth(StreamingModule):
    """A causal IIR Butterworth filter, applied to every channel independently.

    ``step``/``forward`` run ``scipy.signal.sosfilt``; with ``native=True``, or while
    being traced for export, they run :meth:`step_native` (tensor ops only, same result).
    """

    block = 64  # K: samples per block of the native path

    def __init__(self, config: ButterworthConfig | None = None, *, native: bool = False) -> None:
        super().__init__()
        self.config = config or ButterworthConfig()
        self._sos = np.ascontiguousarray(self.config.sos(), dtype=np.float64)
        self.in_channels = self.out_channels = self.config.channels
        self.sample_rate = self.config.sample_rate
        self.hop, self.latency = 1, 0
        self.native = native
        self._n = n = 2 * self._sos.shape[0]  # states per channel
        # blocks per chunk: the block-Toeplitz matrix is (nb * N)^2, kept <= 2048^2
        self.max_blocks = max(1, min(64, 2048 // n))
        self.max_chunk = self.block * self.max_blocks
        for name, table in _native_tables(self._sos, self.block, self.max_blocks).items():
            self.register_buffer(name, torch.from_numpy(table), persistent=False)

    @property
    def sos(self) -> np.ndarray:
        return self._sos.copy()

    def init_state(self, batch: int) -> ButterworthState:
        s = self._sos.shape[0]
        return ButterworthState(torch.zeros(batch, s, 2, self.in_channels, dtype=torch.float64))

    def step(self, x: Tensor, state: ButterworthState) -> tuple[Tensor, ButterworthState]:
        if self.native or _tracing():
            return self.step_native(x, state)
        if x.shape[1] == 0:  # sosfilt cannot take an empty signal
            return x.new_zeros(x.shape), state
        xn, zn = x.detach().cpu().numpy(), state.zi.detach().cpu().numpy()
        if _kernel_ok():
            y, zf = _sosfilt_bsc(self._sos, xn, zn)
        else:  # pragma: no cover - only when scipy's kernel moved or changed
            zi = zn.transpose(1, 0, 2, 3)  # (S, B, 2, C) for sosfilt
            yd, zd = signal.sosfilt(self._sos, xn.astype(np.float64), axis=1, zi=zi)
            y, zf = yd.astype(np.float32), np.ascontiguousarray(zd.transpose(1, 0, 2, 3))
        return torch.from_numpy(y), ButterworthState(torch.from_numpy(zf))

    def step_native(self, x: Tensor, state: ButterworthState) -> tuple[Tensor, ButterworthState]:
        """``step`` with tensor ops only (traceable with dynamic B and T); equals ``sosfilt``.

        A traced graph takes 1 <= T <= ``max_chunk``; eagerly any T works (longer chunks
        are split, an empty chunk leaves the state unchanged).
        """
        if not _tracing():
            t = x.shape[1]
            if t == 0:
                return x.new_zeros(x.shape), state
            if t > self.max_chunk:
                outs = []
                for start in range(0, t, self.max_chunk):
                    y, state = self._native_chunk(x[:, start:start + self.max_chunk], state)
                    outs.append(y)
                return torch.cat(outs, dim=1), state
        return self._native_chunk(x, state)

    def _native_chunk(self, x: Tensor, state: ButterworthState) -> tuple[Tensor, ButterworthState]:
        # B: batch, C: channels, N = 2S states, K: block, nb: blocks in this chunk (dynamic)
        b, t, c = x.shape
        k, n = self.block, self._n
        nb = (t + k - 1) // k
        xd = x.to(torch.float64)
        xd = torch.cat([xd, xd.new_zeros(b, k - 1, c)], dim=1)[:, :nb * k]  # to whole blocks
        xb = xd.transpose(1, 2).reshape(b, c, nb, k)  # (B, C, nb, K)
        s0 = state.zi.permute(0, 3, 1, 2).reshape(b, c, n)  # (B, C, N)
        # block start states: s_i = A^(K i) s0 + sum_{j < i} A^(K (i - 1 - j)) z_j, with
        # z_j the state block j leaves behind from a zero state
        z = torch.matmul(xb, self.ss_gather.T)  # (B, C, nb, N)
        idx = torch.arange(nb, device=x.device)
        lag = idx[:, None] - 1 - idx[None, :]
        lag = torch.where(lag >= 0, lag, torch.full_like(lag, self.max_blocks + 1))  # -> zeros
        g = self.ss_block_pow.index_select(0, lag.reshape(-1)).reshape(nb, nb, n, n)
        g = g.permute(0, 2, 1, 3).reshape(nb * n, nb * n)
        p0 = self.ss_block_pow[:nb].reshape(nb * n, n)  # A^(K i), stacked over i
        starts = torch.matmul(z.reshape(b, c, nb * n), g.T) + torch.matmul(s0, p0.T)
        starts = starts.reshape(b, c, nb, n)
        # output: zero-state response inside each block + free response of its start state
        y = torch.matmul(xb, self.ss_toeplitz.T) + torch.matmul(starts, self.ss_observe.T)
        y = y.reshape(b, c, nb * k)[:, :, :t].transpose(1, 2)
        # final state, from the last block's start state and its r = T - (nb - 1) K samples
        r = t - (nb - 1) * k
        r = (r if isinstance(r, Tensor) else torch.tensor(r)).reshape(1).to(x.device)
        a_r = self.ss_pow.index_select(0, r)[0]  # A^r (N, N)
        lag = r - 1 - torch.arange(k, device=x.device)  # sample j of the block: A^(r - 1 - j) B
        lag = torch.where(lag >= 0, lag, torch.full_like(lag, k))  # j >= r: the zero row
        q_r = self.ss_impulse_state.index_select(0, lag)  # (K, N)
        s_end = torch.matmul(starts[:, :, -1], a_r.T) + torch.matmul(xb[:, :, -1], q_r)
        zi = s_end.reshape(b, c, -1, 2).permute(0, 2, 3, 1)  # (B, S, 2, C)
        return y.to(x.dtype), ButterworthState(zi)

    def forward(self, x: Tensor) -> Tensor:
        if self.native or _tracing():
            return self.step_native(x, self.init_state(x.shape[0]))[0]
        y = signal.sosfilt(self._sos, x.detach().numpy().astype(np.float64), axis=1)
        return torch.from_numpy(y.astype(np.float32))

    def describe(self) -> dict:
        return asdict(self.config)


try:  # the compiled loop behind scipy.signal.sosfilt, without the wrapper's ~55 us per call
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - a scipy that moved it: sosfilt itself is used
    _sosfilt_kernel = None


def _sosfilt_bsc(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sosfilt`` of ``x`` (B, T, C) from memory ``zi`` (B, S, 2, C): (y float32, zf) with
    zf in zi's layout. Both are copied before the kernel filters them in place, so the
    caller's chunk and state are never written."""
    b, t, c = x.shape
    s = zi.shape[1]
    xs = np.array(x.transpose(0, 2, 1), dtype=np.float64, order="C").reshape(b * c, t)
    zs = np.array(zi.transpose(0, 3, 1, 2), dtype=np.float64, order="C").reshape(b * c, s, 2)
    _sosfilt_kernel(sos, xs, zs)  # type: ignore[misc]
    y = np.ascontiguousarray(xs.reshape(b, c, t).transpose(0, 2, 1), dtype=np.float32)
    return y, np.ascontiguousarray(zs.reshape(b, c, s, 2).transpose(0, 2, 3, 1))


@functools.cache
def _kernel_ok() -> bool:
    """Whether scipy's private kernel is there and gives what ``sosfilt`` gives (checked once
    per process on a two-stream, two-channel chunk with memory; else ``sosfilt`` is used)."""
    if _sosfilt_kernel is None:
        return False
    rng = np.random.default_rng(0)
    sos = signal.butter(3, [0.1, 0.3], "bandpass", output="sos")
    x = rng.standard_normal((2, 50, 2)).astype(np.float32)
    zi = rng.standard_normal((2, sos.shape[0], 2, 2))
    try:
        y, zf = _sosfilt_bsc(np.ascontiguousarray(sos), x, zi)
    except (TypeError, ValueError):  # pragma: no cover
        return False
    ref, zref = signal.sosfilt(sos, x.astype(np.float64), axis=1, zi=zi.transpose(1, 0, 2, 3))
    return bool(np.array_equal(y, ref.astype(np.float32))
                and np.array_equal(zf, zref.transpose(1, 0, 2, 3)))


def _tracing() -> bool:
    """True while torch.jit.trace / the TorchScript ONNX exporter / torch.export runs."""
    if torch.jit.is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def state_space(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(A, B, C, D) of the SOS cascade in ``sosfilt``'s direct form II transposed.

    State ``s[2 i + k]`` is section i's ``zi[i, k]``; ``s' = A s + B x``, ``y = C s + D x``.
    """
    n = 2 * sos.shape[0]
    a_mat, b_vec = np.zeros((n, n)), np.zeros(n)
    u_s, u_x = np.zeros(n), 1.0  # a section's input as (coefficients on s, on x)
    for i, (b0, b1, b2, _a0, a1, a2) in enumerate(sos / sos[:, 3:4]):
        z0, z1 = 2 * i, 2 * i + 1
        y_s, y_x = b0 * u_s, b0 * u_x  # y = b0 u + z0
        y_s[z0] += 1.0
        a_mat[z0] = b1 * u_s - a1 * y_s  # z0' = b1 u - a1 y + z1
        a_mat[z0, z1] += 1.0
        b_vec[z0] = b1 * u_x - a1 * y_x
        a_mat[z1] = b2 * u_s - a2 * y_s  # z1' = b2 u - a2 y
        b_vec[z1] = b2 * u_x - a2 * y_x
        u_s, u_x = y_s, y_x
    return a_mat, b_vec, u_s, float(u_x)


def _powers(a_mat: np.ndarray, b_vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A^0 .. A^K, A^0 B .. A^K B)``: (K + 1, N, N) and (K + 1, N)."""
    pows = [np.eye(a_mat.shape[0])]
    for _ in range(k):
        pows.append(a_mat @ pows[-1])
    pow_k = np.stack(pows)
    return pow_k, pow_k @ b_vec


def _native_tables(sos: np.ndarray, k: int, max_blocks: int) -> dict[str, np.ndarray]:
    """float64 tables of the blockwise state-space filter (names of the registered buffers)."""
    a_mat, b_vec, c_vec, d = state_space(sos)
    n = a_mat.shape[0]
    pow_k, ab = _powers(a_mat, b_vec, k)  # A^r, A^j B
    impulse = np.concatenate([[d], ab[:k - 1] @ c_vec])  # h[0] = D, h[j] = C A^(j - 1) B
    lag = np.arange(k)[:, None] - np.arange(k)[None, :]
    toeplitz = np.where(lag >= 0, impulse[np.clip(lag, 0, None)], 0.0)  # (K, K)
    block_pow = [np.eye(n)]  # A^(K d) for d = 0 .. max_blocks, then a zero matrix
    for _ in range(max_blocks):
        block_pow.append(pow_k[k] @ block_pow[-1])
    block_pow.append(np.zeros((n, n)))
    return {
        "ss_toeplitz": toeplitz,  # (K, K): zero-state response inside a block
        "ss_gather": ab[:k][::-1].T.copy(),  # (N, K): the state a block leaves from zero
        "ss_observe": pow_k[:k].transpose(0, 2, 1) @ c_vec,  # (K, N): C A^t
        "ss_block_pow": np.stack(block_pow),  # (max_blocks + 2, N, N)
        "ss_pow": pow_k,  # (K + 1, N, N): A^r
        "ss_impulse_state": np.concatenate([ab[:k], np.zeros((1, n))]),  # (K + 1, N): A^j B
    }


def _bank_tables(soses: list[np.ndarray], k: int) -> dict[str, np.ndarray]:
    """float64 tables of O SOS cascades fed by one input, as one block-diagonal state-space
    system of N = sum 2 S_o states and O outputs, for chunks of up to K samples (names of
    :class:`SosBank`'s buffers)."""
    systems = [state_space(s) for s in soses]
    n = sum(a.shape[0] for a, *_ in systems)
    o = len(systems)
    a_mat, b_vec, c_mat, d_vec = np.zeros((n, n)), np.zeros(n), np.zeros((o, n)), np.zeros(o)
    at = 0
    for j, (a, b, c, d) in enumerate(systems):
        m = a.shape[0]
        a_mat[at:at + m, at:at + m], b_vec[at:at + m], c_mat[j, at:at + m] = a, b, c
        d_vec[j] = d
        at += m
    pow_k, ab = _powers(a_mat, b_vec, k)  # A^r, A^j B
    impulse = np.concatenate([d_vec[:, None], (ab[:k - 1] @ c_mat.T).T], axis=1)  # (O, K)
    lag = np.arange(k)[:, None] - np.arange(k)[None, :]  # t - i
    toeplitz = np.where(lag >= 0, impulse[:, np.clip(lag, 0, None)], 0.0)  # (O, K t, K i)
    observe = c_mat @ pow_k[:k]  # (K t, O, N): C A^t
    return {
        # (K i, K t * O): every output's zero-state response; [:T, :T * O] for a chunk of T
        "bank_toeplitz": np.ascontiguousarray(toeplitz.transpose(2, 1, 0).reshape(k, k * o)),
        "bank_observe": np.ascontiguousarray(observe.reshape(k * o, n).T),  # (N, K t * O)
        "bank_pow": pow_k.transpose(0, 2, 1).copy(),  # (K + 1, N, N): (A^T)^T, for s @ A^T'
        "bank_gather": ab[:k][::-1].copy(),  # (K, N): row i is A^(K - 1 - i) B
    }


class SosBank(torch.nn.Module):
    """Several SOS cascades fed by the same input, run as one state-space system with tensor
    ops only: for a chunk of T <= ``max_chunk`` samples from state s,
    ``y = x @ H[:T] + s @ O[:T]`` and ``s' = s A^T + x @ G[-T:]`` (Toeplitz matrix of the
    impulse responses, free responses, state gathering; float64 tables).

    A graph exported from it is four matrix products and a few slices for the whole bank,
    where one :class:`Butterworth` per filter costs a blockwise graph each: that is what
    makes a band-pass front-end cheap on ONNX Runtime. ``step(x (B, T), zi (B, O, S, 2,
    ...))`` gives ``(y (B, T, O) float64, zi)``, equal to ``sosfilt`` of each cascade from
    its memory. A traced graph takes 1 <= T <= ``max_chunk`` (exported runners split longer
    chunks); an eager call splits them itself.
    """

    def __init__(self, soses: list[np.ndarray], max_chunk: int = 64) -> None:
        super().__init__()
        sections = {s.shape[0] for s in soses}
        if len(sections) != 1:
            raise ValueError("every cascade of a bank needs the same number of sections")
        self.outputs, self.sections = len(soses), sections.pop()
        self.n = 2 * self.sections * self.outputs
        self.max_chunk = max_chunk
        for name, table in _bank_tables(soses, max_chunk).items():
            self.register_buffer(name, torch.from_numpy(table), persistent=False)

    def step(self, x: Tensor, zi: Tensor) -> tuple[Tensor, Tensor]:
        if not _tracing() and x.shape[1] > self.max_chunk:
            outs = []
            for start in range(0, x.shape[1], self.max_chunk):
                y, zi = self.step(x[:, start:start + self.max_chunk], zi)
                outs.append(y)
            return torch.cat(outs, dim=1), zi
        t = x.shape[1]
        s = zi.reshape(x.shape[0], self.n)
        xd = x.to(torch.float64)
        y = (torch.matmul(xd, self.bank_toeplitz[:t, :t * self.outputs])
             + torch.matmul(s, self.bank_observe[:, :t * self.outputs]))
        tt = (t if isinstance(t, Tensor) else torch.tensor(t)).reshape(1).to(x.device)
        a_t = self.bank_pow.index_select(0, tt)[0]  # (A^T)^T
        s_end = torch.matmul(s, a_t) + torch.matmul(xd, self.bank_gather[self.max_chunk - t:])
        return y.reshape(x.shape[0], -1, self.outputs), s_end.reshape(zi.shape)
