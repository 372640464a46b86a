"""A user's activations file: each format read back, every bad file named."""

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from sweep import pipeline
from sweep.activations import MIN_ROWS, load, problems, split
from sweep.command import validate_argv
from sweep.grid import expand_cells
from sweep.pipeline import run_cell
from sweep.schema import EXAMPLES_FILE


def rows(n=50, m=4, seed=0):
    return np.random.default_rng(seed).random((n, m))


def write(tmp_path, fmt, H, labels=None):
    path = tmp_path / f"acts{fmt}"
    if fmt == ".npy":
        np.save(path, H)
    elif fmt == ".npz":
        np.savez(path, H=H, **({} if labels is None else {"labels": labels}))
    else:
        frame = pd.DataFrame(H, columns=[f"n{i}" for i in range(H.shape[1])])
        if labels is not None:
            frame.insert(0, "labels", labels)
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", [".npy", ".npz", ".parquet"])
def test_each_format_reads_back_its_rows_and_labels(tmp_path, fmt):
    H, labels = rows(), np.arange(50) % 3
    path = write(tmp_path, fmt, H, None if fmt == ".npy" else labels)
    assert problems(path) == []
    found = load(path)
    np.testing.assert_array_equal(found.H, H)
    if fmt == ".npy":
        assert isinstance(found.H, np.memmap)  # read as it is used
    else:
        np.testing.assert_array_equal(found.meta["labels"], labels)


def test_npz_without_h_takes_its_only_matrix_and_refuses_two(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, acts=rows(), labels=np.zeros(50))
    assert problems(path) == [] and load(path).H.shape == (50, 4)
    path = tmp_path / "two.npz"
    np.savez(path, a=rows(), b=rows())
    (line,) = problems(path)
    assert "2 2-D arrays (a, b): name the activations 'H'" in line


def bad_files(tmp_path):
    """(path, what its one problem line says) for each way a file can be wrong."""
    H = rows()
    nan = H.copy()
    nan[7, 2] = np.nan
    cases = {
        "acts.csv": (None, "allowed is a .npy, .npz, .parquet file"),
        "missing.npy": (None, "no such file"),
        "flat.npy": (np.arange(10.0), "shape (10,); allowed is 2-D"),
        "words.npy": (np.array([["a", "b"]] * 5), "dtype <U1; allowed is numbers"),
        "nan.npy": (nan, "NaN or infinite values (the first at row 7, column 2)"),
        "few.npy": (H[:1], f"1 rows x 4 neurons; allowed is at least {MIN_ROWS} rows"),
    }
    out = []
    for name, (array, message) in cases.items():
        path = tmp_path / name
        if array is not None:
            np.save(path, array)
        out.append((path, message))
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"not a parquet file")
    out.append((corrupt, "cannot be read as activations"))
    short = tmp_path / "short.npz"
    np.savez(short, H=H, labels=np.zeros(3))
    out.append((short, "column 'labels' has shape (3,) for 50 rows"))
    return out


def test_parquet_keeps_string_labels_and_refuses_labels_that_cannot_label(tmp_path):
    """String labels are kept (pandas' string dtype is no float column); labels
    of one-hot shape or with gaps are refused in one line."""
    H = rows()
    frame = pd.DataFrame(H, columns=list("abcd"))
    frame["labels"] = pd.array(["x", "y"] * 25, dtype="string")
    frame.to_parquet(tmp_path / "text.parquet")
    assert problems(tmp_path / "text.parquet") == []
    assert list(load(tmp_path / "text.parquet").meta["labels"][:2]) == ["x", "y"]
    np.savez(tmp_path / "onehot.npz", H=H, labels=np.eye(10)[np.arange(50) % 10])
    np.savez(tmp_path / "gaps.npz", H=H, labels=np.where(np.arange(50) < 5, np.nan, 1))
    cases = {"onehot.npz": "has shape (50, 10) for 50 rows",
             "gaps.npz": "labels are missing for some rows"}  # fmt: skip
    for name, message in cases.items():
        (line,) = problems(tmp_path / name)
        assert message in line


def test_every_bad_file_gets_one_line_naming_the_file_and_the_fault(tmp_path):
    for path, message in bad_files(tmp_path):
        found = problems(path)
        assert len(found) == 1 and found[0].startswith(f"model.path={path}:"), found
        assert message in found[0], (path.name, found)


