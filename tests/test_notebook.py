"""The example notebook (examples/notebook.ipynb), executed as a person runs it."""

from pathlib import Path

NOTEBOOK = Path(__file__).parents[1] / "examples" / "notebook.ipynb"


def test_example_notebook_runs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = " ".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "confetti" in html  # the scan's summary and the tables render as HTML
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the evidence figure
    assert "removed" in html  # the repair log
