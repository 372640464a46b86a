"""The figures of a real network's cells, from hand-made tables (builders, no files)."""

import numpy as np
import pandas as pd
from matplotlib.image import AxesImage

from analysis.network import (
    N_UNITS,
    Units,
    frontier_figure,
    selectivity_figure,
    top_inputs_figure,
    top_units,
)


def unit_table(shares: dict[str, list[float]], fire=0.5) -> pd.DataFrame:
    rows = [{"trial": 0, "kind": kind, "unit": u, "fire_rate": fire, "top_share": s,
             "label_entropy": 1 - s, "top_label": str(u % 3)}
            for kind, values in shares.items()
            for u, s in enumerate(values)]  # fmt: skip
    return pd.DataFrame(rows)


def examples_of(units: pd.DataFrame, *, images: bool, k=3) -> pd.DataFrame:
    rows = []
    for _, unit in units.iterrows():
        for rank in range(k):
            rows.append({
                "trial": 0, "kind": unit["kind"], "unit": unit["unit"], "rank": rank,
                "row": rank, "activation": 3.0 - rank, "label": f"L{unit['unit']}",
                "text": f"token=t{unit['unit']}x{rank}",
                "image": np.full(64, float(rank)) if images else None,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_top_units_are_the_most_selective_or_without_labels_the_most_firing():
    units = unit_table({"latent": [0.3, 0.9, np.nan, 0.6], "neuron": [0.2]})
    units.loc[2, "fire_rate"] = 0.0  # never fires: never shown
    assert top_units(units, "latent")["unit"].tolist() == [1, 3, 0]
    unlabelled = units.assign(top_share=np.nan)
    unlabelled["fire_rate"] = [0.1, 0.2, 0.0, 0.4, 0.5]
    assert top_units(unlabelled, "latent")["unit"].tolist() == [3, 1, 0]


def test_top_inputs_show_images_or_a_files_labels_and_columns():
    """Digits: one image strip per unit shown (latents left, neurons right), the
    labels under the images; a user file: its label and other columns as text."""
    units = unit_table({"latent": [0.9, 0.8], "neuron": [0.4]})
    fig = top_inputs_figure(Units("cell", units, examples_of(units, images=True)))
    axs = np.array(fig.axes).reshape(N_UNITS, 2)
    strips = [ax for ax in fig.axes if any(isinstance(c, AxesImage)
                                           for c in ax.get_children())]  # fmt: skip
    assert len(strips) == 3 and axs[0, 0] in strips and axs[0, 1] in strips
    ticks = [t.get_text() for t in axs[0, 0].get_xticklabels()]
    assert ticks == ["L0, 3", "L0, 2", "L0, 1"]
    assert "latent 0" in axs[0, 0].get_title(loc="left")
    assert "top share 0.90 on 0" in axs[0, 0].get_title(loc="left")
    fig = top_inputs_figure(Units("cell", units, examples_of(units, images=False)))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "L1\ntoken=t1x0\n3" in texts and not any(
        isinstance(c, AxesImage) for ax in fig.axes for c in ax.get_children())


def test_selectivity_counts_the_latents_above_the_best_neuron():
    units = unit_table({"latent": [0.9, 0.5, 0.3, np.nan], "neuron": [0.4, 0.2]})
    fig = selectivity_figure([Units("method=sae", units, pd.DataFrame())])
    ax = fig.axes[0]
    assert "2 latents above the best neuron" in ax.get_title()
    latents, neurons = ax.get_lines()[:2]
    assert latents.get_ydata().tolist() == [0.9, 0.5, 0.3]
    assert neurons.get_ydata().tolist() == [0.4, 0.2]
    assert ax.get_lines()[2].get_ydata()[0] == 0.4  # the best neuron, dotted


def test_the_network_frontier_draws_each_method_and_the_neurons_baselines():
    rows = [{"model": "digits_mlp", "method": m, "neurons": 16, "n_features": n,
             "status": "ok", "n_trials": 3, "l0": l0, "explained_variance": ev,
             "top_share": ts, "neuron_l0": 13.0, "neuron_top_share": 0.2}
            for m, n, l0, ev, ts in [("sae", 32, 12, 0.98, 0.4), ("sae", 64, 16, 0.97,
                                     0.5), ("ica", 32, 15, 1.0, 0.2)]]  # fmt: skip
    truth = {**rows[0], "model": "random", "sparsity": 0.1, "top_share": 0.99}
    fig = frontier_figure(pd.DataFrame([*rows, truth]))
    ev, share = fig.axes[:2]
    drawn = [list(line.get_ydata()) for line in share.get_lines()]
    assert [0.4, 0.5] in drawn and [0.2] in drawn  # sae's line, ica's point
    assert not any(0.99 in y for y in drawn)  # the toy cell is not a network's
    labels = share.get_legend_handles_labels()[1]
    assert "the neurons' mean top share" in labels and "the neurons' L0" in labels
    assert "the neurons' mean top share" not in ev.get_legend_handles_labels()[1]
