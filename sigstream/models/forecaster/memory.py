"""Long memory for the window forecaster: an AR model fitted to everything the stream has
seen, and an online combination of it with the network, both causal and streamed.

B: batch (streams), T: chunk length, L: lookback, H: horizon, P: memory order,
K: refit period (``REFIT``), E: refits in a chunk.

The network sees one window of L samples. A series' own long past says more: a global AR
fit on thousands of samples beats any 100-sample window on many real series. The stream
therefore keeps the Gram matrix of the vectors ``[1, x_{t-1}, ..., x_{t-P}, x_t]`` over
every sample whose P lags are finite (float64, relative to the stream's first finite
sample, so a level of 1e6 costs no precision): the sufficient statistics of the
least-squares AR fit with intercept, the global AR fit of everything seen so far. Every K
samples (at global sample indices K-1, 2K-1, ..., so any chunking refits at the same
samples) one Cholesky factorisation of it gives the residual sum of squares of every order
0 .. P at once; AIC (``n log(RSS_m / n) + 2 (m + 1)``) picks the order, a triangular solve
gives its coefficients, and the forecast rolls out H steps from the window's last P
samples. Both loops are unrolled over P, so the graph exports.

Combination. Every forecast is scored when its target arrives (the forecasts of the last H
samples are state). At sample t the output is ``w y_ar + (1 - w) y_net`` per horizon step
h, with ``w = E_net^q / (E_net^q + E_ar^q)`` (q = ``POWER``), E the summed squared errors of
each forecast on the last ``WINDOW`` targets of step h up to t (inverse-MSE weights, Bates
and Granger 1969, sharpened by q so that the better one leads). Only forecasts from whole
windows are scored. AR forecasts are clipped to the data's mean +- ``CLAMP`` standard
deviations. Before ``MIN_SCORED`` targets of a step have been scored, or while the fit has
fewer than ``MIN_ROWS`` rows, w = 0: the network alone. POWER and WINDOW were chosen on
the validation split of ``sigstream data series``.

Streamed equals offline up to float64 summation order.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

REFIT = 16  # samples between refits of the memory's AR model
MIN_SCORED = 20  # targets per horizon step scored before the AR forecast gets any weight
MIN_ROWS = 50  # fit rows before the memory fit is used
ROWS_PER_COEF = 3  # AIC chooses among the orders with at least this many rows per coefficient
POWER = 4.0  # combination weights proportional to MSE ** -POWER
WINDOW = 400  # the combination scores the last WINDOW targets of each horizon step
CLAMP = 8.0  # AR forecasts are clipped to the data's mean +- this many standard deviations
RIDGE = 1e-9  # relative diagonal loading of the Gram matrix (it stays positive definite)


class MemoryState(NamedTuple):
    """The window forecaster's state with long memory; all (B, ...), float64 but history.

    history (B, L-1) float32: the last input samples, newest last; seen (B,): samples seen
    (finite or not); ref (B,): the first finite sample (0 before); has_ref (B,): 1 once ref
    is set; done (B, P+2, P+2): the Gram matrix of the fit rows of the completed refit
    periods; part (B, P+2, P+2): of the current period's rows so far; past_net, past_ar
    (B, H, H): the forecasts made at the last H samples (oldest first); recent
    (B, W, 2, H), valid (B, W, H): the squared errors of the network's and the AR's
    forecasts of the last W targets per horizon step, and whether each was scored."""

    history: Tensor
    seen: Tensor
    ref: Tensor
    has_ref: Tensor
    done: Tensor
    part: Tensor
    past_net: Tensor
    past_ar: Tensor
    recent: Tensor
    valid: Tensor


def init_memory_state(history: Tensor, order: int, horizon: int) -> MemoryState:
    b, n = history.shape[0], order + 2
    f64 = dict(dtype=torch.float64, device=history.device)
    return MemoryState(history, torch.zeros(b, **f64), torch.zeros(b, **f64),
                       torch.zeros(b, **f64), torch.zeros(b, n, n, **f64),
                       torch.zeros(b, n, n, **f64), torch.zeros(b, horizon, horizon, **f64),
                       torch.zeros(b, horizon, horizon, **f64),
                       torch.zeros(b, WINDOW, 2, horizon, **f64),
                       torch.zeros(b, WINDOW, horizon, **f64))


def _reference(x: Tensor, state: MemoryState) -> tuple[Tensor, Tensor]:
    """(B,) ref and has_ref after this chunk (B, T): the first finite sample ever seen."""
    finite = torch.isfinite(x)
    first = torch.argmax(finite.to(torch.int64), dim=1, keepdim=True)  # (B, 1)
    val = torch.gather(torch.where(finite, x, torch.zeros_like(x)), 1, first)[:, 0]
    any_now = finite.any(dim=1).to(x.dtype)
    has = torch.maximum(state.has_ref, any_now)
    ref = torch.where(state.has_ref > 0, state.ref, val * any_now)
    return ref, has


def fit_ar_aic(gram: Tensor) -> tuple[Tensor, Tensor]:
    """(R, P+2, P+2) Gram matrices of ``[1, x_{t-1} .. x_{t-P}, x_t]`` -> ((R, P+1) the
    least-squares coefficients [intercept, lag 1 .. lag P] of the order with the lowest
    AIC, zero beyond it; (R,) the fit's row count). An unrolled Cholesky factorisation
    gives every order's residual sum of squares (the squares of the last row of the
    factor), an unrolled back substitution the chosen order's coefficients."""
    n = gram.shape[1]
    p = n - 2
    rows = gram[:, 0, 0]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    # the diagonal's mean (not torch.diagonal: its ONNX form is an If of mixed types)
    scale = (gram * eye).sum(dim=(1, 2)).clamp_min(1e-300) / n
    g = gram + (RIDGE * scale)[:, None, None] * eye
    cols: list[Tensor] = []  # columns of the lower factor, each (R, n)
    for j in range(n):
        v = g[:, :, j]
        for c in cols:
            v = v - c * c[:, j:j + 1]
        d = torch.sqrt(v[:, j].clamp_min(1e-300))
        mask = (torch.arange(n, device=g.device) >= j).to(g.dtype)
        cols.append(v / d[:, None] * mask)
    low = torch.stack(cols, dim=2)  # (R, n, n) lower triangular
    ry = low[:, n - 1, :n - 1]  # (R, P+1): y's projections on the orthogonalised columns
    yy = g[:, n - 1, n - 1]
    rss = yy[:, None] - torch.cumsum(ry * ry, dim=1)  # (R, P+1): orders 0 .. P
    nn = rows.clamp_min(1.0)[:, None]
    orders = torch.arange(p + 1, device=g.device, dtype=g.dtype)
    aic = nn * torch.log((rss / nn).clamp_min(1e-300)) + 2 * (orders + 1)[None, :]
    # at least ROWS_PER_COEF rows per coefficient (order 0 always allowed)
    allowed = (ROWS_PER_COEF * (orders + 1))[None, :] <= nn
    allowed = allowed | (orders == 0)[None, :]
    aic = torch.where(allowed, aic, torch.full_like(aic, float("inf")))
    best = torch.argmin(aic, dim=1)  # (R,)
    keep = (torch.arange(p + 1, device=g.device)[None, :] <= best[:, None]).to(g.dtype)
    up = low[:, :n - 1, :n - 1].transpose(1, 2)  # (R, P+1, P+1) upper, R beta = ry
    rhs = ry * keep
    beta = torch.zeros_like(rhs)
    for i in range(p, -1, -1):
        acc = rhs[:, i] - (up[:, i, :] * beta).sum(dim=1)
        beta = beta + (acc / up[:, i, i])[:, None] * (
            torch.arange(p + 1, device=g.device) == i).to(g.dtype)[None, :]
    return beta * keep, rows


