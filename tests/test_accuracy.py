"""The accuracy and area estimators against published figures and closed forms worked by hand.

Olofsson, Foody, Herold, Stehman, Woodcock and Wulder (2014), "Good practices for estimating area
and assessing accuracy of land change", Remote Sensing of Environment 148: 42-57, section 5: Table 8
(sample counts, map areas in 30 m pixels) and the estimates printed in sections 5.1.1, 5.2.1 and
5.2.2. Two printed half-widths disagree with the paper's own equation 7 (producer's accuracy of
forest gain, printed 0.23, and of stable non-forest, printed 0.01); for those the test holds the
value worked by hand from equation 7 below, not the code's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landcover.accuracy import allocate, assess, sample_size

# Table 8: rows = map class (= stratum), columns = reference; deforestation, gain, stable forest, stable non-forest
COUNTS = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
PIXELS = {1: 200_000, 2: 150_000, 3: 3_200_000, 4: 6_450_000}
HA_PER_PIXEL = 0.09


def _points(counts: np.ndarray) -> tuple[list[int], list[int]]:
    m, r = [], []
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            m += [i + 1] * int(counts[i, j])
            r += [j + 1] * int(counts[i, j])
    return m, r


@pytest.fixture(scope="module")
def olofsson():
    m, r = _points(COUNTS)
    return assess(m, r, strata=m, stratum_sizes=PIXELS)


def test_the_published_worked_example(olofsson) -> None:
    a = olofsson
    assert a.design == "stratified" and a.points == 640
    assert np.array_equal(a.counts, COUNTS)
    table9 = [[0.0176, 0, 0.0013, 0.0011], [0, 0.0110, 0.0016, 0.0024], [0.0019, 0, 0.2967, 0.0213],
              [0.0040, 0.0020, 0.0179, 0.6212]]  # Table 9, the estimated area proportions
    assert np.abs(a.proportions - np.array(table9)).max() < 0.00005 + 1e-12
    assert (round(a.overall.value, 2), round(a.overall.half_width, 2)) == (0.95, 0.02)
    assert [round(a.users[c].value, 2) for c in range(1, 5)] == [0.88, 0.73, 0.93, 0.96]
    assert [round(a.users[c].half_width, 2) for c in range(1, 5)] == [0.07, 0.10, 0.04, 0.02]
    assert [round(a.producers[c].value, 2) for c in range(1, 5)] == [0.75, 0.85, 0.93, 0.96]
    assert [round(a.producers[c].half_width, 2) for c in (1, 3)] == [0.21, 0.03]  # as printed
    area = [a.area_share[c].value * 10_000_000 * HA_PER_PIXEL for c in range(1, 5)]
    half = [a.area_share[c].half_width * 10_000_000 * HA_PER_PIXEL for c in range(1, 5)]
    assert [round(v) for v in area] == [21158, 11686, 285770, 581386]  # ha, section 5.2.2
    assert [round(v) for v in half] == pytest.approx([6158, 3756, 15510, 16282], abs=1)
    assert a.mapped_share == {1: 0.02, 2: 0.015, 3: 0.32, 4: 0.645}


def test_producers_accuracy_by_hand_from_equation_7(olofsson) -> None:
    """Equation 7 of Olofsson et al. 2014, worked with plain arithmetic for forest gain (j = 2): the
    printed 0.23 is a typo for 0.25."""
    n_i = COUNTS.sum(1)
    N = np.array([PIXELS[k] for k in range(1, 5)], float)
    j = 1  # forest gain, 0-based
    N_j_hat = sum(N[i] * COUNTS[i, j] / n_i[i] for i in range(4))  # estimated reference pixels of the class
    P = N[j] * COUNTS[j, j] / n_i[j] / N_j_hat
    U = COUNTS[j, j] / n_i[j]
    others = sum(N[i] ** 2 * COUNTS[i, j] / n_i[i] * (1 - COUNTS[i, j] / n_i[i]) / (n_i[i] - 1)
                 for i in range(4) if i != j)
    V = (N[j] ** 2 * (1 - P) ** 2 * U * (1 - U) / (n_i[j] - 1) + P ** 2 * others) / N_j_hat ** 2
    assert olofsson.producers[2].value == pytest.approx(P, rel=1e-12)
    assert olofsson.producers[2].se == pytest.approx(math.sqrt(V), rel=1e-9)
    assert round(1.96 * math.sqrt(V), 3) == 0.254


def test_a_small_case_by_hand() -> None:
    """Two strata = map classes, 6 points: stratum A (N = 60 pixels) 4 points, 3 right; stratum B
    (N = 40) 2 points, 1 right. Worked on paper:
    W = (0.6, 0.4); U_A = 3/4, U_B = 1/2; O = 0.6 * 0.75 + 0.4 * 0.5 = 0.65;
    V(O) = 0.36 * 0.75 * 0.25 / 3 + 0.16 * 0.5 * 0.5 / 1 = 0.0225 + 0.04 = 0.0625, SE = 0.25;
    p(ref = B) = 0.6 * 1/4 + 0.4 * 1/2 = 0.35; V = 0.36 * (1/4)(3/4)/3 + 0.16 * (1/2)(1/2)/1 = 0.0625;
    producer's of B = 0.2 / 0.35 = 4/7."""
    m = ["A"] * 4 + ["B"] * 2
    r = ["A", "A", "A", "B", "B", "A"]
    codes = {"A": 1, "B": 2}
    a = assess([codes[x] for x in m], [codes[x] for x in r], strata=m, stratum_sizes={"A": 60, "B": 40})
    assert (a.overall.value, a.overall.se) == pytest.approx((0.65, 0.25))
    assert (a.users[1].value, a.users[2].value) == pytest.approx((0.75, 0.5))
    assert (a.area_share[2].value, a.area_share[2].se) == pytest.approx((0.35, 0.25))
    assert a.producers[2].value == pytest.approx(4 / 7)


