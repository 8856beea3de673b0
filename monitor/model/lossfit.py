"""Where will the validation loss end up? A fit of the loss against the learning-rate area. Pure.

Model (Tissue et al. 2024, "Scaling law with learning rate annealing"): after step t,
    L(t) = L∞ + A·S1(t)^−α − C·S2(t)
S1 is the area under the lr multiplier so far (how far training has gone), S2 the annealing area (the lr
drops so far, each fading with a memory λ): the extra drop a decaying lr buys, which a plain power law in
steps cannot foresee. For fixed α and λ the model is linear in (L∞, A, C): closed-form least squares over a
small grid of α and λ. It is fitted to the dense training loss (medians of bins, robust to spikes), and the
validation curve is that fit plus the offset (nats) or ratio (bpb) seen at the recent evals. Without a
training loss it is fitted to the val points themselves. Until the run has shown some lr decay, C leans on a
prior (a share of the loss still to gain); the band widens with what the run has not shown yet.
"""

from __future__ import annotations

import bisect
import functools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.snapshot import FinalLoss

Z90 = 1.2816  # standard normal quantile of p90
ALPHAS = tuple(0.08 * 1.25**k for k in range(16))  # power-law exponents tried, 0.08 … 2.3
MEMORIES = (0.1, 0.3, 1.0)  # annealing memory 1/(1−λ) as a share of the run
BINS = 64  # training-loss bins the fit sees
GRID = 2048  # nodes the lr areas are integrated on
MIN_BINS = 8
BLEND = 0.5  # the fit's share of p50 beside a plain power law on the val points (tune half: 0.034 vs 0.047 alone)
VAL_ROWS = 32  # at most this many val rows (medians of stretches when there are more evals)
VAL_WEIGHT = 3.0  # the val points' share of the fit, against the training bins' 1
START = 0.3  # the fit starts past warm-up and past this share of the iterations seen
PRIOR_C = 0.25  # prior: the annealing drop ≈ this × the loss the power law still expects to lose
PRIOR_WEIGHT = 0.03  # its weight, as a share of the data's
BAND = 1.4  # calibration of the measured spread (bench/loss_backtest.py, tune half)
HORIZON = 0.25  # extrapolation risk per unit of run ahead, × the drop still predicted
DOUBT = {"config": 0.0, "log": 0.0, "assumed": 0.5, "unknown": 1.0}  # × the drop still predicted
FLOOR = 0.003  # nats: no band is narrower
RISE = 0.02  # nats above the best that count as rising (plus a share of the drop so far)


@dataclass(frozen=True, slots=True)
class Curve:
    """What the fit reads from a run: (iteration, loss) points oldest first, the run's end, and the lr."""

    train: Sequence[tuple[int, float]]
    val: Sequence[tuple[int, float]]
    max_iters: int
    lr: Callable[[float], float]  # multiplier of the peak lr at an iteration
    known: str = "unknown"  # config | log | assumed | unknown (see lrschedule.Schedule)
    schedule: str = ""
    warmup: float = 0.0
    of: str = "val"


class _Areas:
    """S1 and S2 (one per memory) on a grid of iterations, interpolated between nodes."""

    def __init__(self, lr: Callable[[float], float], max_iters: int) -> None:
        n = max(1, min(GRID, max_iters))
        self.h = h = max_iters / n
        eta = [max(0.0, lr(j * h)) for j in range(n + 1)]
        s1 = [eta[0]]
        for j in range(1, n + 1):
            s1.append(s1[-1] + h * (eta[j - 1] + eta[j]) / 2)
        self.s1 = [v / max_iters for v in s1]
        self.s2: list[list[float]] = []
        for mem in MEMORIES:
            span = mem * max_iters
            lam = math.exp(-h / span)
            m = acc = 0.0
            s2 = [0.0]
            for j in range(1, n + 1):
                m = m * lam + max(0.0, eta[j - 1] - eta[j])
                acc += h * m
                s2.append(acc / span)
            self.s2.append(s2)

    def at(self, it: float) -> tuple[float, list[float]]:
        x = min(max(it / self.h, 0.0), len(self.s1) - 1.0)
        j = min(int(x), len(self.s1) - 2) if len(self.s1) > 1 else 0
        f = x - j
        if len(self.s1) == 1:
            return self.s1[0], [s[0] for s in self.s2]
        return (self.s1[j] + f * (self.s1[j + 1] - self.s1[j]),
                [s[j] + f * (s[j + 1] - s[j]) for s in self.s2])


