"""Synthetic sparse features: which features fire in a sample, and with what value.

The textbook case (every default): each feature fires independently with
probability ``sparsity`` and takes a value uniform on [0, 1]; or exactly ``k``
features, chosen uniformly, fire in every sample. The data keys (``data.*``, their
meaning in conf/config.yaml and README.md "Data") give features what they have in
real networks:

- firing rates per feature (``firing``), whose mean over features is ``sparsity``;
- magnitudes per feature (``magnitude``), spread over features by firing rank;
- correlated firing through a Gaussian copula, which keeps each feature's rate:
  feature i fires when its latent z_i < Phi^-1(rate_i), with
  z = sqrt(1 - s) e + sqrt(s) (shared factors), e ~ N(0, I), so corr(z) has unit
  diagonal: pairs share one factor (anti_pairs with opposite signs), ``random`` and
  ``low_rank`` load each feature on random unit-norm rows of n or ``rank`` factors;
- a hierarchy: trees laid out breadth first (roots first, then their children...),
  a child fires only when its parent fires (``exclusive``: at most one child of a
  parent), its own rate then being the conditional one; every rate is scaled by one
  factor so that the mean of the exact marginal rates is ``sparsity``.

Without a hierarchy features are ordered by firing rate (feature 0 fires most often);
with one, by their place in the trees (roots first, free features last).
"""

from dataclasses import dataclass, field, replace

import numpy as np

from sweep.checks import Check, boolean, integer, one_of, optional, real

# The data keys and what each allows; their defaults (conf/config.yaml) are the
# textbook case, which draws exactly what this project drew before they existed.
FIRING = ("constant", "zipf", "linear")
MAGNITUDES = ("uniform", "constant", "folded_normal")
CORRELATIONS = ("none", "pairs", "anti_pairs", "random", "low_rank")
KEYS: dict[str, Check] = {
    "firing": one_of(*FIRING),
    "zipf_exponent": real(0, open_low=True),
    "firing_ratio": real(1),
    "magnitude": one_of(*MAGNITUDES),
    "magnitude_mean": real(0),
    "magnitude_std": real(0),
    "magnitude_spread": real(0, open_low=True),
    "correlation": one_of(*CORRELATIONS),
    "correlation_strength": real(0, 1),
    "correlation_rank": integer(1),
    "hierarchy_depth": integer(0),
    "hierarchy_branching": integer(1),
    "hierarchy_trees": optional(integer(1)),
    "exclusive": boolean,
}
# The textbook case; conf/config.yaml states the same defaults with their meaning.
DEFAULTS = {
    "firing": "constant", "zipf_exponent": 1.0, "firing_ratio": 100.0,
    "magnitude": "uniform", "magnitude_mean": 1.0, "magnitude_std": 0.5,
    "magnitude_spread": 1.0, "correlation": "none", "correlation_strength": 1.0,
    "correlation_rank": 25, "hierarchy_depth": 0, "hierarchy_branching": 4,
    "hierarchy_trees": None, "exclusive": False,
}  # fmt: skip
SECTION = "data"  # the keys' section in the configuration: data.firing, ...
MAX_SHAPED = 10_000_000  # features with rates of their own: at most this many
MAX_DENSE = 8192  # correlation=random keeps an (n, n) loading: at most this many


class DataError(ValueError):
    """Data keys that cannot hold together (one line: keys, values, what is allowed)."""


