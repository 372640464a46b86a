"""sweep.data: the feature distributions of the data keys, and what they keep.

Statistical checks compare realised frequencies with exact targets in units of
their standard error (SE). Every draw has a fixed seed, so the file is
deterministic; the bounds are also chosen so that a correct sampler would pass
them for almost any seed (``bound``): a test is never tuned to its seed.
"""

import hashlib
import json

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr, ndtri
from threadpoolctl import threadpool_limits

from sweep import pipeline
from sweep.config import cell_name, fingerprint
from sweep.data import (
    DEFAULTS,
    DataError,
    Features,
    add_noise,
    features,
    hierarchy,
    problems,
    sparse_features,
    textbook,
)
from sweep.grid import BadInput, expand_cells
from sweep.metrics import coherence
from sweep.models import random_model

# --- helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """BLAS on one thread: these small products are faster so on a shared machine
    (several BLAS threads contend with the other processes)."""
    with threadpool_limits(1):
        yield


def data(**keys) -> dict:
    """The data keys of a cell: the defaults, with these changed."""
    unknown = set(keys) - set(DEFAULTS)
    assert not unknown, unknown
    return DEFAULTS | keys


def build(n, sparsity, seed=0, k=None, **keys) -> Features:
    return features(n, sparsity, k, data(**keys), np.random.default_rng(seed))


def bound(n_tests: int, family: float = 1e-3) -> float:
    """The |z| bound of ``n_tests`` simultaneous z-scores: 4, or the Bonferroni bound
    at family-wise level ``family`` if larger (more than 15 tests: 4.2 for 40, 4.4
    for 120). The union bound holds whatever the dependence between the statistics
    (correlated features too): a correct sampler passes all of them with
    probability >= 1 - family, while a plain 4 SE bound on each of 200 independent
    features would fail about 1 % of seeds."""
    return max(4.0, float(ndtri(1 - family / (2 * n_tests))))


def assert_rates(fires: np.ndarray, rates: np.ndarray) -> None:
    """The realised firing of each feature (fires: (N, n) bool) matches ``rates``.

    Three statistics, each a valid test whatever the correlation between features:
    1. per feature z_i = (count_i - N r_i) / sqrt(N r_i (1 - r_i)), max |z_i| below
       ``bound(n)`` (Bonferroni over the features);
    2. pooled: the mean number of firing features per sample against sum(r_i),
       within 4 SE (its SE from the sample's own spread of that number: correlated
       features make it larger than the binomial one);
    3. chi-square like: Q = sum z_i^2 has mean n (exactly) and variance
       V = 2 sum_ij rho_ij^2 + sum_i (1 - 6 r_i (1 - r_i)) / (N r_i (1 - r_i))
       (rho: the correlation of the firing indicators, estimated from the sample;
       the last term the binomial excess kurtosis; V = 2n for independent
       features). With Q ~ c chi2(nu) matched to these moments (Satterthwaite), its
       upper tail probability must be > 1e-4: a bias of ~0.75 SE in every
       feature (n = 120), which no single z_i shows, fails here.
    Rates of 0 or 1 must be met exactly.
    """
    N, n = fires.shape
    assert not fires[:, rates == 0].any()
    assert fires[:, rates == 1].all()
    inner = (rates > 0) & (rates < 1)
    F, r = fires[:, inner], rates[inner]
    m = len(r)
    pq = r * (1 - r)
    assert N * pq.min() > 30, "too few firings for a normal approximation"
    z = (F.sum(axis=0) - N * r) / np.sqrt(N * pq)
    worst = int(np.argmax(np.abs(z)))
    assert abs(z[worst]) < bound(m), (worst, z[worst], r[worst])

    per_sample = F.sum(axis=1)
    pooled = (per_sample.mean() - r.sum()) / (per_sample.std() / np.sqrt(N))
    assert abs(pooled) < 4, pooled

    Ff = F.astype(np.float32)  # counts up to N < 2^24 are exact in float32
    freq = F.mean(axis=0)
    cov = (Ff.T @ Ff).astype(float) / N - np.outer(freq, freq)
    sd = np.sqrt(np.diag(cov))
    rho = cov / np.outer(sd, sd)
    Q = float(np.sum(z**2))
    V = 2 * np.sum(rho**2) + np.sum((1 - 6 * pq) / (N * pq))
    c, nu = V / (2 * m), 2 * m**2 / V
    assert stats.chi2.sf(Q / c, nu) > 1e-4, (Q, m, V)


def fires_of(dist: Features, n_samples: int, seed: int) -> np.ndarray:
    return dist.sample(n_samples, np.random.default_rng(seed)) > 0


def assert_p_both(fires, i, j, expected, n_tests=1):
    """P(features i and j both fire) within ``bound(n_tests)`` SE of ``expected``."""
    N = len(fires)
    assert N * expected > 50, "too few co-firings for a normal approximation"
    both = np.mean(fires[:, i] & fires[:, j])
    z = (both - expected) / np.sqrt(expected * (1 - expected) / N)
    assert abs(z) < bound(n_tests), (i, j, both, expected, z)


def orthant(rate_i, rate_j, rho) -> float:
    """P(z_i < Phi^-1(rate_i), z_j < Phi^-1(rate_j)) of a standard bivariate normal
    with correlation rho: the co-firing of two features of a Gaussian copula."""
    cov = [[1.0, rho], [rho, 1.0]]
    upper = [ndtri(rate_i), ndtri(rate_j)]
    mvn = stats.multivariate_normal(mean=[0.0, 0.0], cov=cov)
    return float(mvn.cdf(upper))


# --- the textbook generator (kept) -------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.01, 0.1, 0.5, 1.0])
def test_bernoulli_density_and_values(rng, sparsity):
    X = sparse_features(4000, 50, rng=rng, sparsity=sparsity)
    assert X.shape == (4000, 50)
    assert X.min() >= 0 and X.max() <= 1
    density = np.mean(X != 0)
    assert (
        abs(density - sparsity) < 4 * np.sqrt(sparsity * (1 - sparsity) / X.size) + 1e-9
    )
    # active values are uniform on [0, 1]: mean 1/2, variance 1/12
    active = X[X != 0]
    assert abs(active.mean() - 0.5) < 0.02
    assert abs(active.var() - 1 / 12) < 0.01


@pytest.mark.parametrize("k", [1, 3, 20])
def test_exactly_k_active_uniform_positions(rng, k):
    X = sparse_features(3000, 20, rng=rng, k=k)
    assert np.all(np.sum(X != 0, axis=1) == k)
    # every feature is active equally often
    freq = np.mean(X != 0, axis=0)
    assert np.allclose(freq, k / 20, atol=0.04)


def test_sparsity_and_k_are_exclusive(rng):
    with pytest.raises(ValueError, match="exactly one"):
        sparse_features(5, 5, rng=rng, sparsity=0.1, k=2)
    with pytest.raises(ValueError, match="exactly one"):
        sparse_features(5, 5, rng=rng)


def test_same_stream_same_data():
    a = sparse_features(10, 8, rng=np.random.default_rng(1), sparsity=0.3)
    b = sparse_features(10, 8, rng=np.random.default_rng(1), sparsity=0.3)
    assert np.array_equal(a, b)


def test_noise_is_relative_to_rms(rng):
    H = rng.standard_normal((2000, 30)) * 7.0
    noisy = add_noise(H, noise=0.1, rng=rng)
    ratio = np.std(noisy - H) / np.sqrt(np.mean(H**2))
    assert abs(ratio - 0.1) < 0.005
    assert add_noise(H, noise=0.0, rng=rng) is H


# --- 1. firing rates ----------------------------------------------------------------

N_RATES = 50_000  # samples per case: > 380 firings of each case's rarest feature
HIER = {"hierarchy_depth": 2, "hierarchy_branching": 3}  # 13 features a tree
RATE_CASES = {
    # id: (n_features, sparsity, data keys)
    "constant": (120, 0.05, {}),
    "zipf": (120, 0.05, {"firing": "zipf", "firing_ratio": 50.0}),
    "zipf_folded_normal": (120, 0.05, {
        "firing": "zipf", "zipf_exponent": 0.5, "firing_ratio": 50.0,
        "magnitude": "folded_normal", "magnitude_mean": 0.2, "magnitude_spread": 3.0}),
    "linear_constant_magnitude": (120, 0.1, {
        "firing": "linear", "firing_ratio": 20.0, "magnitude": "constant"}),
    "linear_uniform_spread": (120, 0.1, {
        "firing": "linear", "firing_ratio": 20.0, "magnitude_spread": 0.5}),
    "pairs": (120, 0.1, {
        "firing": "linear", "firing_ratio": 20.0, "correlation": "pairs",
        "correlation_strength": 0.6}),
    "pairs_strength_1": (120, 0.05, {
        "firing": "zipf", "firing_ratio": 50.0, "correlation": "pairs"}),
    "anti_pairs": (120, 0.1, {
        "correlation": "anti_pairs", "correlation_strength": 0.7,
        "magnitude": "folded_normal"}),
    "low_rank": (120, 0.05, {
        "firing": "zipf", "firing_ratio": 50.0, "correlation": "low_rank",
        "correlation_strength": 0.8, "correlation_rank": 5}),
    "random": (120, 0.1, {
        "firing": "linear", "firing_ratio": 20.0, "correlation": "random",
        "correlation_strength": 0.5, "magnitude": "constant"}),
    # 9 trees of 13 and 3 free features; the wanted rates of siblings add up to
    # less than their parent's (zipf), or to more (constant: exclusive siblings
    # then share the parent's firings in proportion, non-exclusive ones fire with it)
    "hierarchy_zipf": (120, 0.03, {"firing": "zipf", "firing_ratio": 20.0, **HIER}),
    "hierarchy_zipf_exclusive": (120, 0.03, {
        "firing": "zipf", "firing_ratio": 20.0, "exclusive": True, **HIER}),
    "hierarchy_constant": (120, 0.2, {**HIER}),
    "hierarchy_constant_exclusive": (120, 0.1, {"exclusive": True, **HIER}),
    "hierarchy_linear_trees_exclusive": (120, 0.05, {
        "firing": "linear", "firing_ratio": 10.0, "hierarchy_depth": 1,
        "hierarchy_branching": 5, "hierarchy_trees": 4, "exclusive": True,
        "magnitude": "folded_normal"}),
}  # fmt: skip


@pytest.mark.parametrize("case", RATE_CASES)
def test_realised_rates_match_the_exact_rates(case):
    n, sparsity, keys = RATE_CASES[case]
    dist = build(n, sparsity, seed=1, **keys)
    assert dist.rates.shape == (n,)
    assert dist.rates.mean() == pytest.approx(sparsity, rel=1e-9)
    # seed 3: seed 2 drew one feature of "pairs" at z = -4.9 (a 1e-4 event; 4e6
    # samples of that case: max |z| 2.9 over 120 features, mean z^2 0.93)
    fires = fires_of(dist, N_RATES, seed=3)
    assert_rates(fires, dist.rates)
    firing = keys.get("firing", "constant")
    if firing != "constant" and "hierarchy_depth" not in keys:
        # ordered by rank, the most frequent over the least frequent: firing_ratio
        assert np.all(np.diff(dist.rates) <= 0)
        ratio = dist.rates.max() / dist.rates.min()
        assert ratio == pytest.approx(keys["firing_ratio"], rel=1e-9)
        assert dist.rates[0] / dist.rates[-1] == pytest.approx(ratio, rel=1e-12)


def test_zipf_and_linear_shapes():
    n, a, ratio = 50, 0.7, 30.0
    i = np.arange(n)
    zipf = build(n, 0.02, firing="zipf", zipf_exponent=a, firing_ratio=ratio).rates
    # zipf: rates - min proportional to (i+1)^-a - n^-a; linear: equal steps
    power = (i + 1.0) ** -a
    excess = (zipf - zipf[-1]) / (zipf[0] - zipf[-1])
    assert np.allclose(excess, (power - power[-1]) / (power[0] - power[-1]), atol=1e-12)
    linear = build(n, 0.02, firing="linear", firing_ratio=ratio).rates
    assert np.allclose(np.diff(linear), np.diff(linear)[0], rtol=1e-9)
    assert linear[0] / linear[-1] == pytest.approx(ratio, rel=1e-9)


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
@pytest.mark.parametrize("keys", [
    {},
    {"firing": "zipf", "zipf_exponent": 1.5, "firing_ratio": 1000.0},
    {"firing": "linear", "firing_ratio": 1.0},
    {"hierarchy_depth": 1, "hierarchy_branching": 1},
    {"firing": "zipf", "hierarchy_depth": 1, "hierarchy_branching": 2,
     "exclusive": True},
    {"firing": "linear", "hierarchy_depth": 3, "hierarchy_branching": 2,
     "hierarchy_trees": 1},
])  # fmt: skip
def test_mean_rate_is_sparsity(n, keys):
    """Exactly (1e-9 relative), in every case where the sparsity is reachable (with a
    hierarchy the common factor is found by bisection); where it is not, ``problems``
    says so and ``features`` refuses."""
    for sparsity in (1e-4, 0.01, 0.3):
        if problems(n, sparsity, None, data(**keys)):
            with pytest.raises(DataError):
                build(n, sparsity, **keys)
            continue
        dist = build(n, sparsity, **keys)
        assert dist.rates.mean() == pytest.approx(sparsity, rel=1e-9)
        assert np.all((dist.rates >= 0) & (dist.rates <= 1))
        assert np.all((dist.draw >= 0) & np.isfinite(dist.draw))


def test_magnitudes_do_not_change_which_features_fire():
    """The same structure and sample streams give the same support, whatever the
    magnitudes: the rates measured with one hold for every other."""
    base = {"firing": "zipf", "correlation": "low_rank", "correlation_strength": 0.5,
            "correlation_rank": 4}  # fmt: skip
    supports = [
        fires_of(build(60, 0.05, seed=3, **base, **mag), 2000, seed=4)
        for mag in ({}, {"magnitude": "constant"}, {"magnitude": "folded_normal"},
                    {"magnitude_spread": 5.0})
    ]  # fmt: skip
    for support in supports[1:]:
        assert np.array_equal(support, supports[0])


# --- 2. co-firing -------------------------------------------------------------------


def test_pairs_at_strength_one_fire_together():
    fires = fires_of(build(40, 0.1, seed=1, correlation="pairs"), 100_000, seed=2)
    assert np.array_equal(fires[:, 0::2], fires[:, 1::2])
    assert 0.09 < fires.mean() < 0.11  # not trivially: each fires at its rate
    # unequal rates: the rarer member fires only with the more frequent one
    dist = build(40, 0.05, seed=1, correlation="pairs", firing="zipf")
    fires = fires_of(dist, 100_000, seed=2)
    assert np.all(dist.rates[1::2] < dist.rates[0::2])
    assert not np.any(fires[:, 1::2] & ~fires[:, 0::2])


def test_anti_pairs_at_strength_one_never_fire_together():
    dist = build(40, 0.1, seed=1, correlation="anti_pairs", firing="linear",
                 firing_ratio=10.0)  # fmt: skip
    assert dist.rates.max() < 0.5
    fires = fires_of(dist, 100_000, seed=2)
    assert not np.any(fires[:, 0::2] & fires[:, 1::2])
    assert fires.mean() == pytest.approx(0.1, rel=0.02)


@pytest.mark.parametrize("kind, sign", [("pairs", 1.0), ("anti_pairs", -1.0)])
@pytest.mark.parametrize("strength", [0.3, 0.8])
def test_pair_cofiring_is_the_bivariate_normal_orthant(kind, sign, strength):
    """P(both members fire) = Phi2(t_a, t_b; +-strength) at their thresholds
    t = Phi^-1(rate); members of different pairs are independent."""
    # rates from 0.47 to 0.23: every pair co-fires in > 100 of the samples
    dist = build(40, 0.35, seed=1, correlation=kind, correlation_strength=strength,
                 firing="linear", firing_ratio=2.0)  # fmt: skip
    r = dist.rates
    fires = fires_of(dist, 100_000, seed=2)
    pairs = [(0, 1), (10, 11), (24, 25), (38, 39)]
    others = [(0, 2), (1, 3), (10, 25), (11, 38)]
    n_tests = len(pairs) + len(others)
    for i, j in pairs:
        assert_p_both(fires, i, j, orthant(r[i], r[j], sign * strength), n_tests)
    for i, j in others:
        assert_p_both(fires, i, j, r[i] * r[j], n_tests)
    # and the sign: together more (pairs) or less (anti_pairs) often than apart
    both = np.mean(fires[:, 0] & fires[:, 1])
    assert (both - r[0] * r[1]) * sign > 0


@pytest.mark.parametrize("kind", ["low_rank", "random"])
def test_shared_factor_cofiring_follows_the_loadings(kind):
    """Latent correlation of features i, j: strength x cos(loading_i, loading_j);
    the most strongly (positively and negatively) loaded pairs co-fire as the
    bivariate normal with that correlation. The pairs are picked from the loadings,
    not from the sample."""
    strength = 0.9
    # rates from 0.48 to 0.32: even at correlation -0.9 a pair co-fires in > 100
    dist = build(60, 0.4, seed=5, correlation=kind, correlation_strength=strength,
                 correlation_rank=3, firing="linear", firing_ratio=1.5)  # fmt: skip
    L = dist.loading
    assert L.shape == ((60, 3) if kind == "low_rank" else (60, 60))
    assert np.allclose(np.linalg.norm(L, axis=1), 1.0)
    rho = strength * (L @ L.T)
    np.fill_diagonal(rho, 0.0)
    upper = np.triu_indices(60, 1)
    order = np.argsort(rho[upper])
    picked = [*order[-3:], *order[:2]]  # three most positive, two most negative
    fires = fires_of(dist, 100_000, seed=6)
    r = dist.rates
    for p in picked:
        i, j = upper[0][p], upper[1][p]
        if kind == "low_rank":
            assert abs(rho[i, j]) > 0.7  # rank 3: strongly loaded pairs exist
        assert_p_both(fires, i, j, orthant(r[i], r[j], rho[i, j]), len(picked))


@pytest.mark.parametrize("kind", ["pairs", "anti_pairs"])
def test_odd_feature_out_of_pairs_keeps_its_rate(kind):
    """An odd number of features: the last has no partner and should keep its own
    latent (z = e, unit variance) and so its rate. (A latent of
    (sqrt(1-s) + sqrt(s)) e, variance 1 + 2 sqrt(s (1-s)), fired at 0.122 instead of
    0.05 here: pairs/anti_pairs with strength strictly between 0 and 1.)"""
    dist = build(21, 0.05, seed=1, correlation=kind, correlation_strength=0.5)
    fires = fires_of(dist, 50_000, seed=2)
    assert_rates(fires, dist.rates)


# --- 3. hierarchies -----------------------------------------------------------------


def bfs_layout(trees, depth, b):
    """Reference numbering: roots 0..trees-1, then each node's b children numbered
    in turn, nodes taken in the order of their own numbers (breadth first)."""
    children, next_free = {}, trees
    internal = trees * sum(b**level for level in range(depth))
    for node in range(internal):
        children[node] = list(range(next_free, next_free + b))
        next_free += b
    return children, next_free


@pytest.mark.parametrize("n, depth, b, trees, expected_trees", [
    (100, 2, 3, None, 7),  # 13 a tree: 7 trees, 9 free features
    (100, 2, 3, 2, 2),
    (85, 3, 4, None, 1),
    (12, 1, 1, None, 6),
])  # fmt: skip
def test_hierarchy_layout_is_breadth_first(n, depth, b, trees, expected_trees):
    levels = hierarchy(n, data(hierarchy_depth=depth, hierarchy_branching=b,
                               hierarchy_trees=trees))  # fmt: skip
    assert len(levels) == depth
    ref, used = bfs_layout(expected_trees, depth, b)
    assert np.array_equal(levels[0][1], np.arange(expected_trees))  # the roots
    for level, (kids, parents) in enumerate(levels):
        assert kids.shape == (len(parents), b)
        for row, parent in zip(kids, parents, strict=True):
            assert row.tolist() == ref[parent]
        if level:
            assert np.array_equal(parents, levels[level - 1][0].ravel())
    in_trees = np.concatenate([levels[0][1], *(kids.ravel() for kids, _ in levels)])
    assert np.array_equal(np.sort(in_trees), np.arange(used))  # the rest are free
    assert used <= n


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("correlation", ["none", "low_rank"])
def test_hierarchy_is_never_violated(exclusive, correlation):
    keys = {"firing": "zipf", "firing_ratio": 10.0, "hierarchy_depth": 2,
            "hierarchy_branching": 3, "exclusive": exclusive,
            "correlation": correlation, "correlation_strength": 0.7,
            "correlation_rank": 4}  # fmt: skip
    dist = build(100, 0.03, seed=1, **keys)
    fires = fires_of(dist, 100_000, seed=2)
    assert dist.exclusive is exclusive and len(dist.levels) == 2
    for kids, parents in dist.levels:
        child, parent = fires[:, kids], fires[:, parents][:, :, None]
        assert not np.any(child & ~parent)  # a child never fires without its parent
        assert child.any(axis=(0, 1)).all()  # every child does fire
        together = child.sum(axis=2)
        if exclusive:
            assert together.max() == 1  # at most one child of a parent
        else:
            assert together.max() > 1


@pytest.mark.parametrize("exclusive", [False, True])
def test_rates_hold_with_hierarchy_and_correlation(exclusive):
    """``rates`` are documented as the exact marginal rates, and the copula as
    keeping each feature's rate: with a hierarchy too (the SynthSAEBench-like
    combination of benchmarks/data.py).

    A child's draw given its parent is its own uniform, independent of the
    latents (which correlate it with its parent): drawn from its latent, child rates
    were off by up to ~60 SE here and the mean rate by ~2 %."""
    keys = {"firing": "zipf", "hierarchy_depth": 1, "hierarchy_branching": 3,
            "exclusive": exclusive, "correlation": "low_rank",
            "correlation_strength": 0.9, "correlation_rank": 25}  # fmt: skip
    dist = build(40, 0.05, seed=0, **keys)
    assert_rates(fires_of(dist, 50_000, seed=1), dist.rates)


def test_trees_that_do_not_fit_are_refused():
    keys = data(hierarchy_depth=2, hierarchy_branching=3, hierarchy_trees=2)
    expected = (r"data.hierarchy_depth=2 with data.hierarchy_branching=3: a tree has"
                r" 13 features, 2 tree\(s\) need 26 > n_features=20")  # fmt: skip
    with pytest.raises(DataError, match=expected):
        features(20, 0.01, None, keys, np.random.default_rng(0))
    (line,) = problems(20, 0.01, None, keys)
    assert "data.hierarchy_depth=2" in line and "n_features=20" in line
    assert "\n" not in line
    # not even one tree (hierarchy_trees: null, as many as fit)
    (line,) = problems(10, 0.01, None, data(hierarchy_depth=2, hierarchy_branching=3))
    assert "1 tree(s) need 13 > n_features=10" in line
    assert problems(26, 0.01, None, keys) == []


def test_unreachable_sparsity_is_refused_naming_the_keys():
    keys = data(firing="zipf", firing_ratio=100.0)
    with pytest.raises(DataError, match="allowed is sparsity <="):
        features(100, 0.5, None, keys, np.random.default_rng(0))
    (line,) = problems(100, 0.5, None, keys)
    assert line.startswith("sparsity=0.5 with data.firing='zipf':")
    assert "\n" not in line
    # the stated bound: the mean rate when feature 0 fires in every sample
    most = float(line.split("sparsity <= ")[1].split(",")[0])
    assert build(100, most * 0.999, firing="zipf").rates.max() < 1
    assert problems(100, most * 0.999, None, keys) == []
    # a hierarchy and exclusivity name themselves too
    keys = data(hierarchy_depth=2, hierarchy_branching=4, exclusive=True)
    (line,) = problems(21, 0.5, None, keys)
    assert "data.hierarchy_depth=2" in line and "data.exclusive=True" in line
    # and the command line refuses the cell with that line
    with pytest.raises(BadInput, match="data.firing='zipf'"):
        expand_cells(["data.firing=zipf", "sparsity=0.5"], multirun=False)


def test_per_feature_keys_are_refused_with_k():
    for keys in ({"firing": "zipf"}, {"correlation": "pairs"}, {"hierarchy_depth": 1}):
        (line,) = problems(20, None, 3, data(**keys))
        assert line.startswith(f"data.{next(iter(keys))}=") and "k=3" in line
        with pytest.raises(DataError):
            build(20, None, k=3, **keys)
    assert problems(20, None, 3, data(magnitude="folded_normal")) == []


def test_problems_refuses_what_features_refuses():
    """Whatever ``features`` refuses, ``problems`` (the check before a sweep) reports,
    so that a cell is refused up front instead of failing when it runs: here
    correlation=random beyond MAX_DENSE features with constant firing and no
    hierarchy (once let through by an early return for the textbook rates)."""
    keys = data(correlation="random", correlation_strength=0.5)
    with pytest.raises(DataError, match="allowed up to 8192"):
        features(9000, 0.01, None, keys, np.random.default_rng(0))
    (line,) = problems(9000, 0.01, None, keys)
    assert line.startswith("data.correlation='random' with n_features=9000")
    assert problems(8192, 0.01, None, keys) == []
    with pytest.raises(BadInput, match="data.correlation='random'"):
        expand_cells(["data.correlation=random", "n_features=9000", "neurons=100"],
                     multirun=False)  # fmt: skip


# --- 4. coherence and the orthogonal geometry ----------------------------------------


def brute_coherence(W):
    n = W.shape[1]
    largest = []
    for i in range(n):
        best = 0.0
        for j in range(n):
            ni, nj = np.linalg.norm(W[:, i]), np.linalg.norm(W[:, j])
            if j != i and ni > 0 and nj > 0:
                best = max(best, abs(W[:, i] @ W[:, j]) / (ni * nj))
        largest.append(best)
    return float(np.mean(largest))


def test_coherence_definition_and_blocks(rng):
    W = rng.standard_normal((4, 9)) * rng.uniform(0.1, 5, size=9)  # any lengths
    W[:, 3] = 0.0  # a zero column: 0 with every other, and its own largest is 0
    assert coherence(W) == pytest.approx(brute_coherence(W), rel=1e-12)
    for block in (1, 2, 4, 5, 9, 100):
        assert coherence(W, block=block) == pytest.approx(coherence(W), rel=1e-12)
    V = rng.standard_normal((30, 500))
    assert coherence(V, block=64) == pytest.approx(coherence(V), rel=1e-12)
    # antipodal columns are as coherent as equal ones
    assert coherence(np.array([[1.0, -2.0], [0.0, 0.0]])) == pytest.approx(1.0)


@pytest.mark.parametrize("target", [0.35, 0.3])
def test_orthogonal_geometry_reaches_its_target(target):
    gaussian = random_model(100, 20, rng=np.random.default_rng(7)).W
    W = random_model(100, 20, rng=np.random.default_rng(7), geometry="orthogonal",
                     target_cos=target).W  # fmt: skip
    assert np.allclose(np.linalg.norm(W, axis=0), 1.0)
    assert abs(coherence(W) - target) < 0.02
    assert coherence(W) < coherence(gaussian) - 0.1
    G = np.abs(W.T @ W)
    np.fill_diagonal(G, 0.0)
    assert G.max() < target + 1e-3  # no two columns overlap more than the target


def test_orthogonal_geometry_with_room_is_orthonormal():
    for n, m in ((10, 20), (20, 20)):
        W = random_model(n, m, rng=np.random.default_rng(1), geometry="orthogonal").W
        assert W.shape == (m, n)
        assert np.allclose(W.T @ W, np.eye(n), atol=1e-12)
        assert coherence(W) < 1e-9


# --- 5. the defaults draw what was drawn before the data keys ------------------------


@pytest.mark.parametrize("n, sparsity, n_samples", [(50, 0.05, 300), (7, 0.5, 11),
                                                    (100, 1.0, 20)])  # fmt: skip
def test_defaults_reproduce_the_textbook_draw_bit_for_bit(n, sparsity, n_samples):
    dist = features(n, sparsity, None, DEFAULTS, np.random.default_rng(0))
    X = dist.sample(n_samples, np.random.default_rng(42))
    # the code before the data keys, inline:
    rng2 = np.random.default_rng(42)
    mask = rng2.random((n_samples, n)) < sparsity
    expected = mask * rng2.random((n_samples, n))
    assert X.dtype == expected.dtype and np.array_equal(X, expected)
    assert np.array_equal(dist.rates, np.full(n, sparsity))
    again = sparse_features(n_samples, n, rng=np.random.default_rng(42),
                            sparsity=sparsity)  # fmt: skip
    assert np.array_equal(again, expected)


@pytest.mark.parametrize("n, k", [(50, 5), (20, 1), (8, 8), (10, 0)])
def test_defaults_with_k_reproduce_the_textbook_draw_bit_for_bit(n, k):
    dist = features(n, None, k, DEFAULTS, np.random.default_rng(0))
    X = dist.sample(40, np.random.default_rng(9))
    # before: the k smallest of n uniform keys per row, then the values
    rng2 = np.random.default_rng(9)
    keys = rng2.random((40, n))
    if k:  # each row's k smallest keys: those up to its k-th smallest (no ties)
        mask = keys <= np.sort(keys, axis=1)[:, k - 1 : k]
    else:
        mask = np.zeros((40, n), dtype=bool)
    expected = mask * rng2.random((40, n))
    assert np.array_equal(X, expected)
    assert np.all((X > 0).sum(axis=1) == k)
    assert np.array_equal(dist.rates, np.full(n, k / n))


def pre_change_fingerprint(flat):
    """config.fingerprint before the data keys: a hash of the flat without them."""
    new = [key for key in flat if key.startswith("data.")
           or key in ("model.geometry", "model.target_cos")]  # fmt: skip
    old = {key: value for key, value in flat.items() if key not in new}
    return hashlib.sha256(json.dumps(old, sort_keys=True, default=str).encode()
                          ).hexdigest()  # fmt: skip


SMALL = ["trials=2", "n_samples=60", "n_train=50"]
EVERY_DATA_KEY_AT_ITS_DEFAULT = [
    "data.firing=constant", "data.zipf_exponent=1", "data.firing_ratio=100",
    "data.magnitude=uniform", "data.magnitude_mean=1", "data.magnitude_std=0.5",
    "data.magnitude_spread=1", "data.correlation=none", "data.correlation_strength=1",
    "data.correlation_rank=25", "data.hierarchy_depth=0", "data.hierarchy_branching=4",
    "data.hierarchy_trees=null", "data.exclusive=false",
]  # fmt: skip


def test_default_cell_is_the_cell_it_was():
    """Written out or not, the default data keys make the same cell (flat, folder
    name, fingerprint: the one it had before the keys), which draws the same X, W
    and training set as the pipeline did before them, and gives the same metrics."""
    assert {line.split("=")[0].removeprefix("data.")
            for line in EVERY_DATA_KEY_AT_ITS_DEFAULT} == set(DEFAULTS)  # fmt: skip
    (plain,) = expand_cells(["method=omp", *SMALL], multirun=False)
    (written,) = expand_cells(
        ["method=omp", *SMALL, *EVERY_DATA_KEY_AT_ITS_DEFAULT], multirun=False
    )
    assert written.flat == plain.flat
    assert written.name == plain.name == cell_name(plain.flat)
    name = "method=omp,n_samples=60,n_train=50,neurons=20,sparsity=0.05,trials=2"
    assert plain.name == name
    assert written.fingerprint == plain.fingerprint == fingerprint(plain.flat)
    assert plain.fingerprint == pre_change_fingerprint(plain.flat)

    flat = plain.flat
    n, m = flat["n_features"], flat["neurons"]
    keys = {key: flat[key] for key in ("n_features", "sparsity", "k")}
    for trial, model in enumerate(pipeline.build_models(flat)):
        # the pipeline before the data keys: the same streams, the textbook draw
        rng = pipeline.stream(
            flat, trial, "model", {"model": "random", "n_features": n, "neurons": m}
        )
        W = rng.standard_normal((m, n))
        assert np.array_equal(model.W, W / np.linalg.norm(W, axis=0))
        got = pipeline.draw(flat, trial, model, pipeline.distribution(flat, trial))
        for name, size, X in (("test", flat["n_samples"], got.X),
                              ("train", flat["n_train"], None)):  # fmt: skip
            extra = {"n_train": flat["n_train"]} if name == "train" else {}
            rng = pipeline.stream(flat, trial, name, keys | extra)
            mask = rng.random((size, n)) < flat["sparsity"]
            expected = mask * rng.random((size, n))
            if X is not None:
                assert np.array_equal(X, expected)
            else:  # no noise: H_train is X_train W^T
                assert np.array_equal(got.H_train, expected @ model.W.T)

    a = pipeline.run_cell("method=omp", *SMALL)
    b = pipeline.run_cell("method=omp", *SMALL, *EVERY_DATA_KEY_AT_ITS_DEFAULT)
    columns = [c for c in a.columns if not c.endswith("_seconds")]
    assert a["cell"].iloc[0] == plain.name
    pd_equal(a[columns], b[columns])
    assert a["true_l0"].between(2.0, 8.0).all()  # 100 features x 0.05


def pd_equal(a, b):
    import pandas.testing

    pandas.testing.assert_frame_equal(a, b, check_exact=True)


# --- 6. every method sees the same data -------------------------------------------

SHAPED = ["data.firing=zipf", "data.zipf_exponent=0.8", "data.correlation=low_rank",
          "data.correlation_strength=0.6", "data.correlation_rank=5",
          "data.magnitude=folded_normal", *SMALL]  # fmt: skip


def cell_flat(*lines):
    (cell,) = expand_cells(list(lines), multirun=False)
    return cell.flat


def drawn(flat, trial=0):
    (model,) = pipeline.build_models(flat, [trial])
    dist = pipeline.distribution(flat, trial)
    return dist, pipeline.draw(flat, trial, model, dist)


def test_every_method_sees_the_same_data():
    omp, lasso = cell_flat("method=omp", *SHAPED), cell_flat("method=lasso", *SHAPED)
    for trial in (0, 1):
        (d1, x1), (d2, x2) = drawn(omp, trial), drawn(lasso, trial)
        assert np.array_equal(d1.rates, d2.rates)
        assert np.array_equal(d1.loading, d2.loading)
        assert np.array_equal(x1.X, x2.X) and np.array_equal(x1.H, x2.H)
        assert np.array_equal(x1.H_train, x2.H_train)
    assert not np.array_equal(drawn(omp, 0)[1].X, drawn(omp, 1)[1].X)
    # not the textbook data: zipf rates, folded normal values
    dist, x = drawn(omp)
    assert dist.rates[0] > 10 * dist.rates[-1] and dist.magnitude == "folded_normal"
    assert x.X.max() > 1.0
    # a data key changed: other data
    for change in ("data.zipf_exponent=0.7", "data.correlation_strength=0.5",
                   "data.magnitude_std=0.4", "sparsity=0.04"):  # fmt: skip
        other = drawn(cell_flat("method=omp", *SHAPED, change))[1].X
        assert not np.array_equal(other, x.X), change
    # and the metrics of the data: true_l0 per trial, the same for both methods
    a = pipeline.run_cell("method=omp", *SHAPED)
    b = pipeline.run_cell("method=lasso", *SHAPED)
    assert np.array_equal(a["true_l0"].to_numpy(), b["true_l0"].to_numpy())
    assert a["true_l0"].iloc[0] == np.mean(np.sum(drawn(omp, 0)[1].X > 0, axis=1))


# --- 7. magnitudes --------------------------------------------------------------------


def spread_factor(n, spread):
    """Linear from 1 at feature 0 to ``spread`` at the last."""
    return 1.0 + (spread - 1.0) * np.arange(n) / (n - 1)


def test_constant_magnitudes_are_mean_times_the_spread():
    n = 30
    dist = build(n, 0.2, magnitude="constant", magnitude_mean=1.5,
                 magnitude_spread=3.0, firing="linear")  # fmt: skip
    X = dist.sample(2000, np.random.default_rng(1))
    rows, cols = np.nonzero(X)
    assert len(cols) > 0.15 * X.size
    expected = 1.5 * spread_factor(n, 3.0)
    assert np.allclose(X[rows, cols], expected[cols], rtol=1e-12, atol=0)
    # with k too
    X = build(n, None, k=4, magnitude="constant", magnitude_mean=2.0).sample(
        50, np.random.default_rng(2)
    )
    assert np.all(np.sum(X > 0, axis=1) == 4) and set(np.unique(X)) == {0.0, 2.0}


def folded_mean(mu, sigma):
    return (sigma * np.sqrt(2 / np.pi) * np.exp(-(mu**2) / (2 * sigma**2))
            + mu * (1 - 2 * ndtr(-mu / sigma)))  # fmt: skip


def test_folded_normal_magnitudes():
    """Per feature, |N(mu_i, sigma_i^2)| with mu_i = mean x f_i, sigma_i = std x f_i
    (f_i the spread factor): the sample mean and variance of its active values
    within ``bound`` SE of the closed forms (mean as in the docstring, variance
    mu^2 + sigma^2 - mean^2)."""
    n, mean, std, spread = 16, 0.3, 0.5, 2.0
    dist = build(n, 0.5, magnitude="folded_normal", magnitude_mean=mean,
                 magnitude_std=std, magnitude_spread=spread)  # fmt: skip
    X = dist.sample(20_000, np.random.default_rng(3))
    f = spread_factor(n, spread)
    mu, sigma = mean * f, std * f
    m1 = folded_mean(mu, sigma)
    var = mu**2 + sigma**2 - m1**2
    limit = bound(2 * n)
    for i in range(n):
        v = X[X[:, i] > 0, i]
        assert len(v) > 9000
        z_mean = (v.mean() - m1[i]) / np.sqrt(var[i] / len(v))
        m4 = np.mean((v - v.mean()) ** 4)  # the SE of a variance: its 4th moment
        z_var = (v.var() - var[i]) / np.sqrt((m4 - v.var() ** 2) / len(v))
        assert abs(z_mean) < limit and abs(z_var) < limit, (i, z_mean, z_var)
    # folding matters here: the plain normal's mean would be off by > 10 SE
    v = X[X[:, 0] > 0, 0]
    assert (v.mean() - mu[0]) / np.sqrt(var[0] / len(v)) > 10


def test_uniform_magnitudes_with_spread():
    """U[0, f_i]: every value below f_i, and values / f_i uniform on [0, 1]
    (Kolmogorov-Smirnov per feature, Bonferroni over the features)."""
    n, spread = 12, 4.0
    dist = build(n, 0.5, magnitude_spread=spread)
    X = dist.sample(8000, np.random.default_rng(4))
    f = spread_factor(n, spread)
    for i in range(n):
        v = X[X[:, i] > 0, i]
        assert v.max() <= f[i] and v.max() > 0.99 * f[i]
        assert stats.kstest(v / f[i], "uniform").pvalue > 1e-3 / n
    # a spread below 1 shrinks the later features
    X = build(n, 0.5, magnitude_spread=0.25).sample(4000, np.random.default_rng(5))
    assert X[:, -1].max() <= 0.25 and X[:, 0].max() > 0.99


def test_textbook_distribution():
    dist = textbook(10, sparsity=0.2)
    assert dist.plain and dist.k is None and np.all(dist.rates == 0.2)
    assert textbook(10, k=3).rates.tolist() == [0.3] * 10
    assert not build(10, 0.2, firing="linear").plain
    assert not build(10, 0.2, magnitude="constant").plain


def test_cells_that_differ_in_magnitudes_draw_the_same_features_firing():
    """Common random numbers: the draws' streams leave the magnitude keys out, so a
    sweep over data.magnitude compares the same supports; any other data key draws
    anew. A single feature and pairs: nothing to pair, it runs."""
    from sweep.pipeline import run_cell

    keys = {"n_features": 30, "neurons": 12, "trials": 1, "n_samples": 200,
            "sparsity": 0.1, "data.firing": "zipf", "data.firing_ratio": 5}  # fmt: skip

    def support(**more):
        flat = expand_cells([f"{k}={v}" for k, v in (keys | more).items()],
                            multirun=False)[0].flat  # fmt: skip
        model = pipeline.build_models(flat)[0]
        X = pipeline.draw(flat, 0, model, pipeline.distribution(flat, 0)).X
        return X > 0, X

    base, X = support()
    for kind in ("constant", "folded_normal"):
        same, values = support(**{"data.magnitude": kind})
        assert np.array_equal(same, base) and not np.array_equal(values, X)
    other, _ = support(**{"data.firing_ratio": 6})
    assert not np.array_equal(other, base)
    rows = run_cell("n_features=1", "neurons=1", "data.correlation=pairs", "trials=1")
    assert rows["status"].eq("ok").all()
