"""The trial pipeline of a cell, pure: model -> data -> recover -> score.

No files, no Hydra, no logging: functions of a cell's normalised flat configuration
(``config.normalise(config.flatten(cfg))``) and arrays. ``sweep.job`` wraps it with
the cell's I/O (the model cache, time limits, files, provenance); ``run_cell`` runs
one cell from Python and returns its metrics.
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep import schema
from sweep.align import cosines, field_metrics, reconstruct, recovered
from sweep.config import data_keys, identity, network
from sweep.data import Features, add_noise, features
from sweep.digits import Network
from sweep.methods import Inputs, Recovery, given, recover_trials
from sweep.metrics import (
    best_features,
    code_metrics,
    coherence,
    feature_metrics,
    label_metrics,
    latent_metrics,
    recovery_metrics,
    top_rows,
    unit_summary,
    units,
)
from sweep.models import MODELS, Model, ModelSpec, known_dictionary
from sweep.thresholds import ACTIVE, UNREPRESENTED

N_SHOWN = 16  # test samples of trial 0 kept in samples.parquet, for heatmaps
TOP_EXAMPLES = 8  # a network's samples per unit in examples.parquet (most active)
DATA_KEYS = ("n_features", "sparsity", "k")
MODEL_KEYS = ("n_features", "neurons")
NETWORK_KEYS = ("neurons", "n_samples")


def run_cell(*overrides: str, **keys) -> pd.DataFrame:
    """One cell from Python, nothing written: its metrics, one row per trial, as
    metrics.parquet holds them. ``run_cell("method=lasso", "method.alpha=0.01",
    neurons=20, sparsity=0.05)``; keys as on the command line (checked the same way).
    """
    from sweep.grid import expand_cells  # Hydra: only when a cell is asked for here

    lines = [*overrides, *(f"{k}={_text(v)}" for k, v in keys.items())]
    (cell,) = expand_cells(lines, multirun=False)
    models = build_models(cell.flat)
    metrics, _ = run_trials(cell.flat, models)
    return rows(metrics, cell.flat, {"sweep": "", "cell": cell.name}, status=None)


def _text(value) -> str:
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)


def build_models(flat: dict, trials: list[int] | None = None) -> list[Model]:
    """The models of the given trials (default: all), each from its own stream."""
    trials = range(flat["trials"]) if trials is None else trials
    keys = model_keys(flat)
    spec = ModelSpec(
        flat["n_features"], flat["neurons"],
        rngs=[stream(flat, t, "model", keys) for t in trials],
        features=[distribution(flat, t) for t in trials] if not network(flat) else [],
        n_test=flat["n_samples"],
    )  # fmt: skip
    return MODELS[flat["model"]](spec, **params(flat, "model"))


def trained(flat: dict) -> bool:
    """Whether the cell's model is trained on its data (cached by the job)."""
    return MODELS.traits[flat["model"]].trained


def cached(flat: dict) -> bool:
    """Whether the cell's models are worth keeping for the sweep's other cells: trained
    ones, costly ones (a network), and directions pushed apart
    (``model.geometry=orthogonal``)."""
    traits = MODELS.traits[flat["model"]]
    return traits.trained or traits.costly or flat.get("model.geometry") == "orthogonal"


def run_trials(
    flat: dict, models: list[Model], fit_seconds: float = 0.0
) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """All trials of a cell on its models: per-trial metric dicts, and the tables to
    write. ``fit_seconds``: the time the models took (their share per trial)."""
    if network(flat):
        return run_network(flat, models, fit_seconds)
    dists = [distribution(flat, trial) for trial in range(len(models))]
    data = [draw(flat, t, model, dists[t]) for t, model in enumerate(models)]
    t1 = time.perf_counter()
    tol = flat.get("represented_tol", UNREPRESENTED)  # a config older than the key
    known = [known_dictionary(m.W, tol) for m in models]
    inputs = [
        given(flat["method"], d.H, model=m, known=w, H_train=d.H_train,
              rng=stream(flat, t, "method", flat), draw_train=d.fresh)
        for t, (m, d, w) in enumerate(zip(models, data, known, strict=True))
    ]  # fmt: skip
    recoveries = recover_trials(flat["method"], inputs, **params(flat, "method"))
    recover_seconds = (time.perf_counter() - t1) / len(models)  # may run together
    metrics, features, curves = [], [], []
    for trial, (model, d, recovery) in enumerate(
        zip(models, data, recoveries, strict=True)
    ):
        result = score(flat, model, d, recovery, known[trial], dists[trial])
        learned = result.row.pop("fit_seconds", 0.0)  # a learned method's own fit
        metrics.append(result.row | {
            "fit_seconds": fit_seconds + learned,
            "recover_seconds": recover_seconds - learned,
        })  # fmt: skip
        features.append(result.features.assign(trial=trial))
        if result.training is not None:
            curves.append(result.training.assign(trial=trial))
        if trial == 0:  # kept for figures: a few samples, the atoms' cosines
            X, X_hat = result.X[:N_SHOWN], result.X_hat[:N_SHOWN]
            tables = {schema.SAMPLES_FILE: _long_form(X, X_hat, trial)}
            if result.cosines is not None:
                tables[schema.COSINES_FILE] = _cosines(result.cosines, trial)
    tables[schema.FEATURES_FILE] = pd.concat(features, ignore_index=True)
    if curves:
        training = pd.concat(curves, ignore_index=True)
        tables[schema.TRAINING_FILE] = training[list(schema.TRAINING_COLUMNS)]
    if trained(flat):  # the paper's figures need the trained W itself
        tables[schema.WEIGHTS_FILE] = _weights(models)
    return metrics, tables


