import pytest
import yaml
from hydra import compose, initialize_config_dir

from sweep import CONF_DIR, OUTPUTS_DIR
from sweep.__main__ import with_default_dirs
from sweep.command import validate_argv
from sweep.config import flatten, validate_cell
from sweep.grid import expand_cells
from sweep.methods import METHODS


def _compose(*overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_default_config():
    cfg = _compose()
    flat = flatten(cfg)
    assert flat["method"] == "omp" and flat["model"] == "random"
    assert flat["method.tol"] == 1e-6 and flat["method.n_nonzero_coefs"] is None
    assert flat["n_features"] == 100 and flat["k"] is None
    assert validate_cell(flat) == []
    assert cfg.hydra.launcher.n_jobs == -1
    assert cfg.hydra.launcher._target_.endswith("PoolLauncher")
    assert cfg.hydra.sweeper._target_.endswith("CellSweeper")
    assert "hydra" not in flat


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_composes_and_validates(method):
    flat = flatten(_compose(f"method={method}"))
    assert flat["method"] == method
    assert validate_cell(flat) == []


def test_default_grid_and_smoke_grid():
    params = _compose().hydra.sweeper.params
    assert set(params) == {"neurons", "sparsity", "method"}
    smoke = _compose("experiment=smoke")
    cells = expand_cells(["experiment=smoke"], multirun=True)
    assert {cell.flat["method"] for cell in cells} == set(METHODS)  # each registered
    assert smoke.n_features == 20


def test_presets_do_not_inherit_axes():
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        text = path.read_text()
        assert text.startswith("# @package _global_"), path
        assert "defaults" not in yaml.safe_load(text), path


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-m"],
        ["-m", "neurons=5,10,20", "sparsity=0.01,0.1"],
        ["-m", "method=omp"],
        [
            "-m",
            "experiment=smoke",
            "method=lasso,basis_pursuit",
            "method.positive=true",
        ],
        ["k=3", "sparsity=null"],
        ["method=lasso", "method.alpha=0.5", "noise=0.1"],
        ["-m", "n_features=50,100", "neurons=range(5,30,5)"],
        ["hydra.launcher.n_jobs=1", "seed=3"],
        # two presets, one cell each: different configurations, different folders
        ["-m", "experiment=smoke,default", "method=omp", "neurons=5", "sparsity=0.05"],
        ["-m", "method=glob(omp,lstsq)"],
    ],
)
def test_good_input(argv):
    assert validate_argv(argv) == []