@dataclass(frozen=True, slots=True)
class _Combo:
    alpha: float
    memory: int  # index into MEMORIES
    coef: tuple[float, float, float]  # L∞ (of the val curve), A, C
    sse: float

    def value(self, s1: float, s2: Sequence[float]) -> float:
        l_inf, a, c = self.coef
        return l_inf + a * s1 ** -self.alpha - c * s2[self.memory]


@dataclass(frozen=True, slots=True)
class _Row:
    iter: float
    y: float
    weight: float
    val: bool  # a val point (else a bin of training losses, with an intercept of its own)


def predict(curve: Curve, now: int) -> FinalLoss:
    """The final validation loss of `curve` as seen at iteration `now`."""
    of, T = curve.of, curve.max_iters
    head = FinalLoss(of=of, schedule=curve.schedule)
    train = [(i, y) for i, y in curve.train if i <= now]
    val = [(i, y) for i, y in curve.val if i <= now]
    bad = next(((i, y) for i, y in reversed(train[-1:] + val[-1:]) if not math.isfinite(y)), None)
    if bad is not None:
        return _none(head, f"the loss is {bad[1]} at iter {bad[0]:,}: diverged")
    if T <= 0 or now >= T and not val:
        return _none(head, "max_iters unknown" if T <= 0 else "no validation loss in the log")
    if now >= T and val[-1][0] >= T and math.isfinite(val[-1][1]):  # the end is here: nothing left to predict
        return FinalLoss(p50=val[-1][1], p10=val[-1][1], p90=val[-1][1], of=of, schedule=curve.schedule)
    past = [(i, y) for i, y in val if i > 0]
    if not past:
        return _none(head, "no validation loss past step 0 yet")
    warm = [p for p in train if p[0] >= curve.warmup]
    rising = _rising(past, "validation") or _rising(_bins(warm, 8), "training", _noise(warm))
    if rising:
        return _none(head, rising)
    rows = _rows(train, past, max(curve.warmup, START * now, 1.0), of)
    if rows is None:
        return _none(head, "too few training-loss points yet, and fewer than 4 val points to fit alone")
    areas = _Areas(curve.lr, T)
    combos = _fit(rows, areas, T)
    if not combos:
        return _none(head, "the loss does not follow a power law yet")
    best = min(c.sse for c in combos)
    s2 = best / max(1, len(rows) - 4) or 1e-12
    weights = [math.exp(-min(50.0, (c.sse - best) / (2 * s2))) for c in combos]
    end = areas.at(T)
    preds = [c.value(*end) for c in combos]
    total = math.fsum(weights)
    p50 = math.fsum(w * p for w, p in zip(weights, preds, strict=True)) / total
    spread = math.sqrt(math.fsum(w * (p - p50) ** 2 for w, p in zip(weights, preds, strict=True)) / total)
    plain = power_law(past, T)
    if plain is not None:  # half and half with a power law in steps on the val points: the two err differently
        spread = math.hypot(spread, (p50 - plain) / 2)
        p50 = BLEND * p50 + (1 - BLEND) * plain
    top = combos[weights.index(max(weights))]
    residuals = [y - top.value(*areas.at(i)) for i, y in past[-6:]]
    noise = _rms(residuals) / math.sqrt(min(3, len(residuals))) if len(residuals) > 1 else 0.02 * abs(p50)
    here = top.value(*areas.at(now)) + (statistics.fmean(residuals[-3:]) if residuals else 0.0)
    drop = abs(p50 - here)
    ahead = max(0.0, (T - now) / T)
    sigma = math.sqrt(spread**2 + noise**2 + (HORIZON * ahead * drop) ** 2 + (DOUBT[curve.known] * drop) ** 2)
    sigma = max(FLOOR, BAND * sigma)
    path = _path(top, areas, now, T, p50 - top.value(*end), noise, sigma)
    return FinalLoss(p50=p50, p10=p50 - Z90 * sigma, p90=p50 + Z90 * sigma, of=of, schedule=curve.schedule,
                     path=path)