def run_network(
    flat: dict, networks: list[Network], fit_seconds: float = 0.0
) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """``run_trials`` for a real network's activations (no ground truth): a learned
    method trains on the network's training rows, and is scored on its held-out rows
    by ``code_metrics`` and, against the neurons, ``label_metrics``; the network's
    accuracy beside them."""
    inputs = [
        Inputs(net.H, flat["n_features"], stream(flat, t, "method", flat),
               H_train=net.H_train)
        for t, net in enumerate(networks)
    ]  # fmt: skip
    start = time.perf_counter()
    recoveries = recover_trials(flat["method"], inputs, **params(flat, "method"))
    recover_seconds = (time.perf_counter() - start) / len(networks)
    metrics, curves, unit_rows = [], [], []
    for trial, (net, found) in enumerate(zip(networks, recoveries, strict=True)):
        H_hat = reconstruct(found.codes, found.atoms, found.offset)
        row = found.info | {"accuracy": net.accuracy,
                            "network_converged": float(net.converged)}  # fmt: skip
        row |= code_metrics(found.codes, H=net.H, H_hat=H_hat)
        kinds = dict(zip(schema.UNIT_KINDS, (found.codes, net.H), strict=True))
        latents, neurons = (units(codes, net.labels) for codes in kinds.values())
        # the neurons' l0: their mean number firing per sample
        row["neuron_l0"] = float(neurons["fire_rate"].sum())
        row["train_rows"] = len(net.H_train)
        if net.labels is not None:  # unlabelled: no selectivity
            row |= unit_summary(latents, neurons)
        unit_rows += [table.assign(trial=trial, kind=kind) for kind, table in
                      zip(kinds, (latents, neurons), strict=True)]  # fmt: skip
        if trial == 0:
            tables = {schema.EXAMPLES_FILE: _examples(kinds, net)}
        learned = row.pop("fit_seconds", 0.0)
        seconds = {"fit_seconds": fit_seconds + learned,
                   "recover_seconds": recover_seconds - learned}  # fmt: skip
        metrics.append(row | seconds)
        if found.curves:
            curves.append(_curves(found.curves, None).assign(trial=trial))
    tables[schema.UNITS_FILE] = pd.concat(unit_rows, ignore_index=True)[
        list(schema.UNITS_COLUMNS)]  # fmt: skip
    if curves:
        training = pd.concat(curves, ignore_index=True)
        tables[schema.TRAINING_FILE] = training[list(schema.TRAINING_COLUMNS)]
    return metrics, tables


def _examples(kinds: dict[str, np.ndarray], net: Network) -> pd.DataFrame:
    """examples.parquet: per kind of unit and unit, its TOP_EXAMPLES test samples of
    largest |activation| (firing ones only), each with its row in the network's
    inputs (the user's file; scikit-learn's digits), its label, its other columns
    as "name=value; ..." and its image (flattened row by row), where the network
    has them."""
    frames, held_out = [], []
    for kind, codes in kinds.items():
        rows, values = top_rows(codes, TOP_EXAMPLES)
        rank, unit = np.indices(rows.shape)
        firing = rows >= 0
        held_out.append(rows[firing])
        frames.append(pd.DataFrame({
            "trial": 0, "kind": kind, "unit": unit[firing], "rank": rank[firing],
            "row": net.rows[rows[firing]], "activation": values[firing],
        }))  # fmt: skip
    frame = pd.concat(frames, ignore_index=True)
    row = np.concatenate(held_out)  # positions among the held-out rows
    frame["label"] = (None if net.labels is None else
                      pd.Series(net.labels[row]).astype(str).to_numpy())  # fmt: skip
    frame["text"] = ["; ".join(f"{name}={values[r]}" for name, values in
                               net.meta.items()) for r in row]  # fmt: skip
    frame["image"] = None if net.images is None else list(
        net.images.reshape(len(net.images), -1)[row].astype(float))
    return frame[list(schema.EXAMPLES_COLUMNS)]


