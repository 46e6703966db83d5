"""Scope marks, codebook rule features and the fast character n-grams behind the classifier's features."""

import pytest

from themes.features import char_wb_transform, rule_features, scope_tokens


def test_features_scope_marks_negated_words():
    tokens = scope_tokens("The assessment was not updated, but the plan was reviewed.")
    assert "neg_updated" in tokens and "reviewed" in tokens and "neg_reviewed" not in tokens
    assert "hyp_share" in scope_tokens("Agencies should share information.")


def test_features_rule_features_tell_the_failing_from_the_negated_and_the_recommended():
    keywords = {"weak_risk_assessment": ["risk assessment"], "poor_information_sharing": ["shared"]}
    columns = ["plain", "neg", "hyp", "plain_praise", "plain_criticism"]
    rows = rule_features(
        [
            "The risk assessment was weak and out of date.",
            "Information was not shared with the school.",
            "Partners should ensure that information is shared.",
            "A thorough risk assessment was completed.",
        ],
        keywords,
    ).toarray()
    risk, sharing = rows[:, :5], rows[:, 5:10]
    assert dict(zip(columns, risk[0])) == {"plain": 1, "neg": 0, "hyp": 0, "plain_praise": 0, "plain_criticism": 1}
    assert sharing[1].tolist() == [0, 1, 0, 0, 0]  # negated: not a plain keyword hit
    assert sharing[2].tolist() == [0, 0, 1, 0, 0]  # a recommendation
    assert risk[3].tolist() == [1, 0, 0, 1, 0]  # good practice
    assert rows[2, -1] > 0 and rows[3, -3] > 0  # hedge and praise counts


@pytest.mark.parametrize("weighting", [
    {"sublinear_tf": True},  # the model's setting
    {"sublinear_tf": False, "norm": "l1"},
    {"use_idf": False, "norm": None},
])
def test_features_fast_char_ngrams_equal_scikit_learns(weighting):
    # The fast path must give the exact features the model was trained on, or every score drifts;
    # its tf-idf weighting is rebuilt from the vectorizer's public settings, so each must be honoured.
    from sklearn.feature_extraction.text import TfidfVectorizer

    train = ["The plan was not reviewed after Mr X moved in.", "Information was shared promptly.",
             "No strategy discussion was held; the GP was not invited.", "a b c"] * 3  # fmt: skip
    texts = [*train, "", "   ", "Naïve café — “quoted” words", "x" * 40, "tab\tsep\nnew  line",
             "UPPER case and unseen wørds", "The plan was not reviewed. The plan was not reviewed."]  # fmt: skip
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=1, **weighting).fit(train)
    for _ in range(2):  # cold, then with every word cached
        fast = char_wb_transform(vec, texts)
        assert fast.shape == (len(texts), len(vec.vocabulary_))
        assert abs(fast - vec.transform(texts)).max() < 1e-12
