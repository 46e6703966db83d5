import pandas as pd
import pytest

from themes.config import DedupSettings
from themes.dedup import find_boilerplate, jaccard, shingles

TERMS = (
    "This review was commissioned under the statutory guidance Working Together to Safeguard Children "
    "and considers the involvement of all agencies with Child D and the family from birth until the "
    "serious incident, with a focus on how professionals assessed risk and shared information."
)
GUIDANCE = (
    "Working Together to Safeguard Children states that no single practitioner can have a full picture of "
    "a child's needs and circumstances and that everyone who comes into contact with children and families "
    "has a role to play in sharing information and identifying concerns."
)
QUOTED_FINDING = (
    "The health visitor accepted the mother's assurance that the new partner had left the home and the "
    "case was closed without any check with the police or the housing provider about who was living there."
)
OWN = [
    ("Police attended the address four times in the spring but the notifications were not sent to the school "
    "or to the health visitor, so no one held the whole picture of the violence in the home."),
    ("The social worker visited twice and recorded that the home conditions had improved, without seeing the "
    "child's bedroom or speaking to the child alone about what daily life was like."),
    ("The GP surgery recorded three missed immunisation appointments and sent letters to the family but did not "
    "tell the health visitor, and nobody asked why the baby was not being brought."),
    ("Mother signed a written agreement that she would not allow her former partner into the flat, and the "
    "agreement was treated as the main protective measure although it was never checked."),
    ("The school noticed that the boy was often hungry and tired in the morning and raised this with the family "
    "support worker, who offered a food bank voucher but did not refer to children's social care."),
]


def _corpus() -> pd.DataFrame:
    """Five documents, each with its own passage; planted repeats with small edits."""
    rows = []
    for d in range(5):
        rows.append((f"d{d}-own", f"d{d}", OWN[d], "analysis"))
    # Terms of reference in four documents, lightly varied (paragraph number, a trailing clause, case).
    rows.append(("d0-tor", "d0", "1.1 " + TERMS, "background"))
    rows.append(("d1-tor", "d1", "2.3 " + TERMS.upper(), "background"))
    rows.append(("d2-tor", "d2", TERMS.replace("Child D", "Child C"), "background"))
    rows.append(("d3-tor", "d3", TERMS.replace("shared information.", "shared records.") + " The review also considered the pandemic.", "methodology"))
    # Guidance quoted in three documents.
    for d in (1, 3, 4):
        rows.append((f"d{d}-guide", f"d{d}", GUIDANCE, "learning"))
    # A finding quoted verbatim by one other document (an annual report quoting its own review).
    rows.append(("d2-finding", "d2", QUOTED_FINDING, "analysis"))
    rows.append(("d4-quote", "d4", QUOTED_FINDING, "learning"))
    frame = pd.DataFrame(rows, columns=["passage_id", "doc_id", "text", "section"])
    frame["page"] = 3
    return frame


def test_dedup_shingles_ignore_paragraph_numbers_case_and_pseudonym_letters():
    assert shingles("4.12 The Review Panel met four times.", 3) == shingles("the review panel met four times", 3)
    assert shingles("Agencies working with Child D and Mr K", 3) == shingles("agencies working with Child F and Mr L", 3)
    assert jaccard({"a"}, {"a"}) == 1.0 and jaccard(set(), set()) == 0.0


def test_dedup_drops_planted_boilerplate_and_keeps_own_text():
    result = find_boilerplate(_corpus())
    dropped = set(result.dropped["passage_id"])
    assert {"d0-tor", "d1-tor", "d2-tor", "d3-tor", "d1-guide", "d3-guide", "d4-guide"} == dropped
    assert all(f"d{d}-own" in set(result.kept["passage_id"]) for d in range(5))
    # Two clusters: the terms of reference (4 documents) and the guidance (3 documents).
    assert sorted(result.clusters["n_documents"]) == [3, 4]
    tor = result.dropped.set_index("passage_id").loc["d2-tor"]
    assert tor.n_documents == 4 and tor.max_jaccard >= 0.8 and "4 documents" in tor.reason
    assert len(result.kept) + len(result.dropped) == len(_corpus())


def test_dedup_keeps_a_finding_quoted_by_one_other_document_by_default():
    kept = set(find_boilerplate(_corpus()).kept["passage_id"])
    assert {"d2-finding", "d4-quote"} <= kept
    strict = find_boilerplate(_corpus(), DedupSettings(min_documents=2))
    assert {"d2-finding", "d4-quote"} <= set(strict.dropped["passage_id"])


def test_dedup_threshold_separates_near_from_loose_copies():
    base = _corpus()
    # Rewrite half of the guidance in one copy: Jaccard well below 0.8, so only two copies stay alike.
    loose = GUIDANCE.split(" and that ")[0] + " and that every agency must record its concerns and pass them on promptly."
    base.loc[base["passage_id"] == "d4-guide", "text"] = loose
    assert jaccard(shingles(GUIDANCE), shingles(loose)) < 0.8
    dropped = set(find_boilerplate(base).dropped["passage_id"])
    assert not {"d1-guide", "d3-guide", "d4-guide"} & dropped


