"""Names of the result files and their columns: the public interface of a sweep folder.

``job.py`` writes these files, ``analysis`` reads them; both take the names from here.
"""

SCHEMA_VERSION = 1

METRICS_FILE = "metrics.parquet"
FEATURES_FILE = "features.parquet"
SAMPLES_FILE = "samples.parquet"
WEIGHTS_FILE = "weights.parquet"  # trained models only: trial, neuron, feature, value
COSINES_FILE = "cosines.parquet"  # learned methods, trial 0: trial, atom, feature, cos
# method=sae: every trial's curves on held-out samples, a row per trial and logged step
TRAINING_FILE = "training.parquet"
TRAINING_COLUMNS = (
    "trial", "step", "samples", "loss", "l0", "dead_fraction", "explained_variance",
    "mcc_matched",
)  # fmt: skip
# A real network's cells (no ground truth): every trial's units, latents and neurons
# (metrics.units), and trial 0's samples that activate each unit most, with the
# sample's label, its file's other columns as text and (digits) its image
UNITS_FILE = "units.parquet"
UNITS_COLUMNS = (
    "trial", "kind", "unit", "fire_rate", "top_share", "label_entropy", "top_label",
)  # fmt: skip
UNIT_KINDS = ("latent", "neuron")  # kind: a learned latent, or the network's neuron
EXAMPLES_FILE = "examples.parquet"
EXAMPLES_COLUMNS = (
    "trial", "kind", "unit", "rank", "row", "activation", "label", "text", "image",
)  # fmt: skip
STATUS_FILE = "status.json"
ANALYSIS_DIR = "analysis"

# Columns that identify a row but are not configuration keys.
IDENTITY_COLUMNS = ("schema_version", "sweep", "cell", "trial", "status", "error")

# Columns derived from configuration keys: never treated as a swept axis.
DERIVED_COLUMNS = ("S",)

# Top-level configuration keys, in the order they appear in every row.
CONFIG_KEYS = (
    "seed",
    "n_features",
    "neurons",
    "sparsity",
    "k",
    "trials",
    "n_samples",
    "n_train",
    "noise",
    "success_tol",
    "represented_tol",
)

# Per-trial metrics on test data (defined in README.md, "Outputs").
METRIC_COLUMNS = (
    "mse",
    "nmse",
    "weighted_mse",
    "rel_error",
    "success_rate",
    "frac_zero",
    "support_precision",
    "support_recall",
    "support_f1",
    "r2",
    "r2_h",
    "l0",
    "true_l0",
    "latent_precision",
    "latent_recall",
    "latent_f1",
    "dead_fraction",
    "shrinkage",
    "explained_variance",
    "coherence",
    "fit_seconds",
    "recover_seconds",
)

# Per-trial metrics of a real network's cells (no ground truth; README, "Outputs").
NETWORK_COLUMNS = (
    "accuracy",
    "top_share",
    "label_entropy",
    "neuron_top_share",
    "neuron_label_entropy",
    "above_best_neuron",
    "neuron_l0",
    "train_rows",
)

# The metrics a finished cell's line and a single run's table show, those it has.
SHOWN_METRICS = (
    "success_rate", "nmse", "support_f1", "r2", "l0", "mcc", "n_recovered",
    "explained_variance", "top_share", "above_best_neuron",
)  # fmt: skip

# Per-feature columns of features.parquet besides (trial, feature).
FEATURE_COLUMNS = (
    "norm",
    "b",
    "importance",
    "dimensionality",
    "superposition",
    "recovery_mse",
    "firing_rate",
)

# Long-form columns of samples.parquet.
SAMPLE_COLUMNS = ("trial", "sample", "feature", "true", "recovered")

# A cell's status; "missing": Hydra made its folder but the job died before it ended.
STATUSES = ("ok", "failed", "cached")
DONE = ("ok", "cached")  # statuses whose results count (cached: kept from an ok run)

GROUPS = ("model", "method")  # config groups: columns `method`, `method.alpha`, ...