def test_split_is_disjoint_sized_and_seeded():
    test, train = split(100, 30, 1000, np.random.default_rng(0))
    assert len(test) == 30 and len(train) == 70 and not set(test) & set(train)
    again, _ = split(100, 30, 1000, np.random.default_rng(0))
    other, _ = split(100, 30, 1000, np.random.default_rng(1))
    assert np.array_equal(test, again) and not np.array_equal(test, other)
    _, fewer = split(100, 30, 20, np.random.default_rng(0))
    assert len(fewer) == 20 and set(fewer) <= set(train)


def labelled(n=400, m=8, n_features=12, seed=0):
    """Activations of sparse features through a random W (n, m), labelled by each
    row's most active feature."""
    rng = np.random.default_rng(seed)
    X = np.where(rng.random((n, n_features)) < 0.15, rng.random((n, n_features)), 0)
    W = rng.standard_normal((m, n_features))
    return X @ (W / np.linalg.norm(W, axis=0)).T, X.argmax(axis=1)


@pytest.mark.parametrize("fmt", [".npy", ".npz", ".parquet"])
def test_a_cell_runs_on_each_format(tmp_path, fmt):
    """model=activations: a learned method trains on the rows not held out and
    is scored on n_samples held-out rows; selectivity where the file has labels."""
    H, labels = labelled()
    path = write(tmp_path, fmt, H, None if fmt == ".npy" else labels)
    rows = run_cell("model=activations", f"model.path={path}", "method=sae",
                    neurons=8, n_features=12, n_samples=100, trials=1)  # fmt: skip
    row = rows.iloc[0]
    assert row.explained_variance > 0.5 and row.l0 > 0 and np.isnan(row.nmse)
    assert np.isnan(row.top_share) == (fmt == ".npy")


def test_a_cell_that_does_not_fit_its_file_is_refused_in_one_line(tmp_path):
    path = write(tmp_path, ".npy", rows(50, 4))
    cases = {
        f"neurons=5 (model.path={path}): the file has 4 neurons; set neurons=4":
            ["neurons=5", "n_samples=40"],
        "n_samples=50 (model.path=": ["neurons=4", "n_samples=50"],
        "model.path=null (model=activations): allowed is a .npy": [],
        "model.path=3 (model=activations): allowed is null or a file's path":
            ["model.path=3"],
    }  # fmt: skip
    for message, keys in cases.items():
        given = [f"model.path={path}"] if message.startswith("n") else []
        errors = validate_argv(["model=activations", "method=sae", *given, *keys])
        assert len(errors) == 1 and message in errors[0], errors
    good = validate_argv(["model=activations", "method=sae", f"model.path={path}",
                          "neurons=4", "n_samples=40"])  # fmt: skip
    assert good == []
    out = run_cli("sweep", "model=activations", "method=sae",
                  f"model.path={tmp_path / 'gone.npy'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and "gone.npy: no such file" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_files_other_columns_label_the_samples_that_activate_each_unit(tmp_path):
    """examples.parquet of a user file: each unit's top held-out rows (the file's
    own row numbers) with the file's label and its other columns as text (no
    image); train_rows counts every row not held out."""
    H, labels = labelled()
    frame = pd.DataFrame(H, columns=[f"n{i}" for i in range(H.shape[1])])
    frame.insert(0, "labels", labels)
    frame["token"] = [f"w{i}" for i in range(len(frame))]
    path = tmp_path / "acts.parquet"
    frame.to_parquet(path)
    (cell,) = expand_cells(["model=activations", f"model.path={path}", "method=sae",
                            "neurons=8", "n_features=12", "n_samples=100", "trials=1",
                            "method.steps=300"], False)  # fmt: skip
    nets = pipeline.build_models(cell.flat)
    metrics, tables = pipeline.run_trials(cell.flat, nets)
    assert metrics[0]["train_rows"] == len(frame) - 100
    examples = tables[EXAMPLES_FILE]
    neurons = examples[examples["kind"] == "neuron"]
    row = neurons["row"].to_numpy()  # the file's own rows
    assert (neurons["text"] == [f"token=w{r}" for r in row]).all()
    assert (neurons["label"] == frame["labels"].to_numpy()[row].astype(str)).all()
    np.testing.assert_allclose(neurons["activation"],
                               H[row, neurons["unit"].to_numpy()])  # fmt: skip
    assert examples["image"].isna().all() and "labels=" not in examples["text"].iloc[0]