def model_keys(flat: dict) -> dict:
    """The keys a trial's model depends on (trained ones: on the data too; a real
    network: on its rows held out, not on a dictionary's size)."""
    sizes = NETWORK_KEYS if network(flat) else MODEL_KEYS
    keys = _group(identity(flat), "model") | {key: flat[key] for key in sizes}
    if trained(flat):
        keys |= _data_keys(flat)
    return keys


def _data_keys(flat: dict, *, values: bool = True) -> dict:
    """The keys a trial's data depends on (data keys at their defaults left out, so
    the textbook case draws what it drew before they existed). ``values=False``:
    without the magnitude keys, which keys the draws' streams: cells that differ only
    in magnitudes draw the same features firing (common random numbers), since
    which features fire is drawn before their values."""
    keys = {key: flat[key] for key in DATA_KEYS} | _group(identity(flat), "data")
    if values:
        return keys
    return {k: v for k, v in keys.items() if not k.startswith("data.magnitude")}


def distribution(flat: dict, trial: int) -> Features:
    """A trial's feature distribution; its random structure from a stream of its own."""
    rng = stream(flat, trial, "structure", _data_keys(flat, values=False))
    return features(flat["n_features"], flat["sparsity"], flat["k"], data_keys(flat),
                    rng)  # fmt: skip


