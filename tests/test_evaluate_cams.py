"""The benchmark runner: evaluation sets, per-image CSV, tables with intervals, resume, correlations and the CLI."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from evaluation import evaluate_cams as ev
from pipeline.errors import ConfigError, DatasetError
from pipeline.models import LinearProbeClassifier, create_backbone, save_classifier

# Tiny models: one torch thread (see the one_torch_thread fixture in conftest).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_classifier(class_names: list[str], size: int = 32) -> LinearProbeClassifier:
    torch.manual_seed(0)
    bb = create_backbone("resnet10t", weights="random", image_size=size)
    clf = LinearProbeClassifier(bb.model, torch.nn.Linear(bb.num_features, len(class_names)), class_names, None,
                                bb.preprocess)
    clf.card = {"backbone": {"name": "resnet10t", "weights": "random", "image_size": size}}
    return clf.eval()


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    from evaluation.synthetic import make_shapes

    return make_shapes(tmp_path_factory.mktemp("shapes") / "ds", n_per_class=3, image_size=32, seed=0)


@pytest.fixture(scope="module")
def species_dir(tmp_path_factory):
    from evaluation.synthetic import make_species

    return make_species(tmp_path_factory.mktemp("species") / "ds", n_per_species=4, image_size=48, seed=0)


def class_names(root) -> list[str]:
    return sorted(pd.read_csv(root / "manifest.csv")["species"].unique())


def test_summarise_gives_mean_and_t_interval():
    per_image = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 2, "mass_iou": [1.0, 2.0, 3.0, 0.5, float("nan")]})
    s = ev.summarise(per_image).set_index("method")
    assert s.loc["a", "mean"] == 2.0 and s.loc["a", "n"] == 3
    assert s.loc["a", "hi"] - 2.0 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert s.loc["b", "n"] == 1 and math.isnan(s.loc["b", "hi"])
    table = ev.markdown_table(ev.summarise(per_image))
    assert "| a | 2.000 ± 2.484 |" in table and "mass_iou ↑" in table


def test_paired_comparison_pairs_images_and_gives_a_verdict():
    images = [f"im{i}.png" for i in range(4)]
    plain = [0.10, 0.20, 0.30, 0.40]
    finer = [0.15, 0.26, 0.33, 0.46]  # +0.05, +0.06, +0.03, +0.06: small but on every image
    per_image = pd.DataFrame({
        "image": images * 3 + images[::-1],  # the second method lists the images in another order
        "contrast_species": ["B"] * 16,
        "method": ["gradcam"] * 4 + ["finer"] * 4 + ["layercam"] * 4 + ["finer-layercam"] * 4,
        "part_mass_iou": plain + finer + plain + plain[::-1],
        "deletion": [0.5] * 4 + [0.4, 0.45, 0.35, 0.42] + [0.5] * 4 + [0.6, 0.58, 0.62, 0.61]})
    p = ev.paired_comparison(per_image, metrics=("part_mass_iou", "deletion")).set_index(["method", "metric"])
    r = p.loc[("finer", "part_mass_iou")]
    assert r["base"] == "gradcam" and r["n"] == 4
    assert r["diff"] == pytest.approx(0.05)
    half = 3.182446 * pd.Series([0.05, 0.06, 0.03, 0.06]).std() / 2
    assert r["lo"] == pytest.approx(0.05 - half, rel=1e-4) and r["verdict"] == "finer better"
    assert r["ratio"] == pytest.approx(0.30 / 0.25) and r["better_share"] == 1.0
    assert p.loc[("finer", "deletion"), "verdict"] == "finer better"  # lower deletion is better
    assert p.loc[("finer-layercam", "deletion"), "verdict"] == "finer worse"
    # matched by image, not by row order: identical values give no difference at all
    assert p.loc[("finer-layercam", "part_mass_iou"), "diff"] == 0.0
    assert p.loc[("finer-layercam", "part_mass_iou"), "verdict"] == "no clear difference"
    assert "| finer | gradcam | part_mass_iou | 4 |" in ev.paired_table(p.reset_index())
    # significant but only ~2 % of the plain mean: not a clear win
    tiny = per_image.assign(part_mass_iou=plain + [v + 0.005 + 0.001 * i for i, v in enumerate(plain)]
                            + plain + plain[::-1])
    t = ev.paired_comparison(tiny, metrics=("part_mass_iou",)).set_index(["method", "metric"])
    assert t.loc[("finer", "part_mass_iou"), "verdict"] == "finer slightly better"
    assert ev.finer_base("finer") == "gradcam" and ev.finer_base("finer-refinecam") == "refinecam"
    assert ev.finer_base("gradcam") is None


def test_metric_correlations_orient_lower_is_better_metrics():
    rows = []
    for i, m in enumerate(["m1", "m2", "m3", "m4"]):
        rows += [{"method": m, "metric": "mass_iou", "mean": i / 4}, {"method": m, "metric": "deletion", "mean": 1 - i / 4},
                 {"method": m, "metric": "rd@5", "mean": [0.3, 0.1, 0.2, 0.4][i]}]
    corr = ev.metric_correlations(pd.DataFrame(rows)).set_index("metric")
    assert corr.loc["deletion", "spearman"] == pytest.approx(1.0)  # lower deletion = better = agrees
    assert corr.loc["rd@5", "spearman"] == pytest.approx(0.4)
    assert corr.loc["rd@5", "n_methods"] == 4


def test_shapes_benchmark_with_baselines_writes_tables_and_resumes(shapes_dir, tmp_path, monkeypatch):
    clf = tiny_classifier(class_names(shapes_dir))
    evalset = ev.synthetic_eval_set(shapes_dir, clf)
    assert len(evalset) == 6 and (evalset.frame["contrast"] == -1).all()
    methods = ["random", "ones", "constant", "centre"]
    res = ev.run_benchmark(clf, evalset, methods, tmp_path, metrics="full", batch_size=4, progress=False)
    assert len(res.per_image) == 6 * 4
    for col in ("rd@5", "deletion", "road", "coherency", "arcc", "adcc", "mass_iou", "pointing", "roc_auc"):
        assert res.per_image[col].notna().any(), col
    assert res.per_image["arcc"].between(0, 1).all()
    means = res.summary.pivot(index="method", columns="metric", values="mean")
    assert means.loc["ones", "complexity"] == 1.0 and means.loc["constant", "complexity"] == 0.5
    assert means.loc["ones", "arcc"] == 0.0  # 1 - Complexity = 0 kills the harmonic mean
    assert means.loc["centre", "coherency"] == pytest.approx(1.0)  # a fixed map is perfectly "coherent"
    for name in ("per_image.csv", "summary.csv", "correlations.csv", "table.md", "run.json"):
        assert (tmp_path / name).is_file()
    assert "| centre |" in (tmp_path / "table.md").read_text()
    # A rerun with the same settings reuses every finished method instead of recomputing.
    monkeypatch.setattr(ev, "batch_metrics", lambda *a, **k: pytest.fail("recomputed a finished method"))
    again = ev.run_benchmark(clf, evalset, methods, tmp_path, metrics="full", batch_size=4, progress=False)
    assert again.per_image["arcc"].tolist() == pytest.approx(res.per_image["arcc"].tolist())


def test_species_eval_set_uses_sibling_contrast_and_differing_parts(species_dir, tmp_path):
    clf = tiny_classifier(class_names(species_dir), size=48)
    evalset = ev.synthetic_eval_set(species_dir, clf)
    f = evalset.frame
    assert (f["contrast"] >= 0).all() and (f["contrast"] != f["target"]).all()
    sib = f[f["species"] == "Synthia aurantiaca"]
    assert set(sib["contrast_species"]) == {"Synthia rubra"}
    band = [k for k, v in evalset.part_names.items() if v == "forewing band"][0]
    assert set(sib["diff_parts"]) == {str(band)}
    res = ev.run_benchmark(clf, evalset, ["random", "centre"], tmp_path, metrics="fast", progress=False)
    assert res.per_image["part_mass_iou"].notna().any()
    assert res.per_image["part_mass_iou"].dropna().between(0, 1).all()
    by_pair = pd.read_csv(tmp_path / "by_pair.csv")
    assert "Synthia aurantiaca vs Synthia rubra" in set(by_pair["pair"])
    assert "| Synthia aurantiaca vs Synthia rubra | random |" in res.table
    assert ev.rebuild_tables(tmp_path) == (tmp_path / "table.md").read_text().rstrip("\n")


def test_unknown_method_metric_and_species_are_clear_errors(shapes_dir, tmp_path):
    clf = tiny_classifier(class_names(shapes_dir))
    evalset = ev.synthetic_eval_set(shapes_dir, clf, limit=2)
    assert len(evalset) == 2 and evalset.frame["species"].nunique() == 2
    with pytest.raises(ConfigError, match="Unknown CAM method"):
        ev.run_benchmark(clf, evalset, ["gradcam", "magic"], tmp_path)
    with pytest.raises(ConfigError, match="Unknown metric"):
        ev.run_benchmark(clf, evalset, ["random"], tmp_path, metrics=["accuracy"])
    with pytest.raises(DatasetError, match="not a class of this classifier"):
        ev.synthetic_eval_set(shapes_dir, tiny_classifier(["Vanessa atalanta", "Vanessa cardui"]))


def test_real_cams_run_through_the_runner(shapes_dir, tmp_path):
    pytest.importorskip("pipeline.cam", reason="the CAM engine is not installed")
    clf = tiny_classifier(class_names(shapes_dir))
    evalset = ev.synthetic_eval_set(shapes_dir, clf, limit=3)
    res = ev.run_benchmark(clf, evalset, ["gradcam", "finer"], tmp_path, metrics="full", batch_size=3,
                           progress=False)
    assert set(res.per_image["method"]) == {"gradcam", "finer"}
    assert res.per_image[["rd@5", "road", "coherency", "mass_iou"]].notna().all().all()


def test_cli_evaluate_cams_on_a_given_model(shapes_dir, tmp_path):
    from pipeline.cli import main

    clf = tiny_classifier(class_names(shapes_dir))
    model_dir = save_classifier(clf, tmp_path / "model")
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "cams", "--dataset", "synthetic-shapes", "--data", str(shapes_dir), "--model",
              str(model_dir), "--out", str(out), "--methods", "random,ones", "--no-baselines", "--metrics", "fast",
              "--limit", "4", "--device", "cpu"])
    assert exc.value.code == 0
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 8 and set(per_image["method"]) == {"random", "ones"}
    assert json.loads((out / "run.json").read_text())["metrics"] == list(ev.METRIC_SETS["fast"])


def test_cli_errors_without_traceback(tmp_path, capsys):
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "cams", "--dataset", "leeds", "--out", str(tmp_path), "--data", str(tmp_path)])
    assert exc.value.code == 2
    assert "--model is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "cams", "--dataset", "synthetic-shapes", "--out", str(tmp_path), "--pairs", "A"])
    assert exc.value.code == 2 and "is not 'Species A:Species B'" in capsys.readouterr().err


def test_leeds_eval_set_explains_both_directions_of_each_pair():
    from pipeline.paths import leeds_root

    root = leeds_root()
    if root is None:
        pytest.skip("Leeds butterflies not found (set FINER_TRAITS_DATA)")
    names = sorted(pd.read_csv(root / "manifest.csv")["scientific_name"].unique())
    clf = tiny_classifier(names)
    evalset = ev.leeds_eval_set(root, clf)
    f = evalset.frame
    assert set(f["species"]) == {"Vanessa atalanta", "Vanessa cardui", "Heliconius charitonius", "Heliconius erato"}
    assert (f.loc[f["species"] == "Vanessa cardui", "contrast_species"] == "Vanessa atalanta").all()
    assert (f["contrast"] == [clf.index(c) for c in f["contrast_species"]]).all()
    assert f["mask"].map(lambda p: isinstance(p, str)).all() and (f["split"] == "test").all()
    with pytest.raises(DatasetError, match="No test photos"):
        ev.leeds_eval_set(root, clf, pairs=[("Vanessa atalanta", "Vanessa virginiensis")])