def ar_rollout(last: Tensor, coef: Tensor, horizon: int) -> Tensor:
    """(R, P) last samples (newest last), (R, P+1) [intercept, lag 1 .. lag P] -> (R, H)."""
    hist = torch.flip(last, dims=[1])  # newest first
    outs = []
    for _ in range(horizon):
        nxt = coef[:, 0] + (hist * coef[:, 1:]).sum(dim=1)
        outs.append(nxt)
        hist = torch.cat([nxt[:, None], hist[:, :-1]], dim=1)
    return torch.stack(outs, dim=1)


def _fit_rows(full64: Tensor, lead: int, time: Tensor, order: int) -> Tensor:
    """(B, T, P+2) the vectors [1, x_{t-1} .. x_{t-P}, x_t] of the chunk's samples, zero
    where one of them is not finite or lies before the stream's start."""
    t = time.shape[1]
    ks = torch.arange(order, -1, -1, device=full64.device)  # P .. 0
    pos = torch.arange(t, device=full64.device)
    lagged = full64[:, (lead + pos)[:, None] - ks[None, :]]  # (B, T, P+1): x_{t-P} .. x_t
    lagged = torch.flip(lagged[..., :order], dims=[2]), lagged[..., order:]
    vec = torch.cat([torch.ones_like(lagged[1]), lagged[0], lagged[1]], dim=2)
    ok = torch.isfinite(vec).all(dim=2) & (time >= order)
    return torch.where(ok[..., None], vec, torch.zeros_like(vec))


