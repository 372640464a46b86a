import json

from sweep import schema
from sweep.callbacks import summarize
from sweep.folders import cell_statuses


def test_summary_counts_and_names_bad_cells(tmp_path):
    for name, status in [("a", "ok"), ("b", "cached"), ("c", "failed")]:
        (tmp_path / name / ".hydra").mkdir(parents=True)
        text = json.dumps({"status": status, "error": f"E{name}"})
        (tmp_path / name / schema.STATUS_FILE).write_text(text)
    (tmp_path / "d" / ".hydra").mkdir(parents=True)  # Hydra made it, the job died
    (tmp_path / "e" / ".hydra").mkdir(parents=True)
    (tmp_path / "e" / schema.STATUS_FILE).write_text("{truncated")
    (tmp_path / schema.ANALYSIS_DIR / ".hydra").mkdir(parents=True)  # never a cell
    statuses = cell_statuses(tmp_path)
    assert sorted(statuses) == ["a", "b", "c", "d", "e"]
    line, bad = summarize(statuses)
    assert line == "5 cells: 1 ok, 1 failed, 1 cached, 2 missing"
    assert bad[0] == "failed c: Ec"
    assert [b.split(":")[0] for b in bad[1:]] == ["missing d", "missing e"]