def test_dedup_short_repeats_are_never_boilerplate():
    frame = pd.DataFrame({
        "passage_id": ["a", "b", "c"], "doc_id": ["x", "y", "z"],
        "text": ["Fictional sample written for testing"] * 3,
    })
    assert find_boilerplate(frame).dropped.empty


def test_dedup_names_the_missing_column():
    with pytest.raises(ValueError, match="doc_id") as error:
        find_boilerplate(pd.DataFrame({"passage_id": ["a"], "text": ["x"]}))
    assert error.value.code == "E607"


def test_dedup_minhash_estimates_match_exact_jaccard_and_lsh_finds_near_copies():
    """Against the exact Jaccard of random shingle-hash sets: unbiased, within 4 standard errors.

    With 120 hash functions the standard error is at most sqrt(0.25 / 120) = 0.046. The MinHash this
    replaced (a * x + b mod 2^61 - 1 with a, x < 2^32) let small hash values win every function and
    missed a third of these by more than 0.15, and LSH with it missed pairs at Jaccard 0.83.
    """
    import numpy as np

    from themes.config import DEDUP
    from themes.dedup import _jaccard_sorted, candidate_pairs, minhashes

    rng = np.random.default_rng(15)
    errors, near_pairs_found = [], []
    for _ in range(200):
        n, target = int(rng.integers(20, 150)), float(rng.uniform(0.3, 0.97))
        pool = rng.permutation(np.unique(rng.integers(0, 2**32, size=3 * n, dtype=np.uint64)))
        shared = round(n * 2 * target / (1 + target))
        x, y = np.sort(pool[:n]), np.sort(np.concatenate([pool[:shared], pool[n : 2 * n - shared]]))
        exact = _jaccard_sorted(x, y)
        signatures = minhashes([x, y])
        errors.append(signatures[0].jaccard(signatures[1]) - exact)
        if exact >= DEDUP.threshold:
            near_pairs_found.append(candidate_pairs(signatures) == {(0, 1)})
    errors = np.array(errors)
    assert np.abs(errors).max() < 4 * 0.046
    assert abs(errors.mean()) < 0.01
    assert len(near_pairs_found) > 20 and all(near_pairs_found)


def test_dedup_band_pairs_equal_datasketch_lsh_candidates():
    """The numpy banding finds exactly the pairs datasketch's MinHashLSH (same bands, rows) finds."""
    import numpy as np
    from datasketch import MinHashLSH

    from themes.config import DEDUP
    from themes.dedup import band_pairs, minhashes

    rng = np.random.default_rng(7)
    base = np.unique(rng.integers(0, 2**32, size=60, dtype=np.uint64))
    sets = [np.unique(np.concatenate([base[: int(rng.integers(30, 60))],
                                      rng.integers(0, 2**32, size=int(rng.integers(0, 20)), dtype=np.uint64)]))
            for _ in range(80)]
    signatures = minhashes(sets)
    lsh = MinHashLSH(num_perm=DEDUP.bands * DEDUP.rows, params=(DEDUP.bands, DEDUP.rows))
    for i, signature in enumerate(signatures):
        lsh.insert(i, signature)
    expected = {(min(i, j), max(i, j)) for i, s in enumerate(signatures) for j in lsh.query(s) if i != j}
    assert expected  # the planted overlaps make candidates, and some sets are not candidates
    assert len(expected) < 80 * 79 // 2
    assert band_pairs(np.stack([s.hashvalues for s in signatures])) == expected


def test_dedup_incremental_signatures_give_the_from_scratch_result(tmp_path):
    """Signatures cached per document, then one document added: the same clusters as from scratch."""
    from themes.dedup import cached_signatures, signatures_path

    frame = _corpus()
    texts_of = {d: list(g["text"]) for d, g in frame.groupby("doc_id", sort=False)}
    order = pd.concat([frame[frame["doc_id"] == d] for d in texts_of], ignore_index=True)
    without_last = {d: t for d, t in texts_of.items() if d != "d4"}
    cached_signatures(tmp_path, "key", without_last)  # the processed corpus
    assert not signatures_path(tmp_path, "d4", "key").exists()
    incremental = find_boilerplate(order, precomputed=cached_signatures(tmp_path, "key", texts_of))
    assert signatures_path(tmp_path, "d4", "key").exists()
    again = find_boilerplate(order, precomputed=cached_signatures(tmp_path, "key", texts_of))  # all cached
    scratch = find_boilerplate(order)
    assert not scratch.dropped.empty
    for result in (incremental, again):
        pd.testing.assert_frame_equal(result.dropped, scratch.dropped)
        pd.testing.assert_frame_equal(result.clusters, scratch.clusters)
        pd.testing.assert_frame_equal(result.kept, scratch.kept)
