"""Readers and per-patient decoding on real files written by SimpleITK (no Ray here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from helpers.rawdata import (
    base_card,
    make_ictcf,
    truncate,
    write_card,
    write_csv,
    write_dicom_series,
    write_nifti,
    write_slices,
)
from mmtune.config.card import ImageSpec, Window, load_card
from mmtune.data import images as im
from mmtune.data.clinical import read_table
from mmtune.data.decode import PatientDecoder
from mmtune.data.layouts import discover

WIDE = Window(center=0, width=4000)  # HU -2000..2000 -> 0..1


def _spec(**kw) -> ImageSpec:
    return ImageSpec(**{"kind": "stack2d", "slices": 4, "size": 8, "window": WIDE, **kw})


def _decode(root: Path, job: dict, spec: ImageSpec, masks: bool = False):
    row = PatientDecoder(spec, root, masks).decode(job)
    shape = spec.shape
    image = None if row["image"] is None else np.frombuffer(row["image"], np.float16).reshape(shape).astype(float)
    mask = None if row["mask"] is None else np.frombuffer(row["mask"], np.uint8).reshape(shape)
    return row, image, mask


def test_dicom_series_sorted_by_position_and_rescaled_to_hu(tmp_path: Path) -> None:
    hu = np.stack([np.full((12, 12), -1000.0 + 300 * k) for k in range(4)])
    paths = write_dicom_series(tmp_path / "CT", hu, file_order=[2, 0, 3, 1], slope=2.0, intercept=-1024.0)
    stored = pydicom.dcmread(paths[0])
    assert float(stored.RescaleSlope) == 2.0 and float(stored.RescaleIntercept) == -1024.0
    assert int(stored.pixel_array[0, 0]) == (-400 + 1024) // 2  # file 1 holds slice 2 (-400 HU), stored != HU
    assert im.read_slice(paths[0])[0, 0] == pytest.approx(-400.0)
    job = {"patient_id": "1", "kind": "dicom", "files": [f"CT/{p.name}" for p in paths], "mask": None}
    row, image, _ = _decode(tmp_path, job, _spec())
    expected = (hu[:, 0, 0] + 2000) / 4000  # ascending z, whatever the file names say
    np.testing.assert_allclose(image[:, 4, 4], expected, atol=1e-3)
    assert json.loads(row["skipped"]) == [] and len(json.loads(row["files"])) == 4


def test_dicom_volume3d_through_series_reader(tmp_path: Path) -> None:
    hu = np.stack([np.full((12, 12), -1000.0 + 300 * k) for k in range(4)])
    paths = write_dicom_series(tmp_path / "CT", hu, file_order=[3, 1, 0, 2])
    mask = np.zeros((4, 12, 12), np.uint8)
    mask[3] = 1
    write_nifti(tmp_path / "mask.nii.gz", mask)
    job = {"patient_id": "1", "kind": "dicom", "files": [f"CT/{p.name}" for p in paths], "mask": "mask.nii.gz"}
    spec = ImageSpec(kind="volume3d", depth=4, size=6, window=WIDE)
    _, image, out_mask = _decode(tmp_path, job, spec, masks=True)
    assert image.shape == (4, 6, 6)
    assert np.all(np.diff(image[:, 3, 3]) > 0.05)  # inferior -> superior, slices in position order
    assert out_mask[3].all() and not out_mask[:3].any()


def test_png_and_jpg_slices_scaled_from_8bit(tmp_path: Path) -> None:
    planes = np.stack([np.full((10, 10), v, np.uint8) for v in (0, 51, 102, 255)])
    for suffix, tol in ((".png", 1e-3), (".jpg", 0.02)):
        paths = write_slices(tmp_path / suffix[1:], planes, suffix)
        job = {"patient_id": "a", "kind": "slice", "files": [p.relative_to(tmp_path).as_posix() for p in paths]}
        _, image, _ = _decode(tmp_path, job, _spec())
        np.testing.assert_allclose(image[:, 2, 2], [0, 0.2, 0.4, 1.0], atol=tol)


def test_unreadable_slices_are_skipped_and_k_rechosen(tmp_path: Path) -> None:
    planes = np.stack([np.full((10, 10), 20 * (k + 1), np.uint8) for k in range(5)])
    paths = write_slices(tmp_path / "CT", planes, ".jpg")
    truncate(paths[2])
    (tmp_path / "CT" / "6.png").write_bytes(b"not a png at all")
    files = [f"CT/{p.name}" for p in paths] + ["CT/6.png"]
    job = {"patient_id": "a", "kind": "slice", "files": files, "mask": None}
    row, image, _ = _decode(tmp_path, job, _spec(slices=3))
    skipped = dict(json.loads(row["skipped"]))
    assert skipped["CT/3.jpg"] == "truncated JPEG (no end-of-image marker)"
    assert skipped["CT/6.png"].startswith("unreadable")
    # 4 readable slices (20, 40, 80, 100) -> 3 evenly chosen, none of them the truncated one
    assert sorted(np.round(image[:, 5, 5] * 255).astype(int).tolist()) == [20, 80, 100]
    assert len(json.loads(row["files"])) == 6  # hashes cover every source file, skipped or not


def test_patient_without_readable_slice_reports_error(tmp_path: Path) -> None:
    paths = write_slices(tmp_path / "CT", np.zeros((2, 8, 8), np.uint8), ".jpg")
    for path in paths:
        truncate(path)
    job = {"patient_id": "a", "kind": "slice", "files": [f"CT/{p.name}" for p in paths], "mask": None}
    row, image, _ = _decode(tmp_path, job, _spec())
    assert image is None and row["error"] == "no readable image file (2 skipped)"


def test_fewer_slices_than_k_are_padded_and_mask_follows(tmp_path: Path) -> None:
    paths = write_slices(tmp_path / "CT", np.full((2, 8, 8), 255, np.uint8), ".png")
    mask = np.zeros((2, 8, 8), np.uint8)
    mask[1, :4] = 1
    write_nifti(tmp_path / "m.nii.gz", mask)
    job = {"patient_id": "a", "kind": "slice", "files": [f"CT/{p.name}" for p in paths], "mask": "m.nii.gz"}
    _, image, out_mask = _decode(tmp_path, job, _spec(slices=4, size=8), masks=True)
    assert image[:2].min() == 1.0 and image[2:].max() == 0.0
    assert out_mask[1, :4].all() and out_mask[1, 4:].sum() == 0 and out_mask[[0, 2, 3]].sum() == 0


def test_mask_with_wrong_depth_is_dropped_with_warning(tmp_path: Path) -> None:
    paths = write_slices(tmp_path / "CT", np.zeros((3, 8, 8), np.uint8), ".png")
    write_nifti(tmp_path / "m.nii.gz", np.ones((5, 8, 8), np.uint8))
    job = {"patient_id": "a", "kind": "slice", "files": [f"CT/{p.name}" for p in paths], "mask": "m.nii.gz"}
    row, image, mask = _decode(tmp_path, job, _spec(slices=3), masks=True)
    assert image is not None and mask is None
    assert "mask has 5 slices but the patient has 3" in json.loads(row["warnings"])[0]


def test_nifti_volume_stack_and_volume3d(tmp_path: Path) -> None:
    volume = np.stack([np.full((20, 20), -1000 + 200 * k, np.int16) for k in range(6)])
    mask = np.zeros((6, 20, 20), np.uint8)
    mask[3, 5:15, 5:15] = 1
    write_nifti(tmp_path / "v.nii.gz", volume)
    write_nifti(tmp_path / "m.nii.gz", mask)
    job = {"patient_id": "v", "kind": "volume", "files": ["v.nii.gz"], "mask": "m.nii.gz"}
    _, image, out_mask = _decode(tmp_path, job, _spec(slices=3, size=10), masks=True)
    assert im.even_indices(6, 3) == [1, 3, 5]
    np.testing.assert_allclose(image[:, 5, 5], (np.array([-800, -400, 0]) + 2000) / 4000, atol=1e-3)
    assert out_mask[1, 3:7, 3:7].all() and out_mask[[0, 2]].sum() == 0
    spec3d = ImageSpec(kind="volume3d", depth=3, size=10, window=WIDE)
    _, image3d, mask3d = _decode(tmp_path, job, spec3d, masks=True)
    assert image3d.shape == (3, 10, 10) and mask3d.shape == (3, 10, 10)
    assert np.all(np.diff(image3d[:, 5, 5]) > 0) and mask3d[1].sum() > 0
    fixed = ImageSpec(kind="volume3d", depth=4, size=12, spacing=[5.0, 2.0, 2.0], window=WIDE)
    _, image_fixed, _ = _decode(tmp_path, job, fixed)
    assert image_fixed.shape == (4, 12, 12)
    assert image_fixed[:, 0, 0].max() == 0.0  # 12 x 2 mm > the 16 mm field of view: padded corners


def test_clahe_raises_local_contrast_within_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    halves = np.concatenate([rng.normal(76, 5, (2, 32, 16)), rng.normal(178, 5, (2, 32, 16))], axis=2)
    paths = write_slices(tmp_path / "CT", halves.clip(0, 255).astype(np.uint8), ".png")
    job = {"patient_id": "a", "kind": "slice", "files": [f"CT/{p.name}" for p in paths], "mask": None}
    _, plain, _ = _decode(tmp_path, job, _spec(slices=2, size=32))
    _, equalised, _ = _decode(tmp_path, job, _spec(slices=2, size=32, clahe={"radius": 5, "alpha": 0.3, "beta": 0.3}))
    assert equalised.min() >= 0 and equalised.max() <= 1
    assert equalised[:, :, :16].std() > 2 * plain[:, :, :16].std()  # texture inside a region is enhanced


def test_discover_ictcf_layout(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    facts = make_ictcf(raw, n=8)
    (raw / "Patient 3" / "CT" / "notes.txt").write_text("x")
    empty = raw / "Patient 99" / "CT"
    empty.mkdir(parents=True)
    (empty / "readme.txt").write_text("x")
    (raw / "stray-folder").mkdir()
    card = load_card(write_card(tmp_path / "card.yaml", base_card()))
    table = read_table(raw / "clinical.csv", card.patient_id)
    found = discover(raw, table, card, raw / "clinical.csv")
    assert sorted(found.patients, key=int) == [str(i) for i in range(1, 9)]
    assert found.patients["4"].kind == "dicom" and found.patients["1"].kind == "slice"
    assert found.patients["2"].files == [f"Patient 2/CT/{k}.jpg" for k in range(1, 5)]
    assert found.patients["2"].mask == "Patient 2/lesion_mask.nii.gz"
    assert found.skipped == {
        "Patient 3/CT/notes.txt": "not an image file (unknown extension)",
        "Patient 99/CT/readme.txt": "not an image file (unknown extension)",
    }
    assert "99" in found.no_images
    assert set(facts["dicom"]) == {"4", "8"}


def test_discover_manifest_layout(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_nifti(raw / "images" / "a.nii.gz", np.zeros((3, 8, 8), np.int16))
    write_slices(raw / "slices", np.zeros((2, 8, 8), np.uint8), ".png")
    write_dicom_series(raw / "dicom_b", np.zeros((2, 8, 8)))
    rows = [
        {"id": "a", "image": "images/a.nii.gz", "mask": "masks/a.nii.gz", "y": "1"},
        {"id": "b", "image": "dicom_b", "mask": "", "y": "0"},
        {"id": "c", "image": "slices/1.png; slices/2.png;slices/9.png", "mask": "", "y": "0"},
        {"id": "d", "image": "images/missing.nii.gz", "mask": "", "y": "1"},
    ]
    write_csv(raw / "manifest.csv", rows)
    card = base_card(
        source={"layout": "manifest", "path": "raw", "clinical_table": "manifest.csv", "mask_column": "mask"},
        patient_id="id",
        group=None,
        label_columns=[],
        clinical={},
        tasks=[{"name": "y", "kind": "binary", "column": "y", "classes": ["0", "1"]}],
        split={"k_folds": 2, "test_fraction": 0.0},
    )
    loaded = load_card(write_card(tmp_path / "card.yaml", card))
    table = read_table(raw / "manifest.csv", "id")
    found = discover(raw.resolve(), table, loaded, (raw / "manifest.csv").resolve())
    assert found.patients["a"].kind == "volume" and found.patients["a"].mask is None
    assert found.patients["b"].kind == "dicom" and len(found.patients["b"].files) == 2
    assert found.patients["c"].files == ["slices/1.png", "slices/2.png"]
    assert found.skipped["slices/9.png"] == "image file of patient 'c' not found"
    assert found.skipped["masks/a.nii.gz"] == "mask file of patient 'a' not found"
    assert "d" in found.no_images


def test_slice_files_as_volume3d(tmp_path: Path) -> None:
    planes = np.stack([np.full((12, 12), 40 * (k + 1), np.uint8) for k in range(4)])
    paths = write_slices(tmp_path / "CT", planes, ".png")
    mask = np.zeros((4, 12, 12), np.uint8)
    mask[2:] = 1
    write_nifti(tmp_path / "m.nii.gz", mask)
    job = {"patient_id": "a", "kind": "slice", "files": [f"CT/{p.name}" for p in paths], "mask": "m.nii.gz"}
    spec = ImageSpec(kind="volume3d", depth=2, size=6)
    _, image, out_mask = _decode(tmp_path, job, spec, masks=True)
    assert image.shape == (2, 6, 6)
    np.testing.assert_allclose(image[:, 3, 3], [60 / 255, 140 / 255], atol=0.01)  # pairs of slices averaged
    assert out_mask[1].all() and not out_mask[0].any()


def test_bench_decode_only_baseline_reads_the_patient_files(tmp_path: Path) -> None:
    from mmtune.bench.prepare import PeakMemory, decode_only

    paths = write_slices(tmp_path / "CT", np.zeros((3, 8, 8), np.uint8), ".png")
    write_nifti(tmp_path / "m.nii.gz", np.zeros((3, 8, 8), np.uint8))
    jobs = [{"patient_id": "a", "kind": "slice", "files": [f"CT/{p.name}" for p in paths], "mask": "m.nii.gz"}]
    with PeakMemory() as memory:
        seconds, files = decode_only(tmp_path, jobs)
    assert files == 4 and seconds > 0
    assert memory.peak > 10 * 2**20  # at least this Python process


def test_mask_stays_aligned_when_a_slice_is_skipped(tmp_path: Path) -> None:
    planes = np.stack([np.full((8, 8), 50 * k, np.uint8) for k in range(5)])
    paths = write_slices(tmp_path / "CT", planes, ".jpg")
    truncate(paths[1])
    mask = np.zeros((5, 8, 8), np.uint8)
    for k in range(5):
        mask[k, : k + 1, 0] = 1  # slice k marks k + 1 rows
    write_nifti(tmp_path / "m.nii.gz", mask)
    job = {"patient_id": "a", "kind": "slice", "files": [f"CT/{p.name}" for p in paths], "mask": "m.nii.gz"}
    row, image, out_mask = _decode(tmp_path, job, _spec(slices=4, size=8), masks=True)
    assert list(dict(json.loads(row["skipped"]))) == ["CT/2.jpg"]
    np.testing.assert_allclose(image[:, 4, 4] * 255, [0, 100, 150, 200], atol=3)
    assert out_mask[:, :, 0].sum(axis=1).tolist() == [1, 3, 4, 5]  # mask slices 0, 2, 3, 4
