import json

import numpy as np
import pandas as pd
import pytest

from sweep import job, pipeline, schema
from sweep.data import DEFAULTS
from sweep.methods import METHODS, Recovery

TIMINGS = ["fit_seconds", "recover_seconds"]


def cell(**changes):
    base = {
        "seed": 0,
        "n_features": 30,
        "neurons": 12,
        "sparsity": 0.1,
        "k": None,
        "trials": 3,
        "n_samples": 50,
        "n_train": 20,
        "noise": 0.0,
        "success_tol": 0.01,
        "represented_tol": 1e-3,
        "data": dict(DEFAULTS),
        "model": {"name": "random", "geometry": "gaussian", "target_cos": 0.0},
        "method": {"name": "omp", "tol": 1e-6, "n_nonzero_coefs": None},
    }
    return base | changes


def read(folder, name=schema.METRICS_FILE):
    return pd.read_parquet(folder / name)


def test_writes_every_file_and_column(tmp_path):
    status = job.run(cell(), tmp_path, sweep="s", cell="c")
    assert status["status"] == "ok"
    for name in (schema.METRICS_FILE, schema.FEATURES_FILE, schema.SAMPLES_FILE):
        assert (tmp_path / name).exists()
    metrics = read(tmp_path)
    assert len(metrics) == 3 and metrics["trial"].tolist() == [0, 1, 2]
    expected = {*schema.IDENTITY_COLUMNS, *schema.CONFIG_KEYS, *schema.METRIC_COLUMNS}
    assert expected | {"S", "model", "method", "method.tol"} <= set(metrics)
    assert (metrics["status"] == "ok").all() and metrics["cell"].eq("c").all()
    assert metrics["S"].iloc[0] == pytest.approx(0.9)
    assert metrics[list(schema.METRIC_COLUMNS)].notna().all().all()
    features = read(tmp_path, schema.FEATURES_FILE)
    assert len(features) == 3 * 30
    assert set(schema.FEATURE_COLUMNS) <= set(features)
    samples = read(tmp_path, schema.SAMPLES_FILE)
    assert list(samples) == list(schema.SAMPLE_COLUMNS)
    assert len(samples) == pipeline.N_SHOWN * 30
    stored = json.loads((tmp_path / schema.STATUS_FILE).read_text())
    assert stored["schema_version"] == schema.SCHEMA_VERSION
    assert stored["config"]["method"] == "omp" and "numpy" in stored["versions"]
    assert not list(tmp_path.glob("*.tmp"))


def test_k_sparse_cell_has_derived_s(tmp_path):
    job.run(cell(sparsity=None, k=3), tmp_path)
    metrics = read(tmp_path)
    assert metrics["S"].iloc[0] == pytest.approx(1 - 3 / 30)
    samples = read(tmp_path, schema.SAMPLES_FILE)
    per_sample = samples[samples["true"] != 0].groupby("sample").size()
    assert (per_sample == 3).all()


def test_paired_design_same_x_and_w_for_every_method(tmp_path):
    lstsq = {"name": "lstsq"}
    job.run(cell(), tmp_path / "omp")
    job.run(cell(method=lstsq), tmp_path / "lstsq")
    job.run(cell(method=lstsq, neurons=20), tmp_path / "more_neurons")
    true = [
        read(tmp_path / d, schema.SAMPLES_FILE)["true"]
        for d in ("omp", "lstsq", "more_neurons")
    ]
    assert true[0].equals(true[1]) and true[0].equals(true[2])
    norms = [read(tmp_path / d, schema.FEATURES_FILE) for d in ("omp", "lstsq")]
    # W is identical too: the dimensionality of every feature agrees exactly
    assert norms[0]["dimensionality"].equals(norms[1]["dimensionality"])
    # ... and a different seed gives different data
    job.run(cell(seed=1), tmp_path / "seed1")
    assert not read(tmp_path / "seed1", schema.SAMPLES_FILE)["true"].equals(true[0])


def test_methods_see_identical_h_h_train_and_w_with_noise(tmp_path, monkeypatch):
    seen = {}

    def recorder(name):
        def method(x, **params):
            seen[name] = x
            return Recovery(np.zeros((x.H.shape[0], x.n_features)))

        return method

    for name in ("omp", "readout", "ica"):  # each kind of method: what it is given
        monkeypatch.setitem(METHODS, name, recorder(name))
        job.run(cell(noise=0.1, trials=1, method={"name": name}), tmp_path / name)
    omp, readout, ica = seen["omp"], seen["readout"], seen["ica"]
    assert np.array_equal(omp.H, readout.H) and np.array_equal(omp.H, ica.H)
    assert np.array_equal(omp.W, readout.W)  # a random W: every column represented
    assert ica.W is None and omp.H_train is None  # a learner sees no W
    H, H_train, W = omp.H, ica.H_train, omp.W
    assert H.shape == (50, 12) and H_train.shape == (20, 12)
    # the noise is there: H is not exactly X @ W.T
    X = read(tmp_path / "omp", schema.SAMPLES_FILE).pivot(
        index="sample", columns="feature", values="true"
    )
    assert not np.allclose(H[: len(X)], X.to_numpy() @ W.T)


