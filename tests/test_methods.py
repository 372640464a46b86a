import inspect

import numpy as np
import pytest
import yaml
from conftest import run_method
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sweep import CONF_DIR
from sweep.align import recovered
from sweep.data import sparse_features
from sweep.methods import DECODER, DICTIONARY, METHODS, MethodTraits
from sweep.metrics import recovery_metrics
from sweep.models import random_model
from sweep.registry import Registry


def recover(name, X, W, rng, **params):
    H = X @ W.T
    return recovered(run_method(name, H, W, rng, **params), W, H=H)[0]


def success(name, *, n, m, rng, n_samples=300, **data):
    X = sparse_features(n_samples, n, rng=rng, **data)
    W = random_model(n, m, rng=rng).W
    X_hat = recover(name, X, W, rng)
    ones = np.ones(n)
    return recovery_metrics(X, X_hat, H=X @ W.T, W=W, importance=ones, success_tol=0.01)


# --- the registry and its configs ------------------------------------------------


VARIANTS = {"basis_pursuit_positive": ("basis_pursuit", {"positive": True})}


def test_registry_matches_config_files():
    files = {p.stem for p in (CONF_DIR / "method").glob("*.yaml")}
    assert files == set(METHODS) | set(VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_is_its_method_with_other_defaults(variant):
    """A variant file composes to a registered method with some defaults changed."""
    name, changed = VARIANTS[variant]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"method={variant}"])
        base = compose("config", overrides=[f"method={name}"])
    assert cfg.method.name == name
    assert OmegaConf.to_container(cfg.method) == {**base.method, **changed}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_yaml_states_every_default(name):
    conf = yaml.safe_load((CONF_DIR / "method" / f"{name}.yaml").read_text())
    assert conf.pop("name") == name
    assert conf == Registry.params(METHODS[name])
    assert set(conf) == set(METHODS.checks[name])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_traits_declared_and_one_input(name):
    traits = METHODS.traits[name]
    assert isinstance(traits, MethodTraits)
    assert traits.uses in ("dictionary", "decoder", "activations")
    params = inspect.signature(METHODS[name]).parameters.values()
    positional = [p for p in params if p.kind is not p.KEYWORD_ONLY]
    assert len(positional) == 1  # Inputs (or a list of them, with together)


def test_registry_refuses_duplicates():
    reg = Registry("thing")
    reg.register("a", None)(lambda x: None)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", None)(lambda x: None)
    with pytest.raises(ValueError, match="checks != params"):
        reg.register("b", None)(lambda x, *, alpha=1.0: None)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_shape_on_random_input(name, rng):
    H = rng.standard_normal((7, 5))
    W = rng.standard_normal((5, 12))
    X_hat = recovered(run_method(name, H, W, rng), W, H=H)[0]
    assert X_hat.shape == (7, 12)
    assert np.all(np.isfinite(X_hat))


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"readout"}))
def test_unrepresented_feature_is_zero(name, rng):
    X = sparse_features(20, 10, rng=rng, sparsity=0.3)
    W = random_model(10, 6, rng=rng).W
    W[:, 3] = 0.0
    W[:, 7] *= 1e-5  # below 1e-3 of the longest column
    X_hat = recover(name, X, W, rng)
    assert np.all(X_hat[:, [3, 7]] == 0)


@pytest.mark.parametrize("name", ["lasso", "lasso_lars", "basis_pursuit", "threshold"])
def test_positive_codes(name, rng):
    H = rng.standard_normal((15, 6))
    W = random_model(12, 6, rng=rng).W
    X_hat = run_method(name, H, W, rng, positive=True).X_hat
    assert X_hat.min() >= 0 and X_hat.max() > 0


# --- one alpha convention: 1/2 ||h - W x||^2 + alpha ||x||_1 per sample -----------


def test_lasso_and_lasso_lars_solve_the_same_problem(rng):
    X = sparse_features(40, 30, rng=rng, sparsity=0.1)
    W = random_model(30, 15, rng=rng).W * 1.7  # non-unit columns
    a = recover("lasso", X, W, rng, alpha=0.05, tol=1e-10, max_iter=100_000)
    b = recover("lasso_lars", X, W, rng, alpha=0.05)
    assert np.allclose(a, b, atol=1e-5)


def test_lasso_optimality_conditions(rng):
    # KKT of 1/2||h - Wx||^2 + alpha||x||_1: |W^T r| <= alpha, = alpha on the support
    X = sparse_features(10, 20, rng=rng, sparsity=0.2)
    W = random_model(20, 12, rng=rng).W
    alpha = 0.03
    X_hat = recover("lasso_lars", X, W, rng, alpha=alpha)
    corr = (X @ W.T - X_hat @ W.T) @ W
    assert np.all(np.abs(corr) <= alpha + 1e-8)
    on = X_hat != 0
    assert np.allclose(corr[on], alpha * np.sign(X_hat[on]), atol=1e-8)