def _weights(models: list[Model]) -> pd.DataFrame:
    """W of every trial in long form: trial, neuron, feature, value."""
    frames = []
    for trial, model in enumerate(models):
        neuron, feature = np.indices(model.W.shape)
        frames.append(pd.DataFrame({
            "trial": trial, "neuron": neuron.ravel(), "feature": feature.ravel(),
            "value": model.W.ravel(),
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


@dataclass
class TrialResult:
    """One trial's metrics, per-feature table, X and X_hat (n_samples, n_features),
    and for a learned dictionary the cosines of its atoms with the true features."""

    row: dict
    features: pd.DataFrame
    X: np.ndarray
    X_hat: np.ndarray
    cosines: np.ndarray | None = None  # (n_atoms, n_features)
    training: pd.DataFrame | None = None  # the curves, as training.parquet's rows


@dataclass
class Data:
    """One trial's test X (n_samples, n_features), its H, the training H, and
    ``fresh``: n -> the next n fresh training rows of H (a stream of their own)."""

    X: np.ndarray
    H: np.ndarray
    H_train: np.ndarray
    fresh: Callable[[int], np.ndarray]


def draw(flat: dict, trial: int, model: Model, dist: Features) -> Data:
    """One trial's data, compressed by the trial's model (streams of their own)."""
    data = _data_keys(flat, values=False)
    X = dist.sample(flat["n_samples"], stream(flat, trial, "test", data))
    noise_keys = model_keys(flat) | data | {"noise": flat["noise"]}
    H = add_noise(
        X @ model.W.T, noise=flat["noise"], rng=stream(flat, trial, "noise", noise_keys)
    )
    H_train = _training_data(flat, trial, model.W, dist, data, noise_keys)
    return Data(X, H, H_train, _fresh(flat, trial, model.W, dist, data, noise_keys))


def score(
    flat: dict, model: Model, data: Data, recovery: Recovery, known: np.ndarray,
    dist: Features,
) -> TrialResult:
    """One trial's metrics; a learned dictionary is aligned to the known W first."""
    X, H = data.X, data.H
    X_hat, found = recovered(recovery, known, H=H)
    info = recovery.info | (found.info if found is not None else {})
    row = recovery_metrics(
        X, X_hat, H=H, W=model.W, importance=model.importance,
        success_tol=flat["success_tol"],
    )  # fmt: skip
    row |= model.info | info | {"coherence": coherence(model.W)}
    if found is None:  # latent i is feature i
        latents = X_hat, np.arange(X.shape[1]), X_hat @ model.W.T
    else:
        latents = recovery.codes, best_features(np.abs(found.cosines)), found.H_hat
    codes, feature_of, H_hat = latents
    row |= latent_metrics(codes, X, feature_of, H=H, H_hat=H_hat)  # l0: of the codes
    if found is not None:  # the metrics without ground truth, as a network's
        row |= label_metrics(*labelled(codes, H, X))
    feats = feature_metrics(X, X_hat, W=model.W, b=model.b, importance=model.importance)
    feats["firing_rate"] = dist.rates
    if found is None:
        return TrialResult(row, feats, X, X_hat)
    feats["matched_cos"], feats["matched_atom"] = found.matched_cos, found.atom_of
    training = _curves(recovery.curves, known) if recovery.curves else None
    return TrialResult(row, feats, X, X_hat, found.cosines, training)


def labelled(codes: np.ndarray, H: np.ndarray, X: np.ndarray) -> tuple:
    """A toy model's samples as a labelled network's (``label_metrics``' codes, H
    and labels): each sample labelled by its most active true feature; samples with
    no active feature left out."""
    active = np.abs(X).max(axis=1, initial=0.0) > ACTIVE
    return codes[active], H[active], np.argmax(np.abs(X[active]), axis=1)


def _curves(curves: list[dict], known: np.ndarray | None) -> pd.DataFrame:
    """The training curves as rows, each with the mcc_matched of its atoms then
    against the ``known`` features (NaN without them)."""
    return pd.DataFrame([
        {k: v for k, v in logged.items() if k != "atoms"} | {
            "mcc_matched": float("nan") if known is None else field_metrics(
                np.abs(cosines(logged["atoms"], known)))["mcc_matched"]
        }
        for logged in curves
    ])  # fmt: skip


def _cosines(C: np.ndarray, trial: int) -> pd.DataFrame:
    """The cosine matrix (n_atoms, n_features) in long form: atom, feature, cos."""
    atom, feature = np.indices(C.shape)
    return pd.DataFrame(
        {"atom": atom.ravel(), "feature": feature.ravel(), "cos": C.ravel(),
         "trial": trial}
    )  # fmt: skip


def _training_data(flat, trial, W, dist, data, noise_keys) -> np.ndarray:
    """H_train (n_train, n_neurons), drawn from streams of its own."""
    rng = stream(flat, trial, "train", data | {"n_train": flat["n_train"]})
    X_train = dist.sample(flat["n_train"], rng)
    rng_noise = stream(flat, trial, "train_noise", noise_keys)
    return add_noise(X_train @ W.T, noise=flat["noise"], rng=rng_noise)


def _fresh(flat, trial, W, dist, data, noise_keys) -> Callable[[int], np.ndarray]:
    """n -> the next n fresh training rows of H (n, n_neurons): streams of their
    own, drawn on as far as a method asks."""
    rng = stream(flat, trial, "fresh", data)
    rng_noise = stream(flat, trial, "fresh_noise", noise_keys)

    def next_rows(n: int) -> np.ndarray:
        return add_noise(dist.sample(n, rng) @ W.T, noise=flat["noise"], rng=rng_noise)

    return next_rows


def stream(flat: dict, trial: int, name: str, keys: dict) -> np.random.Generator:
    """An independent random stream keyed on (seed, trial, name, keys).

    A stable hash (never Python's salted ``hash``) of exactly the keys a draw depends
    on: every method at the same data and model keys sees identical X and W.
    """
    text = json.dumps([name, keys], sort_keys=True, default=str)
    words = np.frombuffer(hashlib.sha256(text.encode()).digest()[:16], dtype=np.uint32)
    seq = np.random.SeedSequence([flat["seed"], trial, *words.tolist()])
    return np.random.default_rng(seq)


def _group(flat: dict, group: str) -> dict:
    return {k: v for k, v in flat.items() if k == group or k.startswith(group + ".")}


def params(flat: dict, group: str) -> dict:
    prefix = group + "."
    return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}


def _long_form(X: np.ndarray, X_hat: np.ndarray, trial: int) -> pd.DataFrame:
    sample, feature = np.indices(X.shape)
    return pd.DataFrame(
        {
            "trial": trial,
            "sample": sample.ravel(),
            "feature": feature.ravel(),
            "true": X.ravel(),
            "recovered": X_hat.ravel(),
        }
    )


def rows(
    metrics: list[dict], flat: dict, identity: dict, status: dict | None
) -> pd.DataFrame:
    """One row per trial: identity, every config key, derived S, the metrics
    (``status`` None: ok)."""
    status = status or {"status": "ok", "error": None}
    p = flat["sparsity"] if flat.get("sparsity") is not None else None
    if p is None and flat.get("k") and flat.get("n_features"):
        p = flat["k"] / flat["n_features"]
    base = {
        "schema_version": schema.SCHEMA_VERSION,
        **identity,
        "status": status["status"],
        "error": status["error"],
        **flat,
        "S": None if p is None else 1 - p,
    }
    frame = pd.DataFrame([base | {"trial": t} | row for t, row in enumerate(metrics)])
    for column in (*schema.METRIC_COLUMNS, *schema.NETWORK_COLUMNS):
        if column not in frame:
            frame[column] = np.nan
    return frame
