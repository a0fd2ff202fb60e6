"""Design-based accuracy and area estimates from reference points, as map producers report them.

The estimators of Olofsson et al. (2014, "Good practices for estimating area and assessing
accuracy of land change", Remote Sensing of Environment 148) in the general form of Stehman (2014,
"Estimating area and map accuracy for stratified random sampling when the strata are different from
the map classes", International Journal of Remote Sensing 35): every figure is a total or a ratio of
two totals of per-point indicators, estimated stratum by stratum,

    t_y = sum_h N_h * mean_h(y)              (a population total of y)
    R   = t_y / t_x                          (user's, producer's and overall accuracy)
    V(t_y) = sum_h N_h^2 * (1 - f_h) * s2_h(y) / n_h
    V(R)   = 1 / t_x^2 * sum_h N_h^2 * (1 - f_h) * (s2_h(y) + R^2 s2_h(x) - 2 R s_h(x, y)) / n_h

with N_h the stratum's size in pixels, n_h its points and f_h = n_h / N_h (the finite population
correction, off by default as in Olofsson et al.'s figures: maps have millions of pixels). With the
strata equal to the map classes these are exactly Olofsson et al.'s equations 2 to 10; a simple
random sample is the one-stratum case; a domain (a country, a climate zone) multiplies y and x by
its indicator. 95 % intervals are +/- 1.96 standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Z95 = 1.96  # the guide's and the published figures' normal quantile


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "se", float(self.se))

    @property
    def half_width(self) -> float:
        return Z95 * self.se

    def as_dict(self, digits: int = 4) -> dict:
        def r(v: float) -> float | None:
            return None if math.isnan(v) else round(v, digits)

        return {"value": r(self.value), "se": r(self.se), "ci95": r(self.half_width)}


@dataclass
class Assessment:
    """Every figure of one assessment: classes are the codes the map and reference use."""

    classes: list[int]
    counts: np.ndarray  # (C, C) points, rows = map class, columns = reference class
    proportions: np.ndarray  # (C, C) estimated area proportions p_ij
    overall: Estimate
    users: dict[int, Estimate]
    producers: dict[int, Estimate]
    area_share: dict[int, Estimate]  # of the reference class (error-adjusted), of the whole population
    mapped_share: dict[int, float]  # of the map class, from the strata sizes (when strata = map classes)
    points: int
    design: str  # "stratified" | "simple random"
    notes: list[str] = field(default_factory=list)


class _Strata:
    """Points grouped by stratum, with each stratum's population size."""

    def __init__(self, strata: np.ndarray, sizes: Mapping[object, float], fpc: bool) -> None:
        self.keys = [h for h in sizes if np.any(strata == h)]
        self.index = [np.flatnonzero(strata == h) for h in self.keys]
        self.N = np.array([float(sizes[h]) for h in self.keys])
        self.n = np.array([len(i) for i in self.index], dtype=float)
        self.f = self.n / self.N if fpc else np.zeros(len(self.keys))

    def total(self, y: np.ndarray) -> Estimate:
        t = v = 0.0
        for idx, N, n, f in zip(self.index, self.N, self.n, self.f, strict=True):
            yh = y[idx]
            t += N * yh.mean()
            if n > 1:
                v += N * N * (1 - f) * yh.var(ddof=1) / n
        return Estimate(t, math.sqrt(v))

    def ratio(self, y: np.ndarray, x: np.ndarray) -> Estimate:
        ty, tx = self.total(y).value, self.total(x).value
        if tx == 0:
            return Estimate(math.nan, math.nan)
        r = ty / tx
        v = 0.0
        for idx, N, n, f in zip(self.index, self.N, self.n, self.f, strict=True):
            if n > 1:
                yh, xh = y[idx], x[idx]
                cov = np.cov(xh, yh, ddof=1)[0, 1]
                v += N * N * (1 - f) * (yh.var(ddof=1) + r * r * xh.var(ddof=1) - 2 * r * cov) / n
        return Estimate(r, math.sqrt(max(v, 0.0)) / tx)


