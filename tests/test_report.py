"""``mmtune report``: deterministic Markdown + self-contained HTML + PNGs, for ablation and tuning results."""

from __future__ import annotations

import base64
import re

import pytest
from helpers.ablation import make_results, make_tuning_results
from mmtune.analysis.report import write_report
from mmtune.cli import main


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("report"))


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_report_is_byte_identical_when_run_twice(results_dir, tmp_path):
    first = write_report(results_dir, tmp_path / "a")
    second = write_report(results_dir, tmp_path / "b")
    a, b = snapshot(first.out), snapshot(second.out)
    assert set(a) == set(b) and {"report.md", "report.html", "effects.png", "cd_covid_auroc.png"} <= set(a)
    assert all(a[name] == b[name] for name in a), [n for n in a if a[n] != b[n]]


def test_report_contents_tables_sentences_hashes_and_inlined_images(results_dir, tmp_path):
    paths = write_report(results_dir, tmp_path / "r")
    md = paths.markdown.read_text(encoding="utf-8")
    for section in (
        "## Findings",
        "## Leaderboard",
        "### Main effects",
        "### Interactions",
        "## Pooled out-of-fold",
        "## Critical-difference",
        "## ROC curves",
        "## Per-split spread",
        "## Missing-modality robustness",
        "## Diverged, errored, unfinished and missing trials",
        "## Aim runs",
    ):
        assert section in md
    assert "- Switching modality from image to image+clinical improves morbidity AUROC by" in md
    assert "| 1 | image+clinical / covid+morbidity | 0.99" in md
    assert "| modality: image+clinical vs image | morbidity AUROC | +0.2" in md
    hashes = set(re.findall(r"\b[0-9a-f]{24}\b", md))
    assert len(hashes) == 24  # every trial's Aim run
    assert f"aim up --repo {tmp_path.parent}" in md or "aim up --repo " in md
    pngs = [p for p in paths.images if p.suffix == ".png"]
    assert len(pngs) == 6 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    html = paths.html.read_text(encoding="utf-8")
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(inlined) == len(pngs)
    assert {base64.b64decode(x) for x in inlined} == {p.read_bytes() for p in pngs}
    assert not re.search(r'(src|href)="(?!data:|http://127\.0\.0\.1)', html)  # nothing external but Aim links
    assert "<table>" in html and "improves morbidity AUROC by" in html


def test_report_on_missing_and_errored_trials_warns_and_still_writes(tmp_path, capsys):
    out = make_results(tmp_path, drop=("image / covid @ f0/s0",), errored=("image / covid+morbidity @ f2/s1",))
    with pytest.raises(SystemExit) as info:
        main(["report", str(out)])
    assert info.value.code == 0
    captured = capsys.readouterr()
    assert "warning: 1 of 24 planned trials are errored" in captured.err
    assert "warning: 1 of 24 planned trials are missing" in captured.err
    md = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert "> **warning:** 1 of 24 planned trials are missing" in md
    assert "| image / covid @ f0/s0 | missing | MISSING | - |" in md
    assert "| image / covid+morbidity @ f2/s1 | errored | ERROR | RuntimeError: crafted failure |" in md
    assert "24 planned trials: 22 usable, 1 errored, 1 missing" in md


def test_report_on_tuning_results_uses_patient_level_intervals(tmp_path):
    paths = write_report(make_tuning_results(tmp_path))
    md = paths.markdown.read_text(encoding="utf-8")
    assert "Tuning study **tuned**: 4 trials: 4 usable (usable = complete, finite metrics)" in md
    assert "patients (DeLong)" in md and "patients (bootstrap)" in md  # covid AUROC / multiclass morbidity AUROC
    assert "## DeLong tests (best vs next)" in md
    assert "model.fusion.name" not in md.split("## Leaderboard")[0]
    assert "(fusion=late)" in md  # searched keys shown by their short, distinct names


def test_report_errors_are_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path / "nope")])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: results directory not found"
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path / "empty")])
    assert info.value.code == 2
    assert not (tmp_path / "empty" / "report").exists()