def test_threshold_on_orthonormal_w_is_soft_thresholding(rng):
    W = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    X = rng.standard_normal((5, 8))
    X_hat = recover("threshold", X, W, rng, alpha=0.3)
    assert np.allclose(X_hat, np.sign(X) * np.maximum(np.abs(X) - 0.3, 0))


def test_threshold_is_the_l1_solution_on_orthogonal_columns_of_any_length(rng):
    # with orthogonal columns the L1 problem separates: thresholding solves it exactly
    W = np.linalg.qr(rng.standard_normal((8, 8)))[0] * np.arange(1, 9)
    X = rng.standard_normal((6, 8))
    a = recover("threshold", X, W, rng, alpha=0.4)
    b = recover("lasso_lars", X, W, rng, alpha=0.4)
    assert np.allclose(a, b, atol=1e-10)
    assert np.count_nonzero(a) < a.size  # alpha really did zero some out


def test_omp_n_nonzero_coefs(rng):
    X = sparse_features(30, 40, rng=rng, k=5)
    W = random_model(40, 20, rng=rng).W
    X_hat = recover("omp", X, W, rng, n_nonzero_coefs=2)
    assert np.all(np.sum(X_hat != 0, axis=1) == 2)


def test_omp_tolerance_is_relative_per_sample(rng):
    # the same samples at very different scales stop at the same atoms
    X = sparse_features(40, 60, rng=rng, sparsity=0.1)
    W = random_model(60, 25, rng=rng).W
    scales = np.geomspace(1e-4, 1e4, 40)[:, None]
    small = recover("omp", X, W, rng, tol=1e-3)
    scaled = recover("omp", X * scales, W, rng, tol=1e-3)
    assert np.allclose(scaled, small * scales, rtol=1e-8, atol=0)


@pytest.mark.parametrize("name", ["lasso", "basis_pursuit"])
def test_solvers_report_convergence(name, rng):
    X = sparse_features(30, 100, rng=rng, sparsity=0.05)
    W = random_model(100, 50, rng=rng).W
    H = X @ W.T
    done = run_method(name, H, W, rng, max_iter=10_000).info["converged"]
    cut = run_method(name, H, W, rng, max_iter=2).info["converged"]
    assert done == 1.0 and cut < 0.5


# --- the science ---------------------------------------------------------------


def test_lstsq_exact_when_not_compressed(rng):
    for m in (50, 60):
        m_ = success("lstsq", n=50, m=m, rng=rng, sparsity=0.3)
        assert m_["mse"] < 1e-20


def test_basis_pursuit_exact(rng):
    m_ = success("basis_pursuit", n=100, m=50, rng=rng, k=3)
    assert m_["mse"] < 1e-20
    assert m_["success_rate"] == 1.0


def test_omp_recovers_k4_at_40_neurons_and_fails_at_8(rng):
    assert success("omp", n=100, m=40, rng=rng, k=4)["success_rate"] >= 0.98
    assert success("omp", n=100, m=8, rng=rng, k=4)["success_rate"] <= 0.1


# The easy case: an orthonormal W as wide as the features (no compression) and 2
# active features; penalties made negligible (their shrinkage would otherwise move
# x_hat by alpha, beyond success_tol for small x).
EASY_PARAMS = {"lasso": {"alpha": 1e-7}, "lasso_lars": {"alpha": 1e-7},
               "threshold": {"alpha": 1e-7}}  # fmt: skip
GIVEN_W = METHODS.having(uses=DICTIONARY) + METHODS.having(uses=DECODER)


@pytest.mark.parametrize("case", ["easy", "impossible"])
@pytest.mark.parametrize("name", GIVEN_W)  # learned methods: tests/test_learned.py
def test_every_method_succeeds_when_easy_and_fails_when_impossible(name, case, rng):
    if case == "impossible":  # 50 active features in 5 neurons
        m_ = success(name, n=100, m=5, rng=rng, sparsity=0.5, n_samples=100)
        assert m_["success_rate"] < 0.05
        return
    W = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    X = sparse_features(100, 20, rng=rng, k=2)
    X_hat = recover(name, X, W, rng, **EASY_PARAMS.get(name, {}))
    scores = recovery_metrics(X, X_hat, H=X @ W.T, W=W, importance=np.ones(20),
                              success_tol=0.01)  # fmt: skip
    assert scores["success_rate"] == 1.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nonnegativity_helps_past_the_signed_limit(seed):
    # n=100, m=30, k=10 sits near the signed L1 transition (k/m = 0.33) but well
    # inside the nonnegative one: measured ~0.4-0.5 signed against ~0.9 positive
    rates = []
    for positive in (False, True):
        rng = np.random.default_rng(seed)
        X = sparse_features(100, 100, rng=rng, k=10)
        W = random_model(100, 30, rng=rng).W
        X_hat = recover("basis_pursuit", X, W, rng, positive=positive)
        ok = np.linalg.norm(X_hat - X, axis=1) <= 0.01 * np.linalg.norm(X, axis=1)
        rates.append(ok.mean())
    assert rates[0] < 0.65 and rates[1] > 0.8