def test_a_simple_random_sample_is_the_binomial_case() -> None:
    """No strata: overall accuracy k / n with SE sqrt(p (1 - p) / (n - 1)); user's accuracy among the
    points mapped as the class."""
    m = [1] * 30 + [2] * 20
    r = [1] * 24 + [2] * 6 + [2] * 15 + [1] * 5
    a = assess(m, r)
    assert a.design == "simple random"
    assert a.overall.value == pytest.approx(39 / 50)
    assert a.overall.se == pytest.approx(math.sqrt(0.78 * 0.22 / 49))
    assert a.users[1].value == pytest.approx(0.8) and a.producers[1].value == pytest.approx(24 / 29)


def test_a_domain_is_the_stratified_estimate_restricted_to_it(olofsson) -> None:
    m, r = _points(COUNTS)
    everything = assess(m, r, strata=m, stratum_sizes=PIXELS, domain=[True] * len(m))
    assert everything.overall.value == pytest.approx(olofsson.overall.value)
    assert everything.overall.se == pytest.approx(olofsson.overall.se)
    # one map class as the domain: its overall accuracy is that class's user's accuracy
    one = assess(m, r, strata=m, stratum_sizes=PIXELS, domain=[x == 1 for x in m])
    assert one.overall.value == pytest.approx(olofsson.users[1].value)


def test_sample_size_and_allocation_of_the_worked_example() -> None:
    """Section 5.1.1 and Table 5: expected user's accuracies 0.7, 0.6, 0.9, 0.95 and a target
    standard error of 0.01 give n = 641; proportional allocation 13, 10, 205, 413."""
    weights = [0.020, 0.015, 0.320, 0.645]
    assert sample_size(weights, [0.70, 0.60, 0.90, 0.95], 0.01) == 641
    assert allocate(641, weights) == [13, 10, 205, 413]
    # a floor of 100 for the rare strata, the rest shared in proportion (by hand: 441 x 0.32 / 0.965 = 146.2)
    assert allocate(641, weights, 100) == [100, 100, 146, 295]
    # a stratum with only 40 pixels gives all of them: 641 - 40 - 100 = 501 shared, 501 x 0.32 / 0.965 = 166.1
    assert allocate(641, weights, 100, available=[40, 1000, 10**6, 10**6]) == [40, 100, 166, 335]