def _rows(train: Sequence[tuple[int, float]], past: Sequence[tuple[int, float]], start: float,
          of: str) -> list[_Row] | None:
    """The fit's data: bins of the training loss (weights summing to 1) and the val points past warm-up
    (together weighing VAL_WEIGHT); val points alone when the training loss is missing or too short."""
    bins = _bins([p for p in train if p[0] >= start])
    vals: list[tuple[float, float]] = [(i, y) for i, y in past if i >= start] or [(i, y) for i, y in past[-1:]]
    if len(vals) > VAL_ROWS:  # hundreds of evals: their medians over stretches, as for the training loss
        vals = [(i, y) for i, y, _ in _bins(vals, VAL_ROWS)]
    if len(bins) < MIN_BINS:
        vals = [(i, y) for i, y in past if i >= start * 0.5] or list(past)
        return [_Row(i, y, 1.0, True) for i, y in vals] if len({i for i, _ in vals}) >= 4 else None
    if of == "bpb":  # bits per byte against a loss in nats: scale the training curve onto the val one
        ratio = statistics.fmean(y / _near(bins, i) for i, y in vals[-3:])
        bins = [(i, y * ratio, w) for i, y, w in bins]
    total = math.fsum(w for _, _, w in bins)
    return [_Row(i, y, w / total, False) for i, y, w in bins] + \
        [_Row(i, y, VAL_WEIGHT / len(vals), True) for i, y in vals]


def _near(bins: Sequence[tuple[float, float, float]], it: float) -> float:
    return min(bins, key=lambda b: abs(b[0] - it))[1] or 1.0


def _none(head: FinalLoss, reason: str) -> FinalLoss:
    return FinalLoss(of=head.of, reason=reason, schedule=head.schedule)


def _bins(points: Sequence[tuple[float, float]], n: int = BINS) -> list[tuple[float, float, float]]:
    """(mean iteration, median loss, weight) of up to `n` equal stretches of iterations (points in order)."""
    if len(points) < 2:
        return []
    xs = [p[0] for p in points]
    lo, hi = xs[0], xs[-1]
    width = (hi - lo) / n or 1.0
    out = []
    start = 0
    for k in range(1, n + 1):
        end = len(xs) if k == n else bisect.bisect_left(xs, lo + k * width, start)
        if end > start:
            group = points[start:end]
            out.append((math.fsum(xs[start:end]) / (end - start), statistics.median(y for _, y in group),
                        math.sqrt(end - start)))
        start = end
    return out