def memory_step(x32: Tensor, full: Tensor, windows: Tensor, y_net: Tensor, state: MemoryState,
                order: int) -> tuple[Tensor, MemoryState]:
    """One chunk: (B, T) input, (B, L-1+T) history + chunk, (B, T, L) windows ending at each
    sample, (B, T, H) network forecasts -> (B, T, H) combined forecasts and the new state
    (``history`` left to the caller)."""
    b, t = x32.shape
    h, n = y_net.shape[2], order + 2
    dev = x32.device
    lead = full.shape[1] - t  # L - 1
    x = x32.to(torch.float64)
    ref, has_ref = _reference(x, state)
    full64 = full.to(torch.float64) - ref[:, None]
    pos = torch.arange(t, device=dev)
    time = state.seen[:, None] + pos.to(torch.float64)[None, :]  # (B, T) global index
    vec = _fit_rows(full64, lead, time, order)  # (B, T, n)
    # refit periods: sample g is in period floor(g / K); the forecast at g uses the periods
    # completed by then, floor((g + 1) / K) of them. Periods touched by this chunk:
    # e0 .. e0 + E - 1 (the same for every stream: all advance together)
    e0 = torch.floor(state.seen / REFIT)  # (B,)
    period = torch.floor(time / REFIT) - e0[:, None]  # (B, T) 0 .. E-1
    n_per = t // REFIT + 2  # E: an upper bound of the periods a T-sample chunk touches
    onehot = (period[..., None] == torch.arange(n_per, device=dev, dtype=torch.float64)
              ).to(torch.float64)  # (B, T, E)
    incr = torch.einsum("bte,bti,btj->beij", onehot, vec, vec)  # (B, E, n, n)
    incr = torch.cat([incr[:, :1] + state.part[:, None], incr[:, 1:]], dim=1)
    # gram after completing 0 .. E-1 of this chunk's periods: done + cumulative increments
    grams = torch.cat([state.done[:, None], state.done[:, None] + torch.cumsum(incr, dim=1)],
                      dim=1)  # (B, E+1, n, n)
    coef, rows = fit_ar_aic(grams.reshape(-1, n, n))
    coef, rows = coef.reshape(b, n_per + 1, n - 1), rows.reshape(b, n_per + 1)
    completed = torch.floor((time + 1) / REFIT) - e0[:, None]  # (B, T) 0 .. E
    idx = completed.to(torch.int64)
    c_row = torch.gather(coef, 1, idx[..., None].expand(b, t, n - 1))  # (B, T, P+1)
    r_row = torch.gather(rows, 1, idx)  # (B, T)
    g_row = torch.gather(grams, 1, idx[..., None, None].expand(b, t, n, n))
    mean = g_row[..., n - 1, 0] / r_row.clamp_min(1.0)
    var = (g_row[..., n - 1, n - 1] / r_row.clamp_min(1.0) - mean * mean).clamp_min(0.0)
    last = windows[:, :, windows.shape[2] - order:].to(torch.float64) - ref[:, None, None]
    y_ar = ar_rollout(last.reshape(b * t, order), c_row.reshape(b * t, n - 1), h)
    bound = (CLAMP * torch.sqrt(var))[..., None]
    y_ar = torch.minimum(torch.maximum(y_ar.reshape(b, t, h), mean[..., None] - bound),
                         mean[..., None] + bound) + ref[:, None, None]
    net64 = y_net.to(torch.float64)
    enough = r_row >= MIN_ROWS
    y_ar = torch.where(enough[..., None], y_ar, net64)
    # score every forecast whose target is one of this chunk's samples
    fn = torch.cat([state.past_net, net64], dim=1)  # rows: samples seen-H .. seen+T-1
    fa = torch.cat([state.past_ar, y_ar], dim=1)
    steps = torch.arange(1, h + 1, device=dev)
    row = (pos[:, None] + h) - steps[None, :]  # (T, H): the row that forecast this target
    col = (steps - 1)[None, :].expand(t, h)
    made = time[:, :, None] - steps.to(torch.float64)[None, None, :]  # when it was made
    e_net = fn[:, row, col] - x[:, :, None]
    e_ar = fa[:, row, col] - x[:, :, None]
    # only forecasts from whole windows (before L - 1 the window holds the zero-filled start)
    valid = (made >= windows.shape[2] - 1) & torch.isfinite(e_net) & torch.isfinite(e_ar)
    z = torch.zeros_like(e_net)
    sq = torch.stack([torch.where(valid, e_net * e_net, z), torch.where(valid, e_ar * e_ar, z)],
                     dim=2)  # (B, T, 2, H)
    # sums over the last WINDOW targets ending at each sample: differences of cumulative sums
    sq_all = torch.cat([state.recent, sq], dim=1)  # (B, W+T, 2, H)
    ok_all = torch.cat([state.valid, valid.to(torch.float64)], dim=1)  # (B, W+T, H)
    c_sq = torch.cumsum(sq_all, dim=1)
    c_ok = torch.cumsum(ok_all, dim=1)
    err = c_sq[:, WINDOW:] - c_sq[:, :t]  # (B, T, 2, H)
    scored = c_ok[:, WINDOW:] - c_ok[:, :t]  # (B, T, H)
    e_n, e_a = err[:, :, 0], err[:, :, 1]
    # w = E_a^-q / (E_a^-q + E_n^-q) = 1 / (1 + (E_a / E_n)^q)
    ratio = e_a / e_n.clamp_min(1e-300)
    w = torch.where((scored >= MIN_SCORED) & (e_n > 0),
                    1.0 / (1.0 + torch.pow(ratio, POWER)), torch.zeros_like(e_n))
    y = w * y_ar + (1 - w) * net64
    # the state: completed periods into done, the last period's rows into part
    end = torch.floor((state.seen + t) / REFIT) - e0  # (B,) periods completed by the end
    k = end.to(torch.int64)
    done = torch.gather(grams, 1, k[:, None, None, None].expand(b, 1, n, n))[:, 0]
    part = torch.gather(incr, 1, k.clamp_max(n_per - 1)[:, None, None, None].expand(
        b, 1, n, n))[:, 0]
    # the period right after the last completed one: its rows so far (those of this
    # chunk, plus the state's part if no period completed in this chunk)
    new = MemoryState(state.history, state.seen + t, ref, has_ref, done, part,
                      fn[:, fn.shape[1] - h:], fa[:, fa.shape[1] - h:],
                      sq_all[:, sq_all.shape[1] - WINDOW:], ok_all[:, ok_all.shape[1] - WINDOW:])
    return y.to(y_net.dtype), new