@dataclass(frozen=True)
class Features:
    """The feature distribution of one trial: ``sample`` draws X from it.

    ``rates`` are the exact marginal firing probabilities (their mean is the cell's
    sparsity); ``draw`` the probability of each feature's own draw (for a tree's
    child: given that its parent fires).
    """

    n_features: int
    rates: np.ndarray
    draw: np.ndarray
    k: int | None = None
    magnitude: str = "uniform"
    mean: np.ndarray | None = None  # per feature: constant value, folded normal mean
    std: np.ndarray | None = None
    scale: np.ndarray | None = None  # per-feature factor on uniform magnitudes
    strength: float = 0.0  # share of each latent's variance from shared factors
    loading: np.ndarray | None = None  # (n, r) unit rows: random, low_rank
    partner: np.ndarray | None = None  # (n,) shared factor of a pair, -1: none
    sign: np.ndarray | None = None  # (n,) +1 / -1: the pair's sign
    levels: list = field(default_factory=list)  # [(children, parents)] top down
    exclusive: bool = False

    @property
    def correlated(self) -> bool:
        shared = self.loading is not None or self.partner is not None
        return self.strength > 0 and shared

    @property
    def plain(self) -> bool:
        """The textbook case with a firing probability: independent, constant rate,
        values uniform on [0, 1]."""
        return (
            self.k is None and not self.correlated and not self.levels
            and self.magnitude == "uniform" and self.scale is None
            and bool(np.all(self.draw == self.draw[0]))
        )  # fmt: skip

    def sample(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """X (n_samples, n_features), float64."""
        return self._values(self._support(n_samples, rng), rng)

    def _support(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Which features fire in each sample (boolean)."""
        n = self.n_features
        if self.k is not None:
            # The k smallest of n uniform keys pick a uniformly random k-subset per row.
            keys = rng.random((n_samples, n))
            k = self.k
            active = np.argpartition(keys, k - 1, axis=1)[:, :k] if k else keys[:, :0]
            mask = np.zeros((n_samples, n), dtype=bool)
            np.put_along_axis(mask, active.astype(np.intp), True, axis=1)
            return mask
        fires = self._correlated(n_samples, rng) if self.correlated else None
        if fires is None or self.levels:
            # A child's draw given its parent is its own uniform: independent of the
            # latents, so that its rate is exact beside a correlation too.
            uniform = rng.random((n_samples, n))
            if fires is None:
                fires = uniform < self.draw
        for children, parents in self.levels:
            if self.exclusive:  # one uniform per parent picks at most one child
                u = uniform[:, children[:, 0]][:, :, None]
                cum = np.cumsum(self.draw[children], axis=1)
                cum /= np.maximum(cum[:, -1:], 1.0)
                low = np.concatenate([np.zeros_like(cum[:, :1]), cum[:, :-1]], axis=1)
                chosen = (u >= low) & (u < cum)
            else:
                chosen = uniform[:, children] < self.draw[children]
            fires[:, children] = chosen & fires[:, parents][:, :, None]
        return fires

    def _correlated(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Which features fire: z_i < Phi^-1(draw_i), z = sqrt(1 - s) e + sqrt(s)
        shared, in float32 and in place (the latents are the largest arrays here)."""
        from scipy.special import ndtri  # where cells run: the command line does not

        s, f32 = self.strength, np.float32
        with np.errstate(divide="ignore"):  # a rate of 0 or 1: threshold -inf, inf
            threshold = ndtri(self.draw).astype(f32)
        own = rng.standard_normal((n_samples, self.n_features), dtype=f32)
        if self.loading is not None:
            factors = rng.standard_normal((n_samples, self.loading.shape[1]), dtype=f32)
            z = factors @ self.loading.T.astype(f32)
            alone = np.zeros(self.n_features, dtype=bool)
        else:
            factors = rng.standard_normal((n_samples, int(self.partner.max()) + 1),
                                          dtype=f32)  # fmt: skip
            alone = self.partner < 0  # an odd feature out: its own latent only
            pairs = factors.shape[1]
            z = np.empty_like(own)
            z[:, 2 * pairs :] = 0.0
            z[:, 0 : 2 * pairs : 2] = factors
            np.multiply(factors, f32(self.sign[1]), out=z[:, 1 : 2 * pairs : 2])
        lone = own[:, alone].copy()
        z *= f32(np.sqrt(s))
        own *= f32(np.sqrt(1 - s))
        z += own
        z[:, alone] = lone
        return z < threshold

    def _values(self, fires: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """X: the value of every firing entry, 0 elsewhere."""
        if self.magnitude == "uniform":
            values = rng.random(fires.shape)
            if self.scale is not None:
                values *= self.scale
            return fires * values
        values = np.zeros(fires.shape)
        rows, cols = np.nonzero(fires)
        if self.magnitude == "constant":
            values[rows, cols] = self.mean[cols]
        else:  # folded_normal
            draws = rng.standard_normal(len(cols))
            values[rows, cols] = np.abs(self.mean[cols] + self.std[cols] * draws)
        return values


def textbook(
    n_features: int, sparsity: float | None = None, k: int | None = None
) -> Features:
    """The textbook distribution: rate ``sparsity`` each, or exactly ``k`` active."""
    if (sparsity is None) == (k is None):
        raise ValueError("give exactly one of sparsity or k")
    rate = k / n_features if k is not None else sparsity
    rates = np.full(n_features, float(rate))
    return Features(n_features, rates, rates, k=k)


def sparse_features(
    n_samples: int,
    n_features: int,
    *,
    rng: np.random.Generator,
    sparsity: float | None = None,
    k: int | None = None,
) -> np.ndarray:
    """X (n_samples, n_features) of the textbook distribution (``textbook``)."""
    return textbook(n_features, sparsity, k).sample(n_samples, rng)


def problems(n_features: int, sparsity: float | None, k: int | None, data: dict
             ) -> list[str]:
    """Why these data keys cannot hold together (one line each), without drawing."""
    try:
        _refuse_zero_values(data)
        if k is not None:
            _refuse_with_k(data, k)
            return []
        if data.get("correlation") == "random" and n_features > MAX_DENSE:
            raise DataError(_too_dense(n_features))
        textbook_rates = not data.get("hierarchy_depth")
        if textbook_rates and data.get("firing", "constant") == "constant":
            return []  # every rate is sparsity
        if n_features > MAX_SHAPED:
            raise DataError(
                f"data.firing={data.get('firing')!r} with n_features={n_features}:"
                f" allowed up to {MAX_SHAPED} features (per-feature rates are arrays)"
            )
        levels = hierarchy(n_features, data)
        exclusive = bool(data.get("exclusive")) and bool(levels)
        _scale(firing_shape(n_features, data), levels, exclusive, sparsity, data)
    except DataError as err:
        return [str(err)]
    return []


def features(
    n_features: int,
    sparsity: float | None,
    k: int | None,
    data: dict,
    rng: np.random.Generator,
) -> Features:
    """The distribution of a cell's data keys (``data``: ``firing`` ..., without the
    ``data.`` prefix); ``rng`` draws its random structure (correlation loadings)."""
    if k is not None:
        _refuse_with_k(data, k)
        return _with_magnitudes(textbook(n_features, k=k), data)
    shape = firing_shape(n_features, data)
    levels = hierarchy(n_features, data)
    exclusive = bool(data.get("exclusive")) and bool(levels)
    scale = _scale(shape, levels, exclusive, sparsity, data)
    draw, rates = rates_of(scale * shape, levels, exclusive)
    if data.get("firing", "constant") == "constant" and not levels:
        draw = rates = np.full(n_features, float(sparsity))  # exactly the textbook's
    dist = Features(n_features, rates, draw, levels=levels, exclusive=exclusive)
    return _with_magnitudes(_with_correlation(dist, data, rng), data)


def firing_shape(n: int, data: dict) -> np.ndarray:
    """Each feature's firing rate relative to the most frequent one (feature 0)."""
    firing = data.get("firing", "constant")
    if firing == "constant" or n == 1:
        return np.ones(n)
    if firing == "zipf":
        power = np.arange(1, n + 1, dtype=float) ** -data["zipf_exponent"]
        t = (power - power[-1]) / (power[0] - power[-1])
    else:  # linear
        t = np.linspace(1.0, 0.0, n)
    low = 1.0 / data["firing_ratio"]
    return low + (1.0 - low) * t


def hierarchy(n: int, data: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """The trees' levels top down, each as (children (n_parents, branching),
    parents (n_parents,)) feature indices: roots are features 0..T-1, then the
    children of root 0, of root 1, ..., then the next level; the rest are free."""
    depth = data.get("hierarchy_depth", 0)
    if not depth:
        return []
    b = data["hierarchy_branching"]
    size = sum(b**level for level in range(depth + 1))
    trees = data.get("hierarchy_trees") or n // size
    if trees * size > n or trees == 0:
        need = max(trees, 1)
        raise DataError(
            f"data.hierarchy_depth={depth} with data.hierarchy_branching={b}: a tree"
            f" has {size} features, {need} tree(s) need {need * size} > n_features={n}"
            " (lower the depth, the branching or data.hierarchy_trees)"
        )
    levels, parents, start = [], np.arange(trees), trees
    for _ in range(depth):
        children = start + np.arange(len(parents) * b).reshape(len(parents), b)
        levels.append((children, parents))
        parents, start = children.ravel(), start + children.size
    return levels


def rates_of(
    target: np.ndarray, levels: list, exclusive: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's draw probability and its exact marginal firing rate, for
    target rates: a child's draw is its target over its parent's rate (capped at
    1: it then fires whenever its parent does); ``exclusive`` siblings whose
    draws add up to more than 1 share the parent's firings in proportion."""
    draw = np.minimum(1.0, target)
    rates = draw.copy()
    for children, parents in levels:
        above = rates[parents][:, None]
        want = np.divide(target[children], above, out=np.zeros(children.shape),
                         where=above > 0)  # fmt: skip
        if exclusive:  # at most one child, picked by one uniform per parent
            draw[children] = want
            own = want / np.maximum(want.sum(axis=1, keepdims=True), 1.0)
        else:
            draw[children] = own = np.minimum(1.0, want)
        rates[children] = own * above
    return draw, rates


def _scale(shape, levels, exclusive, sparsity, data) -> float:
    """The one factor on every target rate (``shape``, most frequent 1) that makes
    the mean marginal rate ``sparsity``; at most 1, where the most frequent feature
    fires in every sample."""

    def mean_rate(c: float) -> float:
        return float(rates_of(c * shape, levels, exclusive)[1].mean())

    most = mean_rate(1.0)
    if most < sparsity * (1 - 1e-12):
        raise DataError(_unreachable(sparsity, most, data))
    if not levels:
        return sparsity / shape.mean()
    low, high = 0.0, 1.0
    for _ in range(60):  # bisection: the mean rate grows with the factor
        mid = (low + high) / 2
        low, high = (mid, high) if mean_rate(mid) < sparsity else (low, mid)
    return high


def _unreachable(sparsity: float, most: float, data: dict) -> str:
    keys = [f"data.{k}={data[k]!r}" for k in ("firing", "hierarchy_depth", "exclusive")
            if data.get(k) not in (None, "constant", 0, False)]  # fmt: skip
    return (
        f"sparsity={sparsity!r} with {', '.join(keys)}: allowed is sparsity <="
        f" {most:.4g}, the mean rate when the most frequent feature fires in every"
        " sample" + (" (or lower data.firing_ratio)" if data.get("firing", "constant")
                     != "constant" else "")
    )


def _refuse_zero_values(data: dict) -> None:
    kind, mean = _key(data, "magnitude"), _key(data, "magnitude_mean")
    zero = kind == "constant" or _key(data, "magnitude_std") == 0
    if mean == 0 and zero and kind != "uniform":
        raise DataError(
            f"data.magnitude_mean=0 with data.magnitude={kind!r}: every active"
            " feature would be 0; allowed is a magnitude_mean > 0 (or a"
            " magnitude_std > 0 for folded_normal)"
        )


def _refuse_with_k(data: dict, k: int) -> None:
    changed = {
        key: value for key, value in data.items()
        if (key, value) in {("firing", "zipf"), ("firing", "linear")}
        or (key == "correlation" and value != "none")
        or (key == "hierarchy_depth" and value)
    }  # fmt: skip
    if changed:
        key, value = next(iter(changed.items()))
        raise DataError(
            f"data.{key}={value!r} with k={k}: allowed only with sparsity (per-feature"
            " rates, correlations and hierarchies have sparsity as their mean rate;"
            " set k=null)"
        )


def _with_correlation(dist: Features, data: dict, rng) -> Features:
    kind = _key(data, "correlation")
    strength = float(_key(data, "correlation_strength"))
    if kind == "none" or strength == 0:
        return dist
    n = dist.n_features
    if kind in ("pairs", "anti_pairs"):
        if n < 2:  # no pair to make
            return dist
        partner = np.full(n, -1)
        partner[: n - n % 2] = np.arange(n - n % 2) // 2
        sign = np.ones(n)
        if kind == "anti_pairs":
            sign[1 : n - n % 2 : 2] = -1.0
        return replace(dist, strength=strength, partner=partner, sign=sign)
    rank = n if kind == "random" else min(data["correlation_rank"], n)
    if kind == "random" and n > MAX_DENSE:
        raise DataError(_too_dense(n))
    loading = rng.standard_normal((n, rank))
    loading /= np.linalg.norm(loading, axis=1, keepdims=True)
    return replace(dist, strength=strength, loading=loading)


def _key(data: dict, key: str):
    """A data key's value, its default when ``data`` leaves it out."""
    return data.get(key, DEFAULTS[key])


def _too_dense(n: int) -> str:
    return (
        f"data.correlation='random' with n_features={n}: allowed up to {MAX_DENSE}"
        " features (it keeps an n x n loading); use data.correlation=low_rank"
    )


def _with_magnitudes(dist: Features, data: dict) -> Features:
    kind, spread = _key(data, "magnitude"), float(_key(data, "magnitude_spread"))
    factor = np.linspace(1.0, spread, dist.n_features)
    if kind == "uniform":
        return dist if spread == 1.0 else replace(dist, scale=factor)
    mean = _key(data, "magnitude_mean") * factor
    std = _key(data, "magnitude_std") * factor
    return replace(dist, magnitude=kind, mean=mean, std=std)


def add_noise(H: np.ndarray, *, noise: float, rng: np.random.Generator) -> np.ndarray:
    """H (n_samples, n_neurons) plus Gaussian noise of std ``noise`` x RMS(H)."""
    if noise == 0:
        return H
    rms = np.sqrt(np.mean(H**2))
    return H + noise * rms * rng.standard_normal(H.shape)