def _noise(points: Sequence[tuple[float, float]]) -> float:
    """Scatter of one group's median, from the point-to-point differences (robust to the trend)."""
    if len(points) < 16:
        return 0.0
    recent = points[-2048:]
    diffs = sorted(abs(b[1] - a[1]) for a, b in zip(recent, recent[1:], strict=False))
    sigma = diffs[len(diffs) // 2] / 0.954  # median |difference| of two normal draws ≈ 0.954 σ
    return 2 * sigma / math.sqrt(len(points) / 8)


def _rising(points: Sequence[tuple[float, float]] | Sequence[tuple[float, float, float]], what: str,
            noise: float = 0.0) -> str | None:
    """Why there is no prediction when the loss has turned upward (diverging, or overfitting): the last two
    points (or groups) above the lowest by more than RISE, a tenth of the drop so far and the groups' noise."""
    if len(points) < 3:
        return None
    ys = [p[1] for p in points]
    k = min(range(len(ys)), key=ys.__getitem__)
    margin = RISE + 0.1 * (ys[0] - ys[k]) + noise
    if k < len(ys) - 2 and all(y > ys[k] + margin for y in ys[-2:]):
        return f"the {what} loss is rising since iter {int(points[k][0]):,} (diverging or overfitting)"
    return None


def _fit(rows: Sequence[_Row], areas: _Areas, T: int) -> list[_Combo]:
    """One least-squares fit per (α, memory): L∞ + A·S1^−α − C·S2 with A ≥ 0, C ≥ 0, one intercept for the
    val points and one for the training bins (the gap between the two, dropout, a harder val set).

    The normal equations are assembled from weighted moments computed once per column (per α, per memory),
    and the residual sum from them too: a fit costs one pass over the rows, not a dozen."""
    at = [areas.at(r.iter) for r in rows]
    end_s1, end_s2 = areas.at(T)
    ys, ws = [r.y for r in rows], [r.weight for r in rows]
    base = [[1.0 if r.val else 0.0 for r in rows]]
    if not all(r.val for r in rows):
        base.append([0.0 if r.val else 1.0 for r in rows])
    mom = _Moments(ys, ws)
    prior = PRIOR_WEIGHT * math.fsum(ws)
    f2s = [[-s2[m] for _, s2 in at] for m in range(len(MEMORIES))]

    def one(alpha: float, m: int) -> _Combo | None:
        f1 = [s1 ** -alpha for s1, _ in at]
        x_end = end_s1 ** -alpha
        anneal = max(abs(v) for v in f2s[m]) > 1e-9 or end_s2[m] > 1e-9
        cols = [*base, f1, f2s[m]] if anneal else [*base, f1]
        coef, sse = mom.solve(cols, (prior, PRIOR_C * x_end) if anneal else None)
        if coef is None or coef[-2 if anneal else -1] < 0:
            return None
        if anneal and coef[-1] > 0:  # C < 0: an lr decay that raises the loss; fit without it
            cols, anneal = [*base, f1], False
            coef, sse = mom.solve(cols, None)
            if coef is None or coef[-1] < 0:
                return None
        if coef[0] < 0:
            return None  # a loss that would end below zero
        a, c = (coef[-2], -coef[-1]) if anneal else (coef[-1], 0.0)
        return _Combo(alpha, m, (coef[0], a, c), sse)

    out = [c for alpha in ALPHAS for m in range(len(MEMORIES)) if (c := one(alpha, m)) is not None]
    for m in range(len(MEMORIES)):  # the exponent between grid points: a golden-section search around the best
        grid = [c for c in out if c.memory == m]
        if grid:
            out.append(_refine(min(grid, key=lambda c: c.sse), functools.partial(one, m=m)))
    return out


class _Moments:
    """Weighted cross-products of the fit's columns, each computed once (columns are keyed by identity)."""

    def __init__(self, ys: list[float], ws: list[float]) -> None:
        self.ys, self.ws = ys, ws
        self.yy = sum(w * y * y for w, y in zip(ws, ys, strict=True))
        self._dot: dict[tuple[int, int], float] = {}
        self._y: dict[int, float] = {}
        self._keep: list[list[float]] = []  # the columns, so that their ids stay theirs

    def dot(self, a: list[float], b: list[float]) -> float:
        key = (id(a), id(b)) if id(a) <= id(b) else (id(b), id(a))
        if key not in self._dot:
            self._keep += [a, b]
            self._dot[key] = sum(w * x * y for w, x, y in zip(self.ws, a, b, strict=True))
        return self._dot[key]

    def with_y(self, a: list[float]) -> float:
        if id(a) not in self._y:
            self._keep.append(a)
            self._y[id(a)] = sum(w * x * y for w, x, y in zip(self.ws, a, self.ys, strict=True))
        return self._y[id(a)]

    def solve(self, cols: list[list[float]], prior: tuple[float, float] | None) -> tuple[list[float] | None, float]:
        """Least squares for y ≈ Σ coef·col, and its weighted residual sum (plus the prior's); `prior` adds the
        row weight·(k·A + c)² = 0 on the last two columns (A, and c = −C of the annealing term)."""
        n = len(cols)
        m = [[self.dot(cols[r], cols[c]) for c in range(n)] for r in range(n)]
        v = [self.with_y(col) for col in cols]
        mp = [row[:] for row in m]
        if prior is not None:
            weight, k = prior
            row = [0.0] * (n - 2) + [k, 1.0]
            for r in range(n):
                for c in range(n):
                    mp[r][c] += weight * row[r] * row[c]
        coef = _solve(mp, v)
        if coef is None:
            return None, math.inf
        sse = self.yy - 2 * sum(c * x for c, x in zip(coef, v, strict=True)) + sum(
            coef[r] * m[r][c] * coef[c] for r in range(n) for c in range(n))
        if prior is not None:
            sse += prior[0] * (prior[1] * coef[-2] + coef[-1]) ** 2
        return coef, max(0.0, sse)


def _refine(best: _Combo, fit: Callable[[float], _Combo | None], steps: int = 12) -> _Combo:
    """Golden-section search of log α within one grid step either side of `best`."""
    lo, hi = math.log(best.alpha / 1.25), math.log(best.alpha * 1.25)
    g = (math.sqrt(5) - 1) / 2
    cache: dict[float, _Combo | None] = {}

    def sse(x: float) -> float:
        if x not in cache:
            cache[x] = fit(math.exp(x))
        c = cache[x]
        return c.sse if c is not None else math.inf

    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(steps):
        if sse(a) < sse(b):
            hi, b = b, a
            a = hi - g * (hi - lo)
        else:
            lo, a = a, b
            b = lo + g * (hi - lo)
    found = [c for c in cache.values() if c is not None]
    return min([best, *found], key=lambda c: c.sse)


def _solve(m: list[list[float]], v: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(v)
    a = [row[:] + [v[i]] for i, row in enumerate(m)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[piv][col]) < 1e-12 * max(1.0, max(abs(x) for x in a[piv][:n])):
            return None
        a[col], a[piv] = a[piv], a[col]
        for r in range(col + 1, n):
            f = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= f * a[col][c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (a[r][n] - math.fsum(a[r][c] * out[c] for c in range(r + 1, n))) / a[r][r]
    return out


def _rms(xs: Sequence[float]) -> float:
    m = statistics.fmean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _path(combo: _Combo, areas: _Areas, now: int, T: int, bias: float, noise: float, sigma: float,
          n: int = 24) -> tuple[tuple[int, float, float, float], ...]:
    """The predicted val curve from now to the end with a band that opens from today's noise to the final one."""
    if now >= T:
        return ()
    out = []
    for k in range(n + 1):
        it = now + (T - now) * k // n
        frac = (it - now) / (T - now)
        mid = combo.value(*areas.at(it)) + bias * frac
        s = math.sqrt(noise**2 + (sigma**2 - noise**2) * frac) if sigma > noise else sigma
        out.append((it, mid - Z90 * s, mid, mid + Z90 * s))
    return tuple(out)


def power_law(val: Sequence[tuple[int, float]], at: int) -> float | None:
    """Baseline: a + b·x^−c fitted to the val points past step 0 (a grid over c refined by golden section,
    least squares for a and b)."""
    pts = [(float(i), y) for i, y in val if i > 0 and math.isfinite(y)]
    if len(pts) < 3:
        return None
    ys, ws = [y for _, y in pts], [1.0] * len(pts)
    ones = [1.0] * len(pts)

    def fit(c: float) -> _Combo | None:
        coef, sse = _Moments(ys, ws).solve([ones, [i ** -c for i, _ in pts]], None)
        return _Combo(c, 0, (coef[0], coef[1], 0.0), sse) if coef is not None else None

    grid = [f for c in ALPHAS if (f := fit(c)) is not None]
    if not grid:
        return None
    best = _refine(min(grid, key=lambda f: f.sse), fit)
    return best.coef[0] + best.coef[1] * at ** -best.alpha
