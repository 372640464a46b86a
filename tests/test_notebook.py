"""The example notebook (docs/example.ipynb) runs from top to bottom and shows what
it says."""

import nbformat
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "docs" / "example.ipynb"


def test_the_example_notebook_runs_and_shows_its_tables():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()  # fmt: skip
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    texts = [o.get("data", {}).get("text/plain", "") for o in outputs]
    assert any("success_rate" in t and "support_f1" in t for t in texts)  # run_cell
    assert any("neurons" in t and "sparsity" in t for t in texts)  # the pivot
    assert any("recovery_mse" in t for t in texts)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure
