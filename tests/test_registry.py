"""Model files: only the types our own estimators write are ever loaded."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.feature_extraction.text import TfidfVectorizer

from themes.classify import ThemeClassifier
from themes.config import MODELS_DIR
from themes.registry import MODEL_FILE, MODEL_TYPES, load_model, model_file_types, save_model

TEXTS = [
    "nobody asked the school what it knew about the child",
    "the school was not asked and did not share its concerns",
    "information was not passed to the health visitor",
    "the plan relied on the mother's word that he had left",
    "a written agreement replaced a proper assessment of risk",
    "professionals accepted the agreement at face value",
    "the family was visited weekly and the child seen alone",
    "the review thanks the family for taking part",
    "records were shared promptly between agencies",
    "the child's views were recorded at every visit",
] * 2
Y = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]] * 2)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"calibrate": False},
        {"model": "svm"},
        {"model": "svm", "calibrate": False},
        {"use_chars": False, "use_scope": False},
        {"rule_weight": 0.5},
    ],
)
def test_registry_model_types_cover_every_classifier_setting(tmp_path: Path, settings: dict) -> None:
    model = ThemeClassifier(themes=["a", "b"], **settings).fit(TEXTS, Y)
    folder = save_model(model, {}, "v1", tmp_path)
    assert model_file_types(folder / MODEL_FILE) <= MODEL_TYPES
    loaded = load_model("v1", tmp_path)
    assert np.allclose(loaded.model.predict_proba(TEXTS), model.predict_proba(TEXTS))


def test_registry_loads_every_shipped_model_and_no_skops_file_holds_a_foreign_type() -> None:
    from themes.registry import list_versions, model_kind

    default = load_model(None, MODELS_DIR)
    assert default.model.predict(["Risk was not assessed."]).shape == (1, len(default.model.themes_))
    for version in list_versions(MODELS_DIR):
        folder = MODELS_DIR / version
        if model_kind(folder) == "skops":
            assert model_file_types(folder / MODEL_FILE) <= MODEL_TYPES, version
        else:  # an ONNX encoder: no pickle anywhere in the folder
            assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.skops")), version


def test_registry_refuses_a_model_holding_exec_and_never_runs_its_text(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = TfidfVectorizer(analyzer=exec)  # transform() would exec each passage
    folder = tmp_path / "evil"
    folder.mkdir()
    sio.dump(evil, folder / MODEL_FILE, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match=r"builtins\.exec") as refused:
        loaded = load_model(folder)
        loaded.model.transform([f"open({str(marker)!r}, 'w').write('ran')"])
    assert "\n" not in str(refused.value) and refused.value.code == "E404"
    assert not marker.exists()


def test_registry_refuses_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a skops model file") as refused:
        load_model(tmp_path)
    assert refused.value.code == "E403"


def test_registry_missing_default_and_unknown_version_are_coded(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No default model") as missing:
        load_model(None, models_dir=tmp_path)
    assert missing.value.code == "E401"
    with pytest.raises(FileNotFoundError, match="expected model.skops there|No model at") as unknown:
        load_model("no-such-version", models_dir=tmp_path)
    assert unknown.value.code == "E402"


def test_registry_prefetched_model_predicts_like_a_loaded_one():
    from themes.registry import LazyModel

    lazy = LazyModel(None)
    lazy.prefetch()
    texts = ["The school was not told that the child had stopped attending."]
    np.testing.assert_allclose(lazy.model.predict_proba(texts), load_model(None).model.predict_proba(texts))


def test_registry_prefetch_of_a_refused_file_raises_where_the_model_is_used(tmp_path):
    from themes.registry import CARD_JSON, LazyModel

    folder = tmp_path / "bad-model"
    folder.mkdir()
    (folder / CARD_JSON).write_text('{"version": "bad-model"}')
    (folder / MODEL_FILE).write_bytes(b"not a zip file")
    lazy = LazyModel(str(folder))
    lazy.prefetch()  # does not raise in the run's thread
    with pytest.raises(ValueError, match="not a skops model file"):
        _ = lazy.model


def test_registry_released_model_is_freed_and_loads_again_when_used():
    import gc
    import weakref

    from themes.registry import LazyModel

    lazy = LazyModel(None)
    first = weakref.ref(lazy.model)
    lazy.release()
    gc.collect()
    assert first() is None  # nothing else holds the ~200 MB classifier
    assert lazy.model.themes_ == lazy.themes


def test_registry_loads_an_encoder_folder_and_writes_its_card(tmp_path: Path, toy_onnx_model: Path) -> None:
    """An ONNX encoder folder is a model like a skops one: resolved, listed, loaded, carded."""
    import shutil

    from themes.encoder import OnnxThemeClassifier
    from themes.registry import list_versions, set_default, write_card

    folder = tmp_path / "models" / "enc-1"
    shutil.copytree(toy_onnx_model, folder)
    write_card(folder, {"summary": "toy", "thresholds": {"weak_risk_assessment": 0.5}}, "enc-1")
    set_default("enc-1", tmp_path / "models")
    assert list_versions(tmp_path / "models") == ["enc-1"]
    loaded = load_model(None, tmp_path / "models")
    assert isinstance(loaded.model, OnnxThemeClassifier) and loaded.version == "enc-1"
    assert loaded.card["model_bytes"] > 0 and (folder / "card.md").read_text().startswith("# Model card: enc-1")
    assert loaded.model.predict(["The risk assessment was"]).tolist() == [[1, 0]]