BAD = [
    (["neurons=0"], "neurons=0: allowed is an integer >= 1"),
    (["neurons=abc"], "neurons='abc': allowed is an integer >= 1"),
    (["neurons=2.5"], "neurons=2.5: allowed is an integer >= 1"),
    (["n_features=-3"], "n_features=-3"),
    (["trials=0"], "trials=0"),
    (["n_samples=1.5"], "n_samples=1.5"),
    (["sparsity=0"], "sparsity=0: allowed is null or a finite number in (0, 1]"),
    (["sparsity=1.5"], "sparsity=1.5"),
    (["sparsity=nan"], "sparsity=nan"),
    (["k=3"], "k=3 with sparsity=0.05: set only one"),
    (["k=101", "sparsity=null"], "k=101: allowed is an integer <= n_features=100"),
    (["k=null", "sparsity=null"], "set one of them"),
    (["noise=-0.1"], "noise=-0.1: allowed is a finite number in [0, inf)"),
    (["noise=inf"], "noise=inf"),
    (["method=foo"], "method='foo': unknown (allowed: basis_pursuit"),
    (["model=foo"],
     "model='foo': unknown (allowed: activations, digits_mlp, random, toy_linear,"
     " toy_relu)"),
    (["method.alpha=0.1"], "method omp has no parameter 'alpha'"),
    (["method=lasso", "method.alpha=-1"], "method.alpha=-1 (method=lasso)"),
    (["method=lasso", "method.alpha=0"], "method.alpha=0 (method=lasso)"),
    (["method=omp", "method.tol=2"], "method.tol=2 (method=omp)"),
    (["method=lasso_lars", "method.positive=1"], "allowed is true or false"),
    (["method=omp", "method.n_nonzero_coefs=0"], "null or an integer >= 1"),
    (["+foo=1"], "foo=1: unknown"),
    (["neurons=5,10"], "a sweep needs -m"),
    (["-m", "experiment=nope"], "experiment='nope': unknown"),
    (["-m", "neurons=5,0"], "neurons=0"),
    (["-m", "method=omp,nope"], "method='nope': unknown"),
    (["-m", "method=lasso,lasso_lars", "method.alpha=-2"], "method.alpha=-2"),
    (["model=toy_relu", "model.steps=0"], "model.steps=0 (model=toy_relu)"),
    (["model=toy_relu", "model.lr=-1"], "model.lr=-1 (model=toy_relu)"),
    (["model=toy_linear", "model.restarts=1.5"], "model.restarts=1.5"),
    (["model.steps=10"], "model random has no parameter 'steps'"),
    (["experiment=nope"], "experiment='nope': unknown"),
    (["neurons=inf"], "neurons=inf: allowed is an integer >= 1"),
    (["trials=true"], "trials=True: allowed is an integer >= 1"),
    (["seed=-1"], "seed=-1: allowed is an integer >= 0"),
    (["method=sae", "n_train=0"], "a learned method needs training data"),
    (["n_train=many"], "n_train='many': allowed is auto or an integer >= 0"),
    (["cell_timeout_s=0"], "cell_timeout_s=0: allowed is null or a finite number"),
    (["-m", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs=0: allowed is 1 to"),
    # the field's vocabulary: S and density are sparsity; near misses get a hint
    (["S=2"], "S=2: allowed is a number in [0, 1] (S = 1 - sparsity"),
    (["-m", "S=0.9", "sparsity=0.1"], "S, sparsity: one key"),
    (["n_feature=5"], "n_feature=5: unknown (allowed: seed, n_features"),
    (["n_feature=5"], "; did you mean n_features?"),
    (["data.firng=zipf"], "data.firng='zipf': unknown"),
    (["data.firng=zipf"], "did you mean data.firing?"),
    (["data.firing=zipff"], "data.firing='zipff': allowed is constant | zipf | linear"),
    (["data.firing=zipf", "sparsity=0.3"],
     "sparsity=0.3 with data.firing='zipf': allowed is sparsity <= 0.0518"),
    (["data.firing=zipf", "k=3", "sparsity=null"],
     "data.firing='zipf' with k=3: allowed only with sparsity"),
    (["data.hierarchy_depth=4"], "a tree has 341 features, 1 tree(s) need 341 >"
     " n_features=100"),
    (["data.correlation_strength=2"], "data.correlation_strength=2: allowed is a"),
    (["data.exclusive=3"], "data.exclusive=3: allowed is true or false"),
    (["data.correlation=random", "n_features=9000"],
     "data.correlation='random' with n_features=9000: allowed up to 8192"),
    (["model.geometry=orth"], "model.geometry='orth' (model=random): allowed is"),
    (["data.magnitude=constant", "data.magnitude_mean=0"],
     "data.magnitude_mean=0 with data.magnitude='constant': every active feature"),
    (["method=lassso"], "did you mean lasso?"),
    (["-m", "neurons=5,10", "neurons=20"], "neurons given twice; give it once"),
    (["-m", "hydra.launcher.n_jobs=4096"], "(this machine's cores), or -1 for all"),
    # values no check ever saw before they crashed a job
    (["neurons=${nope}"], "neurons='${nope}': cannot resolve"),
    (["neurons=" + "9" * 4000], "(4000 characters): allowed is an integer >= 1 and"),
    (["seed=18446744073709551616"], "allowed is an integer >= 0 and < 2**63"),
    (["method=null"], "method=None: unknown (allowed: basis_pursuit"),
    (["model=null"], "model=None: unknown (allowed: activations, digits_mlp, random"),
    (["-cn", "nope"], "--config-name=nope: unknown (allowed: config"),
    (["-m", "--config-name=nope"], "--config-name=nope: unknown (allowed: config"),
    (["-m", "--foo"], "unrecognized arguments: --foo"),
    (["-m", "--run"], "--run with --multirun: choose one"),
    (["-m", "~experiment"], "~experiment: choose a preset or group as key=NAME"),
    (["-m", "+method=lasso"], "+method=lasso: choose a preset or group as key=NAME"),
    (["-m", "neurons=range(0,10,0)"], "neurons=range(0,10,0): not a finite range"),
    (["-m", "neurons=range(1,inf)"], "neurons=range(1,inf): not a finite range"),
    (["-m", "cell_timeout_s=1,2"], "cell_timeout_s=1,2: how a cell runs is not part"),
    (["-m", "hydra.sweeper.max_batch_size=abc"], "allowed is null or an integer >= 1"),
    (["-m", "hydra.launcher._target_=nope"], "which class Hydra runs cannot be set"),
    (["-m", "hydra/launcher=nope"], "Could not find 'hydra/launcher/nope'"),
    (["-m", "hydra/sweeper=basic"], "the cells sweeper is required"),
    (["-m", "hydra.sweep.subdir=same"], "hydra.sweep.subdir cannot be set"),
    (["-m", "hydra.sweep.dir="], "hydra.sweep.dir='': allowed is the path of a folder"),
    (["-m", "hydra.sweep.dir=/tmp/a,b"], "cannot be swept (quote a value with a comma"),
    (["-m", "hydra.sweep.dir=/proc/sys/nope"], "/proc/sys is not writable"),
    (["--experimental-rerun", "x.pickle"], "--experimental-rerun: refused"),
    (["--experimental-rerun=x.pickle"], "--experimental-rerun: refused"),
    (["--exp=x.pickle"], "--experimental-rerun: refused"),  # argparse's abbreviation
    (["-m", "neurons=range(1,2000000000)"], "1,999,999,999 values: allowed is at most"),
    (
        ["-m", "neurons=range(1,400)", "seed=range(300)"],
        "the grid has 1,077,300 points: allowed is at most 100,000",
    ),
    (["n_samples=20000000"], "needs about"),
    (["trials=1000000"], "needs about"),
    (["n_features=1000000000"], "needs about"),
    (["-m", "neurons=interval(1,2)"], "only lists and range() can be swept"),
    (["-m", "+hydra.sweeper.params.noise=-1"], "not through hydra.sweeper.params"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_is_named(argv, message):
    errors = validate_argv(argv)
    assert errors, argv
    assert any(message in line for line in errors), errors


def test_one_line_per_bad_value_across_the_grid():
    errors = validate_argv(["-m", "neurons=0,5,-1", "sparsity=0.01,0.1,2"])
    assert sorted(errors) == sorted(
        [
            "neurons=0: allowed is an integer >= 1",
            "neurons=-1: allowed is an integer >= 1",
            "sparsity=2: allowed is null or a finite number in (0, 1]",
        ]
    )


def test_default_dirs_are_under_project_outputs():
    run = with_default_dirs(["neurons=5"])
    assert run[-1].startswith(f"hydra.run.dir='{OUTPUTS_DIR / 'runs'}")
    sweep = with_default_dirs(["-m"])
    assert sweep[-1].startswith(f"hydra.sweep.dir='{OUTPUTS_DIR / 'sweeps'}")
    mine = ["-m", "hydra.sweep.dir=/tmp/x"]
    assert with_default_dirs(mine) == mine


def test_flags_are_read_as_hydra_reads_them():
    from sweep.command import read_argv

    args = read_argv(["-m", "-cn", "config", "neurons=5", "--cfg=job", "--info"])
    assert args.multirun and args.overrides == ["neurons=5"]
    assert args.config_name == "config" and args.cfg == "job" and args.info == "all"
    assert read_argv(["--version"]) is None  # Hydra prints it


def test_unparsable_override_is_one_line():
    errors = validate_argv(["neurons=[1,"])
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith("cannot parse the overrides")


def test_schema_lists_every_top_level_key():
    from sweep import schema
    from sweep.config import GROUPS, TOP_LEVEL

    assert tuple(TOP_LEVEL) == schema.CONFIG_KEYS
    assert tuple(GROUPS) == schema.GROUPS


@pytest.mark.parametrize("model", ["random", "toy_relu", "toy_linear"])
def test_every_model_composes_and_validates(model):
    flat = flatten(_compose(f"model={model}"))
    assert flat["model"] == model
    assert validate_cell(flat) == []


def test_model_registry_matches_config_files():
    from sweep.models import MODELS
    from sweep.registry import Registry

    files = {p.stem for p in (CONF_DIR / "model").glob("*.yaml")}
    assert files == set(MODELS)
    for name in MODELS:
        conf = yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text())
        assert conf.pop("name") == name
        assert conf == Registry.params(MODELS[name])


@pytest.mark.parametrize(
    ("argv", "forced"),
    [
        (["-m", "model=toy_relu,toy_linear", "model.steps=50"], True),
        (["-m", "experiment=paper_intro", "model.steps=50"], True),
        (["-m", "model=toy_relu", "model.steps=50"], False),  # the master has toy_relu
        (["model=toy_relu", "model.steps=50"], False),  # a single run composes once
    ],
)
def test_group_parameters_reach_every_job_of_a_swept_group(argv, forced):
    from sweep.command import force_group_params

    out = force_group_params(argv)
    assert ("++model.steps=50" in out) == forced
    assert validate_argv(out) == []


def test_an_integer_for_a_float_key_is_the_same_cell():
    from sweep.grid import expand_cells

    (a,) = expand_cells(["sparsity=1", "method=lasso", "method.alpha=1"], False)
    (b,) = expand_cells(["sparsity=1.0", "method=lasso", "method.alpha=1.0"], False)
    assert a.flat["sparsity"] == 1.0 and isinstance(a.flat["sparsity"], float)
    assert a.fingerprint == b.fingerprint and a.name == b.name
    assert a.flat["method.alpha"] == 1.0 and a.flat["neurons"] == 20


def test_n_train_auto_gives_a_learned_method_rows_enough_and_keeps_old_cells():
    """n_train=auto: max(1000, 100 / sparsity) rows for a method that learns from
    them, else 1000, the key's former default: a cell written before auto (with
    n_train 1000) keeps its folder and fingerprint; a learned cell whose rows
    changed is another cell, named apart."""
    (omp,) = expand_cells(["method=omp", "sparsity=0.01"], False)
    (old,) = expand_cells(["method=omp", "sparsity=0.01", "n_train=1000"], False)
    assert omp.flat["n_train"] == 1000
    assert (omp.fingerprint, omp.name) == (old.fingerprint, old.name)
    (learned,) = expand_cells(["method=dict_learning", "sparsity=0.01"], False)
    (old,) = expand_cells(["method=dict_learning", "sparsity=0.01", "n_train=1000"],
                          False)  # fmt: skip
    assert learned.flat["n_train"] == 10_000 and "n_train" not in learned.name
    assert old.fingerprint != learned.fingerprint and "n_train=1000" in old.name
    (same,) = expand_cells(["method=dict_learning", "sparsity=0.01", "n_train=10000"],
                           False)  # fmt: skip
    assert (same.fingerprint, same.name) == (learned.fingerprint, learned.name)
    (dense,) = expand_cells(["method=ica", "sparsity=0.5"], False)
    assert dense.flat["n_train"] == 1000
    (by_k,) = expand_cells(["method=sae", "sparsity=null", "k=5", "n_features=512",
                            "neurons=128"], False)  # fmt: skip
    assert by_k.flat["n_train"] == 10_240  # 100 / (5 / 512)
    (fresh,) = expand_cells(["method=sae", "sparsity=0.01",
                             "method.train_samples=100000"], False)  # fmt: skip
    assert fresh.flat["n_train"] == 1000  # trained on fresh samples, not the rows


def test_slurm_launcher_config_has_the_cluster_keys():
    launcher = _compose("hydra/launcher=slurm").hydra.launcher
    assert launcher._target_.endswith("SlurmCellLauncher")
    assert {"partition", "timeout_min", "cpus_per_task", "mem_gb"} <= set(launcher)
    assert launcher.array_parallelism == 64 and launcher.cpus_per_task == 1
    assert (
        validate_argv(["-m", "hydra/launcher=slurm", "hydra.launcher.partition=cpu"])
        == []
    )


def test_the_data_defaults_of_the_config_are_the_textbook_ones():
    """conf/config.yaml's data block states sweep/data.py's DEFAULTS, key for key:
    the defaults that draw the textbook case (and leave old cells' identity alone)."""
    from omegaconf import OmegaConf

    from sweep import CONF_DIR
    from sweep.data import DEFAULTS, KEYS

    stated = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))["data"]
    assert stated == DEFAULTS
    assert set(KEYS) == set(DEFAULTS)
    assert all(KEYS[key](value) is None for key, value in DEFAULTS.items())


def test_a_long_name_leads_with_the_method_and_model_keys():
    """Data keys sort before `method`: a name cut at MAX_NAME_BYTES would lose the
    method's keys; it puts them first, with neurons and sparsity, then hashes."""
    (cell,) = expand_cells(
        ["experiment=sae_bench", "method=sae", "method.architecture=topk",
         "method.target_l0=5"], multirun=False,
    )  # fmt: skip
    assert cell.name.startswith(
        "method=sae,method.architecture=topk,method.l1=0.01,method.target_l0=5,"
    ), cell.name
    assert "neurons=128,sparsity=0.01,data." in cell.name and ",hash=" in cell.name
    (short,) = expand_cells(["k=3", "sparsity=null", "method=lasso"], multirun=False)
    assert short.name == "k=3,method=lasso,neurons=20,sparsity=null"  # sorted, whole


def test_a_preset_that_sets_a_group_as_a_value_is_told_how_to_choose_it():
    """`model: toy_relu` in a preset (not in its defaults list) is one clear line,
    not a traceback; the group's settings as a mapping are read as usual."""
    with pytest.raises(ValueError, match="model: 'toy_relu' stands where its settings"):
        flatten({"model": "toy_relu", "method": {"name": "omp"}})
    with pytest.raises(ValueError, match="data: 'zipf' stands where its settings"):
        flatten({"data": "zipf", "method": {"name": "omp"}})
    flat = flatten({"model": {"name": "toy_relu", "steps": 5},
                           "method": {"name": "omp"}})  # fmt: skip
    assert flat["model"] == "toy_relu" and flat["model.steps"] == 5
