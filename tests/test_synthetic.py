"""The built-in synthetic data: files read back with SimpleITK / pydicom / pandas, the planted signal, the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from mmtune.cli import main
from mmtune.data.synthetic import SynthArgumentError, generate
from mmtune.data.synthetic import clinical as clin
from mmtune.data.synthetic.latent import (
    CLASSES,
    LatentParams,
    bayes_aurocs,
    binary_posteriors,
    posterior_table,
    sample_latents,
)
from mmtune.data.synthetic.prognosis import PROGNOSIS_PARAMS
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

TINY = {"patients": 60, "size": 32, "slices": 4, "seed": 7}  # the conftest ``synthetic_raw`` arguments
LABS = ["LY", "CRP", "D-Dimer", "IL-6", "ALB", "PLT", "WBC", "NE", "LDH", "PCT"]
COLUMNS = [
    "Patient ID",
    "Hospital",
    "Age",
    "Gender",
    "Body temperature",
    "Underlying diseases",
    "SARS-CoV-2 nucleic acids",
    "Computed tomography (CT)",
    "Morbidity outcome",
    "Mortality outcome",
]


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def read_truth(root: Path) -> dict:
    return json.loads((root / "truth.json").read_text(encoding="utf-8"))


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def dicom_positions(folder: Path) -> dict[str, float]:
    """File name -> ImagePositionPatient z, read with pydicom (headers only)."""
    return {
        p.name: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in folder.glob("*.dcm")
    }


# --------------------------------------------------------------------------------------------- ictcf layout


def test_ictcf_layout_counts_and_defects(synthetic_raw: Path) -> None:
    truth = read_truth(synthetic_raw)
    table = read_table(synthetic_raw / "clinical.csv")
    post = pd.read_csv(synthetic_raw / "posteriors.csv")
    defects = {kind: int(pid) for kind, pid in truth["defects"].items()}
    assert set(defects) == {"truncated", "empty_ct", "no_folder", "no_row"}
    assert len(set(defects.values())) == 4

    n = TINY["patients"]
    folders = sorted(p.name for p in synthetic_raw.iterdir() if p.is_dir())
    assert len(folders) == n - 1 and f"Patient {defects['no_folder']}" not in folders
    ids = table["Patient ID"].astype(int).tolist()
    assert ids == sorted(ids) and len(ids) == n - 1
    assert defects["no_row"] not in ids and defects["no_folder"] in ids
    assert (synthetic_raw / f"Patient {defects['no_row']}" / "CT").is_dir()
    assert list((synthetic_raw / f"Patient {defects['empty_ct']}" / "CT").iterdir()) == []
    assert len(post) == n and post["patient_id"].tolist() == list(range(1, n + 1))

    jpg = [p for p in folders if any((synthetic_raw / p / "CT").glob("*.jpg"))]
    dcm = [p for p in folders if any((synthetic_raw / p / "CT").glob("*.dcm"))]
    assert not set(jpg) & set(dcm)
    assert len(jpg) + len(dcm) == n - 2  # minus no_folder and empty_ct
    assert round(0.25 * n) - 2 <= len(dcm) <= round(0.25 * n)  # a folder defect may hit a DICOM patient
    assert len(dcm) == (post["image_format"] == "dicom").sum() and len(jpg) == (post["image_format"] == "jpg").sum()
    for name in jpg + dcm:
        assert len(list((synthetic_raw / name / "CT").iterdir())) == TINY["slices"]
    masks = [p for p in folders if (synthetic_raw / p / "lesion_mask.nii.gz").is_file()]
    assert 0.6 * n < len(masks) < len(jpg) + len(dcm)  # most patients, not all

    # cut mid-file: shorter and without the JPEG end-of-image marker (libjpeg may decode the rest as grey)
    truncated = sorted((synthetic_raw / f"Patient {defects['truncated']}" / "CT").glob("*.jpg"))
    assert len(truncated) == TINY["slices"]
    intact = [p.read_bytes().endswith(b"\xff\xd9") for p in truncated]
    assert intact.count(False) == 1
    sizes = [p.stat().st_size for p in truncated]
    assert sizes[intact.index(False)] < 0.7 * np.median(sizes)


def test_jpg_slices_are_windowed_uint8_with_hospital_shift(synthetic_raw: Path) -> None:
    table = read_table(synthetic_raw / "clinical.csv").set_index("Patient ID")
    corners: dict[str, list[float]] = {}
    for folder in sorted(synthetic_raw.glob("Patient */CT")):
        files = sorted(folder.glob("*.jpg"))
        pid = folder.parent.name.split()[1]
        if not files or pid not in table.index or pid == read_truth(synthetic_raw)["defects"]["truncated"]:
            continue
        assert [p.name for p in files] == [f"{k:04d}.jpg" for k in range(1, TINY["slices"] + 1)]
        image = sitk.ReadImage(str(files[0]))
        array = sitk.GetArrayFromImage(image)
        assert array.shape == (TINY["size"], TINY["size"]) and array.dtype == np.uint8
        assert image.GetNumberOfComponentsPerPixel() == 1
        corners.setdefault(table.loc[pid, "Hospital"], []).append(float(np.median(array[:3, :3])))
    assert len(corners) >= 3
    # air (-1000 HU) lands on a different grey level per hospital (scale/shift of its scanner)
    medians = sorted(np.median(v) for v in corners.values())
    assert min(np.diff(medians)) >= 5


def test_dicom_series_rescale_positions_and_fake_phi(synthetic_raw: Path) -> None:
    truth = read_truth(synthetic_raw)
    hospitals = {h["name"] for h in truth["hospitals"]}
    shuffled = 0
    for folder in sorted(synthetic_raw.glob("Patient */CT")):
        files = sorted(folder.glob("*.dcm"))
        if not files:
            continue
        positions = dicom_positions(folder)
        by_name = [positions[p.name] for p in files]
        by_position = sorted(by_name)
        assert by_position == pytest.approx(
            [by_position[0] + 5.0 * k for k in range(TINY["slices"])]
        )  # one slice every SliceThickness
        shuffled += by_name != by_position

        reader = sitk.ImageSeriesReader()
        names = reader.GetGDCMSeriesFileNames(str(folder))
        reader.SetFileNames(names)
        volume = reader.Execute()
        hu = sitk.GetArrayFromImage(volume)
        assert hu.shape == (TINY["slices"], TINY["size"], TINY["size"])
        assert volume.GetSpacing()[2] == pytest.approx(5.0) and volume.GetSpacing()[0] == pytest.approx(350 / 32, 1e-3)
        assert [positions[Path(n).name] for n in names] == by_position  # GDCM sorts by position, not by name

        ds = pydicom.dcmread(names[0])
        assert ds.Modality == "CT" and ds.SliceThickness == 5
        assert str(ds.PatientName).startswith("SYNTH^PATIENT") and ds.PatientBirthDate and ds.StudyDate
        assert ds.InstitutionName in hospitals
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        assert intercept in (-1024.0, -1000.0) and slope == 1.0
        stored = ds.pixel_array.astype(np.int32)
        assert np.array_equal(slope * stored + intercept, hu[0])  # SimpleITK applies the same rescale
        assert ds.pixel_array.dtype == np.int16
        assert -1130 <= np.median(hu[:, :3, :3]) <= -850  # air in HU, whatever the scanner
        assert np.median(stored[:3, :3]) > -200  # the stored values are not HU: the rescale matters
        series = {pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in files}
        assert len(series) == 1
    assert shuffled >= 2


def test_masks_align_with_sorted_slices(synthetic_raw: Path) -> None:
    post = pd.read_csv(synthetic_raw / "posteriors.csv").set_index("patient_id")
    checked = {"jpg": 0, "dicom": 0}
    mask_sums, fractions = [], []
    for mask_path in sorted(synthetic_raw.glob("Patient */lesion_mask.nii.gz")):
        pid = int(mask_path.parent.name.split()[1])
        mask_image = sitk.ReadImage(str(mask_path))
        mask = sitk.GetArrayFromImage(mask_image)
        assert mask.shape == (TINY["slices"], TINY["size"], TINY["size"]) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1} and mask.sum() > 0
        mask_sums.append(int(mask.sum()))
        fractions.append(post.loc[pid, "lesion_fraction"])
        if mask.sum() < 20:
            continue
        folder = mask_path.parent / "CT"
        if post.loc[pid, "image_format"] == "dicom":
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
            hu = sitk.GetArrayFromImage(reader.Execute())
            assert np.median(hu[mask > 0]) > -750  # lesions are denser than lung (-860 HU)
            checked["dicom"] += 1
        elif post.loc[pid, "defect"] != "truncated":
            stack = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted(folder.glob("*.jpg"))])
            assert np.median(stack[mask > 0]) > 102  # window(-750 HU)
            checked["jpg"] += 1
    assert checked["jpg"] >= 5 and checked["dicom"] >= 2
    assert spearmanr(mask_sums, fractions).statistic > 0.9


def test_clinical_table_columns_values_and_quirks(synthetic_raw: Path) -> None:
    table = read_table(synthetic_raw / "clinical.csv")
    assert list(table.columns[:10]) == COLUMNS
    assert set(LABS) <= set(table.columns)
    for extra in ("Lesion fraction", "Ground-glass opacity", "Consolidation", "Pleural effusion"):
        assert extra in table.columns
    cells = table[LABS].to_numpy().ravel()
    for quirk in ("&#8593;", "&#8595;", "↑", "↓"):
        assert any(c.endswith(quirk) for c in cells), quirk
    assert any(c.startswith("<") for c in cells) and any(c.startswith(">") for c in cells)
    assert (cells == "").sum() > 0.05 * len(cells)
    assert table["Body temperature"].str.fullmatch(r"\d\d\.\d°C").sum() > 10
    assert table["Body temperature"].str.fullmatch(r"\d\d\.\d").sum() > 3
    assert set(table["Gender"]) == {"Male", "Female"}
    assert (table["Underlying diseases"] == "").any() and (table["Underlying diseases"] != "").any()
    morbidity = set(table["Morbidity outcome"])
    assert morbidity <= {
        "Control",
        "Control (Community-acquired pneumonia)",
        "Mild",
        "Regular",
        "Severe",
        "Critically ill",
        "Suspected",
        "Suspected (COVID-19-confirmed later)",
    }
    assert {"Suspected", "Suspected (COVID-19-confirmed later)", "Control", "Severe"} <= morbidity
    assert set(table["Mortality outcome"]) == {"Cured", "Deceased", "Unknown"}
    assert set(table["SARS-CoV-2 nucleic acids"]) == set(table["Computed tomography (CT)"]) == {"Positive", "Negative"}
    assert table["Hospital"].nunique() == 3
    ages = table["Age"].astype(int)
    assert ages.between(18, 92).all()


def test_labels_in_table_match_the_generating_truth(synthetic_raw: Path) -> None:
    table = read_table(synthetic_raw / "clinical.csv").set_index("Patient ID")
    post = pd.read_csv(synthetic_raw / "posteriors.csv")
    post = post[post["in_table"] == 1]
    post.index = post["patient_id"].astype(str)
    raw_to_class = {
        "Control": "control",
        "Control (Community-acquired pneumonia)": "control",
        "Mild": "type1",
        "Regular": "type1",
        "Severe": "type2",
        "Critically ill": "type2",
    }
    labelled = table[~table["Morbidity outcome"].str.startswith("Suspected")]
    assert (
        labelled["Morbidity outcome"].map(raw_to_class).tolist() == post.loc[labelled.index, "morbidity_class"].tolist()
    )
    known = table[table["Mortality outcome"] != "Unknown"]
    assert (known["Mortality outcome"] == "Deceased").astype(int).tolist() == post.loc[known.index, "deceased"].tolist()
    assert np.allclose(table["Lesion fraction"].astype(float), post.loc[table.index, "lesion_fraction"], atol=6e-5)
    covid = post.loc[labelled.index, "covid"] == 1
    positive = labelled["SARS-CoV-2 nucleic acids"] == "Positive"
    assert (positive == covid).mean() > 0.8  # consistent-ish, as in the real release
    counts = post["morbidity_class"].value_counts()
    assert all(8 <= counts[c] <= 32 for c in CLASSES)  # 35/40/25 % of 60, loosely


def test_truth_json_aurocs_ordered_as_planted(synthetic_raw: Path) -> None:
    truth = read_truth(synthetic_raw)
    auroc = truth["bayes_auroc"]
    assert auroc["covid"]["image"] >= 0.9 and auroc["covid"]["clinical"] == 0.5
    assert abs(auroc["covid"]["both"] - auroc["covid"]["image"]) < 0.02
    morbidity = auroc["morbidity"]
    assert morbidity["both"] > morbidity["image"] > 0.6 and morbidity["both"] > morbidity["clinical"] > 0.55
    for key in ("latent_params", "render_params", "labs", "hospitals", "arguments", "n_evaluable"):
        assert key in truth
    assert truth["arguments"] == {**TINY, "variant": "ictcf", "hospitals": 3, "dicom_fraction": 0.25, "quirks": True}
    # truth.json AUROCs are recomputable from posteriors.csv
    post = pd.read_csv(synthetic_raw / "posteriors.csv")
    ev = post[post["evaluable"] == 1]
    assert roc_auc_score(ev["covid"], ev["p_covid_image"]) == pytest.approx(auroc["covid"]["image"], abs=1e-4)
    assert len(ev) == truth["n_evaluable"]["covid"]


# --------------------------------------------------------------------------------------------- generating model


@pytest.fixture(scope="module")
def big_latents():
    params = LatentParams()
    lat = sample_latents(30000, params, np.random.default_rng(123))
    return params, lat, posterior_table(params, lat)


def test_class_proportions_and_bayes_aurocs_at_scale(big_latents) -> None:
    params, lat, post = big_latents
    shares = np.bincount(lat.cls, minlength=3) / len(lat)
    assert np.allclose(shares, params.prior, atol=0.015)
    auroc = bayes_aurocs(post, lat.cls, lat.deceased, np.ones(len(lat), dtype=bool))
    assert auroc["covid"]["image"] >= 0.97 and auroc["covid"]["clinical"] == 0.5
    assert auroc["covid"]["both"] - auroc["covid"]["image"] < 0.005
    m = auroc["morbidity"]
    assert 0.8 <= m["image"] <= 0.92 and 0.65 <= m["clinical"] <= 0.78 and m["both"] >= m["image"] + 0.05
    assert auroc["mortality"]["both"] > max(auroc["mortality"]["image"], auroc["mortality"]["clinical"])


def test_posteriors_are_calibrated(big_latents) -> None:
    """Exact Bayes posteriors match the observed frequencies (so they are the generating truth, not a guess)."""
    _, lat, post = big_latents
    for m in ("image", "clinical", "both"):
        assert abs(post[f"p_mortality_{m}"].mean() - lat.deceased.mean()) < 0.006
        p = post[f"p_morbidity_type2_{m}"]
        bins = np.digitize(p, [0.2, 0.4, 0.6, 0.8])
        for b in np.unique(bins):
            sel = bins == b
            if sel.sum() > 500:
                assert abs(p[sel].mean() - (lat.cls[sel] == 2).mean()) < 0.03


def test_labs_carry_severity_but_no_covid_signal(big_latents) -> None:
    _, lat, _ = big_latents
    rng = np.random.default_rng(5)
    covid = lat.cls > 0
    for lab in clin.LABS:
        values = clin.lab_value(lab, lat.s, rng)
        assert abs(roc_auc_score(covid, values) - 0.5) < 0.02, lab.name
        type2 = roc_auc_score(lat.cls[covid] == 2, values[covid])
        if lab.effect == 0.0:
            assert abs(type2 - 0.5) < 0.02, lab.name
        else:
            assert abs(type2 - 0.5) > 0.1, lab.name


def test_prognosis_variant_signal_at_scale() -> None:
    lat = sample_latents(20000, PROGNOSIS_PARAMS, np.random.default_rng(0))
    assert set(np.unique(lat.cls)) == {1, 2}
    severe = lat.cls == 2
    auroc = {m: roc_auc_score(severe, p) for m, p in binary_posteriors(PROGNOSIS_PARAMS, lat, 2).items()}
    assert auroc["image"] > 0.75 and auroc["clinical"] > 0.75 and auroc["both"] > max(auroc["image"], auroc["clinical"])


# --------------------------------------------------------------------------------------------- prognosis variant


@pytest.fixture(scope="module")
def prognosis_raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prognosis") / "raw"
    generate(out, patients=40, size=32, slices=4, seed=3, variant="prognosis")
    return out


def test_prognosis_layout(prognosis_raw: Path) -> None:
    manifest = read_table(prognosis_raw / "manifest.csv")
    assert list(manifest.columns) == [
        "patient_id",
        "image",
        "mask",
        "centre",
        "age",
        "sex",
        "CRP",
        "LY",
        "LDH",
        "D-Dimer",
        "prognosis",
        "severity_score",
    ]
    assert manifest["patient_id"].tolist() == [f"P{i:04d}" for i in range(1, 41)]
    assert not manifest["patient_id"].str.fullmatch(r"\d+").any()  # never collides with ictcf's integer ids
    truth = read_truth(prognosis_raw)
    missing = truth["defects"]["missing_image"]
    for row in manifest.itertuples():
        image = prognosis_raw / row.image
        assert row.image == f"images/{row.patient_id}.nii.gz"
        assert image.is_file() == (row.patient_id != missing)
        if row.mask:
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(prognosis_raw / row.mask)))
            assert mask.shape == (4, 32, 32) and mask.dtype == np.uint8
    volume = sitk.ReadImage(str(prognosis_raw / manifest.loc[0 if missing != "P0001" else 1, "image"]))
    array = sitk.GetArrayFromImage(volume)
    assert array.shape == (4, 32, 32) and array.dtype == np.int16 and array.min() < -800
    assert volume.GetSpacing() == pytest.approx((350 / 32, 350 / 32, 5.0), rel=1e-3)
    assert 0.3 < (manifest["mask"] != "").mean() < 0.9
    assert set(manifest["prognosis"]) == {"MILD", "SEVERE", ""}
    scores = manifest.loc[manifest["severity_score"] != "", "severity_score"].astype(int)
    assert (manifest["severity_score"] == "").any() and scores.between(0, 18).all() and scores.nunique() >= 4
    assert manifest["centre"].nunique() == 3 and set(manifest["sex"]) == {"M", "F"}
    post = pd.read_csv(prognosis_raw / "posteriors.csv")
    assert len(post) == 40 and {"p_severe_image", "p_severe_clinical", "p_severe_both"} <= set(post.columns)
    assert set(truth["bayes_auroc"]["prognosis"]) == {"image", "clinical", "both"}
    assert truth["bayes_auroc"]["prognosis"]["both"] > 0.7


# --------------------------------------------------------------------------------------------- determinism, options


@pytest.mark.parametrize("variant", ["ictcf", "prognosis"])
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, variant: str) -> None:
    args = {"patients": 16, "size": 16, "slices": 2, "variant": variant}
    generate(tmp_path / "a", seed=5, **args)
    generate(tmp_path / "b", seed=5, **args)
    generate(tmp_path / "c", seed=6, **args)
    a, b, c = (file_digests(tmp_path / name) for name in "abc")
    assert a == b and len(a) > 16
    table = "clinical.csv" if variant == "ictcf" else "manifest.csv"
    assert a[table] != c[table]
    shared = set(a) & set(c)
    assert sum(a[k] != c[k] for k in shared) > 0.5 * len(shared)


@pytest.mark.parametrize("variant", ["ictcf", "prognosis"])
def test_worker_count_does_not_change_a_byte(tmp_path: Path, variant: str) -> None:
    args = {"patients": 14, "size": 16, "slices": 2, "seed": 2, "variant": variant}
    generate(tmp_path / "one", workers=1, **args)
    generate(tmp_path / "two", workers=2, **args)
    one, two = file_digests(tmp_path / "one"), file_digests(tmp_path / "two")
    assert one == two and len(one) > 14


def test_coarse_lesion_field_keeps_the_correlation_length() -> None:
    """Wide fields are drawn coarse and upsampled (fast 512 px synth); their smoothness must match the exact one."""
    from mmtune.data.synthetic.render import smooth_field
    from scipy.ndimage import gaussian_filter

    sigma = 256 * 0.06
    coarse = smooth_field(np.random.default_rng(0), (4, 256, 256), sigma)
    exact = gaussian_filter(np.random.default_rng(1).standard_normal((4, 256, 256)), sigma=(0.6, sigma, sigma))

    def correlation(field: np.ndarray, lag: int) -> float:
        z = (field - field.mean()) / field.std()
        return float((z[:, :, :-lag] * z[:, :, lag:]).mean())

    assert coarse.shape == (4, 256, 256)
    for lag in (4, 15, 30):
        assert correlation(coarse, lag) == pytest.approx(correlation(exact, lag), abs=0.06)
    with pytest.raises(SynthArgumentError, match="--workers"):
        generate(Path("unused"), patients=12, size=16, slices=1, workers=-1)


def test_no_quirks_writes_no_defects(tmp_path: Path) -> None:
    summary = generate(tmp_path / "clean", patients=24, size=16, slices=2, seed=1, quirks=False)
    root = tmp_path / "clean"
    assert summary.defects == {} and read_truth(root)["defects"] == {}
    table = read_table(root / "clinical.csv")
    folders = sorted(root.glob("Patient *"))
    assert len(table) == len(folders) == 24 == summary.table_rows == summary.image_patients
    for folder in folders:
        files = sorted((folder / "CT").iterdir())
        assert len(files) == 2
        for path in files:
            sitk.ReadImage(str(path))  # every file decodes
    assert summary.dicom_patients == 6 and summary.jpg_patients == 18


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    calls = []

    def explode() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        generate(tmp_path / "out", patients=12, size=16, slices=1, on_patient=explode)
    assert list(tmp_path.iterdir()) == []


def test_refuses_existing_output_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SynthArgumentError, match="not empty; pass --overwrite"):
        generate(out, patients=12, size=16, slices=1)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    generate(out, patients=12, size=16, slices=1, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "clinical.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --------------------------------------------------------------------------------------------- CLI


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_and_summarises(tmp_path: Path, capsys) -> None:
    out = tmp_path / "raw"
    code, stdout, _ = run_cli(
        ["data", "synth", str(out), "--patients", "12", "--size", "16", "--slices", "2", "--seed", "4", "--no-quirks"],
        capsys,
    )
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrote ictcf data, 12 patients")
    assert len(read_table(out / "clinical.csv")) == 12 and read_truth(out)["arguments"]["quirks"] is False
    size_args = ["--patients", "12", "--size", "16", "--slices", "2"]
    code, stdout, _ = run_cli(
        ["data", "synth", str(tmp_path / "p"), *size_args, "--variant", "prognosis", "--hospitals", "4", "--json"],
        capsys,
    )
    assert code == 0 and json.loads(stdout)["hospitals"] == ["Centre A", "Centre B", "Centre C", "Centre D"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--patients", "11"], "--patients: expected an integer >= 12"),
        (["--size", "15"], "--size: expected an integer >= 16"),
        (["--slices", "0"], "--slices: expected an integer >= 1"),
        (["--variant", "mosmed"], "--variant: expected one of ictcf, prognosis"),
        (["--hospitals", "0"], "--hospitals: expected an integer in 1..26"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys, args: list[str], expected: str) -> None:
    code, stdout, stderr = run_cli(["data", "synth", str(tmp_path / "x"), *args], capsys)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith(f"error: {expected}")
    assert not (tmp_path / "x").exists()


def test_cli_existing_directory_exit_2_untouched(tmp_path: Path, capsys) -> None:
    out = tmp_path / "raw"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, stderr = run_cli(["data", "synth", str(out), "--patients", "12", "--size", "16", "--slices", "1"], capsys)
    assert (
        code == 2
        and stderr.strip() == f"error: {out}: directory exists and is not empty; pass --overwrite to replace it"
    )
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_writing_and_reading_dicom_leaves_the_process_locale_alone(tmp_path) -> None:
    # GDCM switches the C locale to "C" and never switches back; Python would then read text as ASCII.
    import locale

    from mmtune.data.images import order_dicom, read_dicom_series

    before = locale.setlocale(locale.LC_ALL)
    generate(tmp_path / "raw", patients=12, size=16, slices=2, seed=3, dicom_fraction=1.0, quirks=False)
    assert locale.setlocale(locale.LC_ALL) == before
    folder = next((tmp_path / "raw").glob("Patient */CT"))
    ordered, _ = order_dicom([str(p) for p in folder.glob("*.dcm")])
    read_dicom_series(ordered)
    assert locale.setlocale(locale.LC_ALL) == before