def assess(map_codes: Sequence[int], ref_codes: Sequence[int], strata: Sequence[object] | None = None,
           stratum_sizes: Mapping[object, float] | None = None, classes: Sequence[int] | None = None,
           domain: Sequence[bool] | None = None, fpc: bool = False) -> Assessment:
    """Accuracy and area estimates from points with a map and a reference class each.

    `strata` and `stratum_sizes` (pixels per stratum) describe a stratified sample; without them the
    points are a simple random sample of the population. `domain` restricts every figure to the
    points where it is true (a country, a climate zone), with the stratum sizes of the whole sample."""
    m = np.asarray(map_codes, dtype=np.int64)
    r = np.asarray(ref_codes, dtype=np.int64)
    if m.shape != r.shape or m.ndim != 1 or not len(m):
        raise ValueError("map and reference codes: two 1-D sequences of the same, non-zero length")
    if strata is None:
        strata_arr, sizes, design = np.zeros(len(m), np.int64), {0: float(len(m))}, "simple random"
    else:
        strata_arr = np.asarray(strata)
        if stratum_sizes is None:
            raise ValueError("a stratified sample needs the size of every stratum")
        missing = sorted({str(h) for h in np.unique(strata_arr)} - {str(h) for h in stratum_sizes})
        if missing:
            raise ValueError(f"strata without a size: {', '.join(missing)}")
        sizes, design = dict(stratum_sizes), "stratified"
    d = np.ones(len(m), bool) if domain is None else np.asarray(domain, bool)
    st = _Strata(strata_arr, sizes, fpc)
    population = float(sum(sizes.values()))
    codes = [int(c) for c in sorted(set(classes) if classes is not None else set(m[d]) | set(r[d]))]
    position = {c: k for k, c in enumerate(codes)}
    counts = np.zeros((len(codes), len(codes)), np.int64)
    for a, b in zip(m[d], r[d], strict=True):
        if a in position and b in position:
            counts[position[a], position[b]] += 1
    one = d.astype(float)
    props = np.array([[st.total(one * (m == i) * (r == j)).value / population for j in codes] for i in codes])
    users = {i: st.ratio(one * (m == i) * (r == i), one * (m == i)) for i in codes}
    producers = {j: st.ratio(one * (m == j) * (r == j), one * (r == j)) for j in codes}
    shares = {}
    for j in codes:
        t = st.total(one * (r == j))
        shares[j] = Estimate(t.value / population, t.se / population)
    mapped = {}  # when the strata are the map classes, their sizes are the mapped areas
    if design == "stratified" and all(str(h) == str(c) for h, c in zip(strata_arr, m, strict=True)):
        mapped = {i: float(sizes.get(i, sizes.get(str(i), 0.0))) / population for i in codes}
    return Assessment(codes, counts, props, st.ratio(one * (m == r), one), users, producers, shares, mapped,
                      int(d.sum()), design)


def sample_size(weights: Sequence[float], expected_users: Sequence[float], target_se: float) -> int:
    """Points for a stratified sample whose overall accuracy has standard error `target_se`, from
    the strata's area shares and the user's accuracies expected of them (Olofsson et al. 2014,
    eq. 13, after Cochran 1977): n = (sum_i W_i S_i / S(O))^2, S_i = sqrt(U_i (1 - U_i))."""
    w, u = np.asarray(weights, float), np.asarray(expected_users, float)
    if not 0 < target_se < 1:
        raise ValueError(f"target standard error {target_se}: between 0 and 1")
    return math.ceil((np.sum(w * np.sqrt(u * (1 - u))) / target_se) ** 2)


def allocate(n: int, weights: Sequence[float], minimum: int = 0, available: Sequence[int] | None = None) -> list[int]:
    """Points per stratum: proportional to area, each stratum raised to `minimum` (the rare classes a
    proportional allocation would starve, as the good-practice guide recommends), the rest shared
    proportionally among the others; never more than a stratum's `available` pixels."""
    w = np.asarray(weights, float)
    w = w / w.sum()
    cap = np.full(len(w), np.iinfo(np.int64).max) if available is None else np.asarray(available, np.int64)
    raised = np.zeros(len(w), bool)
    while True:
        free = ~raised
        rest = n - int(np.minimum(minimum, cap)[raised].sum())
        share = np.zeros(len(w))
        if free.any() and w[free].sum() > 0:
            share[free] = rest * w[free] / w[free].sum()
        low = free & (np.round(share) < np.minimum(minimum, cap))
        if not low.any():
            break
        raised |= low
    alloc = np.where(raised, np.minimum(minimum, cap), np.round(share)).astype(np.int64)
    return np.minimum(alloc, cap).tolist()