def test_same_command_twice_same_metrics(tmp_path):
    job.run(
        cell(method={"name": "basis_pursuit", "positive": False, "max_iter": 500}),
        tmp_path / "a",
    )
    job.run(
        cell(method={"name": "basis_pursuit", "positive": False, "max_iter": 500}),
        tmp_path / "b",
    )
    a, b = (read(tmp_path / d).drop(columns=TIMINGS) for d in "ab")
    pd.testing.assert_frame_equal(a, b)
    assert a["trial"].nunique() == 3
    # trials are independent draws, not copies
    assert a["mse"].nunique() == 3


def test_a_failing_method_becomes_failed_rows(tmp_path, monkeypatch):
    def broken(x, *, tol, n_nonzero_coefs):
        raise np.linalg.LinAlgError("singular matrix\nsecond line")

    monkeypatch.setitem(METHODS, "omp", broken)
    status = job.run(cell(), tmp_path, cell="bad")
    assert status["status"] == "failed"
    assert status["error"] == "LinAlgError: singular matrix"
    metrics = read(tmp_path)
    assert len(metrics) == 3 and (metrics["status"] == "failed").all()
    assert metrics["error"].eq("LinAlgError: singular matrix").all()
    assert metrics["mse"].isna().all()
    stored = json.loads((tmp_path / schema.STATUS_FILE).read_text())
    assert "Traceback" in stored["traceback"] and "broken" in stored["traceback"]


def test_finished_cell_is_cached_and_another_config_is_refused(tmp_path):
    job.run(cell(), tmp_path)
    before = read(tmp_path)
    again = job.run(cell(), tmp_path)
    assert again["status"] == "cached"
    pd.testing.assert_frame_equal(read(tmp_path), before)
    refused = job.run(cell(seed=5), tmp_path)
    assert refused["status"] == "failed"
    assert "holds another configuration (seed=0 there, 5 now)" in refused["error"]
    pd.testing.assert_frame_equal(read(tmp_path), before)  # nothing overwritten
    assert json.loads((tmp_path / schema.STATUS_FILE).read_text())["status"] == "cached"


def test_failed_cell_is_run_again(tmp_path, monkeypatch):
    def broken(flat, cache_dir=None):
        raise RuntimeError("injected failure")

    with monkeypatch.context() as patched:
        patched.setattr(job, "run_trials", broken)
        assert job.run(cell(), tmp_path, cell="c")["status"] == "failed"
    assert job.run(cell(), tmp_path, cell="c")["status"] == "ok"
    assert read(tmp_path)["status"].eq("ok").all()


def test_unwritable_folder_does_not_raise(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status = job.run(cell(), blocker / "cell")
    assert status["status"] == "failed"


def test_a_cell_past_its_timeout_fails_and_the_next_runs(tmp_path):
    slow = cell(method={"name": "basis_pursuit", "positive": False, "max_iter": 500},
                n_samples=4000, trials=5, cell_timeout_s=0.2)  # fmt: skip
    status = job.run(slow, tmp_path / "slow")
    assert status["status"] == "failed"
    assert status["error"] == "CellTimeout: ran past cell_timeout_s=0.2"
    assert status["seconds"] < 2
    # the alarm is gone: a cell without a limit runs to the end
    assert job.run(cell(), tmp_path / "next")["status"] == "ok"


def test_the_timeout_is_not_part_of_the_cell(tmp_path):
    job.run(cell(), tmp_path)
    assert job.run(cell(cell_timeout_s=100.0), tmp_path)["status"] == "cached"


def test_one_cell_from_python_equals_the_cell_the_job_writes(tmp_path):
    from sweep.pipeline import run_cell

    keys = {"n_features": 30, "neurons": 12, "sparsity": 0.1, "trials": 2,
            "n_samples": 50, "n_train": 20}  # fmt: skip
    rows = run_cell("method=lasso", "method.alpha=0.01", **keys)
    assert len(rows) == 2 and rows["status"].eq("ok").all()
    cfg = cell(trials=2, method={"name": "lasso", "alpha": 0.01, "positive": False,
                                 "max_iter": 1000, "tol": 1e-6})  # fmt: skip
    job.run(cfg, tmp_path, cell=rows["cell"][0])
    written = read(tmp_path).drop(columns=TIMINGS)
    pd.testing.assert_frame_equal(rows.drop(columns=TIMINGS), written)
    with pytest.raises(ValueError, match="neurons=0: allowed is an integer >= 1"):
        run_cell(neurons=0)  # checked as on the command line
