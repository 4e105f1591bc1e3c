"""Ingest on the real release rows of ../shared/data (skipped with a reason when it is absent)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gz_experiments.catalog import load_catalog
from gz_experiments.config.base import ConfigError
from gz_experiments.errors import UserError
from gz_experiments.ingest import (
    IngestConfig,
    counts_to_cumulative,
    cumulative_to_counts,
    cumulative_to_fractions,
    detect_release,
    fractions_to_cumulative,
    kaggle_columns,
    kaggle_table,
    largest_remainder,
    load_tree,
    read_catalog_note,
    read_published_posteriors,
    rmse_kaggle,
    run_ingest,
)
from gz_experiments.schema import get_schema

from .conftest import REPO, shared_data

TREES = REPO / "gz_experiments" / "trees"
GZD5 = "gz_decals/gz_decals_volunteers_5.csv"
GZD12 = "gz_decals/gz_decals_volunteers_1_and_2.csv"
HART16 = "gz2_hart16/gz2_hart16.csv"
KAGGLE = "kaggle_gz2/training_solutions_rev1.csv"


@pytest.fixture
def rows():
    return shared_data("zenodo_format_rows")


def ingest(tmp_path, **values):
    return run_ingest(IngestConfig.resolve("paper", out=str(tmp_path / "out"), **values))


def catalog_of(result) -> pd.DataFrame:
    return pd.read_parquet(result.catalog)


def copy_csv(rows, name, tmp_path, mutate, filename=None):
    """A real release file, changed by `mutate` (a function of the text table), in tmp_path."""
    table = mutate(pd.read_csv(rows / name, dtype=str))
    path = tmp_path / (filename or name.split("/")[-1])
    table.to_csv(path, index=False)
    return path


def only_rejection(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "out" / "rejected.csv", dtype=str)


# ---- trees ---------------------------------------------------------------------------------


def test_decals_all_is_gzd5_beside_gzd12():
    merged, gzd5, gzd12 = (
        get_schema(TREES / "decals-all.yaml"),
        get_schema("gzd5"),
        get_schema("gzd12"),
    )
    assert merged.name == "decals-all" and (merged.n_questions, merged.n_answers) == (20, 64)
    assert merged.to_dict()["questions"] == (
        gzd5.to_dict()["questions"] + gzd12.to_dict()["questions"]
    )


def test_kaggle_tree_has_kaggles_37_columns_in_order():
    tree = get_schema(TREES / "kaggle-gz2.yaml")
    assert (tree.n_questions, tree.n_answers) == (11, 37)
    columns = kaggle_columns(tree)
    assert columns[:3] == ["Class1.1", "Class1.2", "Class1.3"] and columns[-1] == "Class11.6"
    assert tree.label_cols[columns.index("Class8.7")] == "odd-feature_dust-lane"
    assert tree.label_cols[columns.index("Class5.1")] == "bulge-prominence_no"


def test_kaggle_round_trip_reproduces_the_file(rows):
    """cumulative -> per-question fractions -> cumulative: only a right tree gives the file back."""
    tree = load_tree("kaggle-gz2")
    truth = pd.read_csv(rows / KAGGLE)
    cumulative = truth[kaggle_columns(tree)].to_numpy()
    fractions = cumulative_to_fractions(cumulative, tree)
    np.testing.assert_allclose(fractions_to_cumulative(fractions, tree), cumulative, atol=1e-6)
    predicted = kaggle_table(fractions, tree, ids=truth["GalaxyID"])
    assert list(predicted.columns) == ["GalaxyID", *kaggle_columns(tree)]
    assert rmse_kaggle(truth, predicted) < 1e-6


def test_kaggle_subset_round_trip_on_the_columns_present():
    folder = shared_data("gz2_kaggle_424")
    tree = load_tree("kaggle-gz2")
    table = pd.read_csv(folder / "catalog.csv")
    present = [c for c in kaggle_columns(tree) if c in table.columns]
    full = pd.DataFrame(0.0, index=table.index, columns=kaggle_columns(tree))
    full[present] = table[present]
    back = fractions_to_cumulative(cumulative_to_fractions(full.to_numpy(), tree), tree)
    back = pd.DataFrame(back, columns=kaggle_columns(tree))
    assert len(present) == 17
    assert rmse_kaggle(table, back) < 1e-6  # scored on the 17 columns the file has
    assert np.abs(back[present] - table[present]).to_numpy().max() < 2e-6


# ---- each real release file, as downloaded ---------------------------------------------------


@pytest.mark.parametrize(
    "release, source, images, n_rows, tree",
    [
        ("gzd5", GZD5, "", 6, "gzd5"),
        ("gzd12", GZD12, "", 6, "gzd12"),
        ("gz2", HART16, "gz2_hart16/images", 3, "gz2"),
        ("kaggle-gz2", KAGGLE, "kaggle_gz2/images_training_rev1", 3, "kaggle-gz2"),
    ],
)
def test_real_release_file_loads_as_it_is(rows, tmp_path, release, source, images, n_rows, tree):
    images = str(rows / images) if images else ""
    result = ingest(tmp_path, sources=str(rows / source), images=images)  # release: auto
    catalog = catalog_of(result)
    schema = load_tree(tree)
    assert result.tree == tree and result.sources[0].release == release
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (n_rows, n_rows, 0)
    totals = [q.total_votes_col for q in schema.questions]
    assert set(catalog.columns) == {"id_str", "file_loc", "sources", *schema.label_cols, *totals}
    assert catalog["file_loc"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    for q in schema.questions:
        assert (catalog[q.label_cols].sum(axis=1) == catalog[q.total_votes_col]).all()
    assert len(load_catalog(result.catalog, schema)) == n_rows  # a standard catalog
    manifest = json.loads(result.manifest.read_text())
    assert manifest["sources"][0]["sha256"] == result.sources[0].sha256
    assert manifest["rows"] == {"read": n_rows, "written": n_rows, "rejected": 0}


def test_gzd5_counts_and_image_paths_are_the_files(rows, tmp_path):
    result = ingest(tmp_path, sources=str(rows / GZD5), releases="gzd5")
    catalog = catalog_of(result).set_index("id_str")
    source = pd.read_csv(rows / GZD5).set_index("iauname")
    for label in load_tree("gzd5").label_cols:
        assert (catalog[label] == source.loc[catalog.index, label]).all(), label
    assert catalog.loc["J081412.47+220853.0", "file_loc"] == str(
        rows / "gz_decals/dr5/J081/J081412.47+220853.0.png"
    )


def test_gzd5_merging_votes_for_unlisted_answers_are_counted_not_hidden(rows, tmp_path):
    """The real GZD-5 rows: merging_total-votes exceeds its 4 answers in rows 3 and 6."""
    result = ingest(tmp_path, sources=str(rows / GZD5))
    outside = result.sources[0].votes_outside_answers
    assert outside == {"merging": {"rows": 2, "votes": 34.0}}
    row3 = catalog_of(result).set_index("id_str").loc["J005650.84-010137.4"]
    assert row3["merging_total-votes"] == 32  # the listed answers, not the file's 35

    with pytest.raises(UserError) as err:
        ingest(tmp_path / "strict", sources=str(rows / GZD5), votes_outside_answers="reject")
    message = str(err.value)
    assert "gz_decals_volunteers_5.csv: row 3" in message
    assert "column 'merging_total-votes' is 35" in message and "\n" not in message


def test_gzd12_is_named_in_its_dr12_questions_with_dr5_images(rows, tmp_path):
    catalog = catalog_of(ingest(tmp_path, sources=str(rows / GZD12), releases="gzd12"))
    first = catalog.iloc[0]
    assert first["id_str"] == "J084235.76+241231.3"
    assert first["how-rounded-dr12_cigar-shaped"] == 23 and first["merging-dr12_neither"] == 47
    assert first["file_loc"] == str(rows / "gz_decals/dr5/J084/J084235.76+241231.3.png")


def test_gz2_keeps_every_digit_of_the_objid_and_finds_images_through_the_mapping(rows, tmp_path):
    result = ingest(
        tmp_path, sources=str(rows / HART16), releases="gz2", images=str(rows / "gz2_hart16/images")
    )
    catalog = catalog_of(result).set_index("id_str")
    assert catalog.loc["587737825678131439", "file_loc"].endswith("/106587.jpg")
    assert catalog.loc["587726016142835881", "how-rounded_in-between"] == 30
    assert catalog.loc["587737825678131439", "spiral-arm-count_more-than-4"] == 10
    assert catalog.loc["587737825678131439", "bulge-size_just-noticeable"] == 24


def test_gz2_without_its_mapping_file_is_one_clear_error(rows, tmp_path):
    source = copy_csv(rows, HART16, tmp_path, lambda t: t)
    with pytest.raises(UserError, match="gz2_filename_mapping.csv.*filename_mapping="):
        ingest(tmp_path, sources=str(source), images=str(rows / "gz2_hart16/images"))
    result = ingest(
        tmp_path,
        sources=str(source),
        images=str(rows / "gz2_hart16/images"),
        filename_mapping=str(rows / "gz2_hart16/gz2_filename_mapping.csv"),
    )
    assert result.rows_written == 3


def test_kaggle_subset_catalog_first_rows_with_absent_questions_never_asked(tmp_path):
    folder = shared_data("gz2_kaggle_424")
    result = ingest(
        tmp_path,
        sources=str(folder / "catalog.csv"),
        releases="kaggle-gz2",
        images=str(folder / "images"),
        max_rows=50,
    )
    catalog = catalog_of(result)
    assert result.n_galaxies == 50 and result.count_mode == "pseudo"
    absent = {
        "bar",
        "has-spiral-arms",
        "bulge-prominence",
        "edge-on-bulge",
        "spiral-winding",
        "spiral-arm-count",
    }
    assert set(result.sources[0].absent_questions) == absent
    tree = load_tree("kaggle-gz2")
    for name in absent:
        assert (catalog[tree.question(name).label_cols] == 0).all().all()
    assert (catalog["smooth-or-featured_total-votes"] == 40).all()
    assert (catalog["anything-odd_total-votes"] == 40).all()  # Kaggle's Class6 is a root


# ---- vote fractions as labels ----------------------------------------------------------------


def test_pseudo_counts_are_whole_add_up_per_question_and_follow_the_tree(rows):
    tree = load_tree("kaggle-gz2")
    cumulative = pd.read_csv(rows / KAGGLE)[kaggle_columns(tree)].to_numpy()
    counts = cumulative_to_counts(cumulative, tree, 40, "pseudo")
    assert (counts == np.round(counts)).all() and (counts >= 0).all()
    for q in tree.questions:
        block = counts[:, q.start : q.end + 1].sum(axis=1)
        if not q.parents:
            assert (block == 40).all()
        else:  # a question's votes are exactly those its parent answers got
            reached = sum(counts[:, tree.answer(p).index] for p in q.parents)
            np.testing.assert_array_equal(block, reached)
    # Each rounding moves a vote by < 1 and the tree is 4 questions deep.
    assert np.abs(counts_to_cumulative(counts, tree) - cumulative).max() <= 4 / 40


def test_largest_remainder_adds_up_exactly():
    counts = largest_remainder(
        np.array([10, 7, 5, 3]),
        np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.25, 0.25], [0, 0, 0], [0.2, 0.2, 0.6]]),
    )
    np.testing.assert_array_equal(counts.sum(axis=1), [10, 7, 0, 3])
    np.testing.assert_array_equal(counts[0], [4, 3, 3])  # ties go to the earlier answer
    np.testing.assert_array_equal(counts[1], [3, 2, 2])  # 3.5, 1.75, 1.75: largest remainders


def test_fractional_counts_round_trip_and_mark_the_catalog(rows, tmp_path):
    result = ingest(
        tmp_path,
        sources=str(rows / KAGGLE),
        count_mode="fractional",
        n_volunteers=45,
        images=str(rows / "kaggle_gz2/images_training_rev1"),
    )
    tree = load_tree("kaggle-gz2")
    catalog = catalog_of(result)
    assert result.fractional_votes and catalog[tree.label_cols].dtypes.unique() == [np.float64]
    truth = pd.read_csv(rows / KAGGLE)
    back = counts_to_cumulative(catalog[tree.label_cols].to_numpy(), tree)
    np.testing.assert_allclose(back, truth[kaggle_columns(tree)].to_numpy(), atol=1e-6)
    note = read_catalog_note(result.catalog)
    assert note == {
        "tree": "kaggle-gz2",
        "count_mode": "fractional",
        "fractional_votes": True,
        "n_volunteers": 45,
    }
    manifest = json.loads(result.manifest.read_text())
    assert (
        manifest["fractional_votes"]
        and "fractional_votes=true" in manifest["label_columns"]["unit"]
    )
    with pytest.raises(UserError, match="not a whole number"):
        load_catalog(result.catalog, tree)
    assert len(load_catalog(result.catalog, tree, fractional_votes=True)) == 3


def test_rmse_kaggle_scores_the_columns_asked_for():
    truth = pd.DataFrame({"Class1.1": [1.0, 0.0], "Class1.2": [0.0, 1.0]})
    guess = pd.DataFrame({"Class1.1": [0.5, 0.0], "Class1.2": [0.5, 1.0], "Class2.1": [9, 9]})
    assert rmse_kaggle(truth, guess) == pytest.approx(np.sqrt(0.5 / 4))
    assert rmse_kaggle(truth, guess, ["Class1.1"]) == pytest.approx(np.sqrt(0.25 / 2))
    with pytest.raises(ValueError, match="Class2.1"):
        rmse_kaggle(truth, guess, ["Class2.1"])


# ---- several sources -> one catalog ----------------------------------------------------------


def test_gzd12_and_gzd5_merge_into_decals_all_with_zero_votes_for_the_other_campaign(
    rows, tmp_path
):
    result = ingest(tmp_path, sources=f"{rows / GZD12},{rows / GZD5}", releases="gzd12,gzd5")
    catalog = catalog_of(result).set_index("id_str")
    tree, gzd5, gzd12 = load_tree("decals-all"), load_tree("gzd5"), load_tree("gzd12")
    assert result.tree == "decals-all" and result.n_galaxies == 12
    assert [(s.rows_read, s.rows_written, s.rows_rejected) for s in result.sources] == [
        (6, 6, 0)
    ] * 2
    from_gzd5 = pd.read_csv(rows / GZD5)["iauname"]
    from_gzd12 = pd.read_csv(rows / GZD12)["iauname"]
    assert (catalog.loc[from_gzd5, gzd12.label_cols] == 0).all().all()
    assert (catalog.loc[from_gzd12, gzd5.label_cols] == 0).all().all()
    assert (
        catalog.loc[from_gzd12, "how-rounded-dr12_completely"].to_numpy() == [0, 1, 0, 8, 4, 0]
    ).all()
    assert set(catalog["sources"]) == {"gzd12", "gzd5"}
    assert len(load_catalog(result.catalog, tree)) == 12
    manifest = json.loads(result.manifest.read_text())
    assert manifest["rows"] == {"read": 12, "written": 12, "rejected": 0}
    assert pd.read_csv(result.rejected).empty


def test_a_galaxy_in_both_campaigns_is_one_row_with_both_votes(rows, tmp_path):
    shared_id = "J084235.76+241231.3"  # a GZD-1/2 galaxy, given to the first GZD-5 row as well

    def rename(table):
        table.loc[0, "iauname"] = shared_id
        table.loc[0, "png_loc"] = "dr5/J084/J084235.76+241231.3.png"
        return table

    gzd5 = copy_csv(rows, GZD5, tmp_path, rename)
    result = ingest(
        tmp_path,
        sources=f"{rows / GZD12},{gzd5}",
        releases="gzd12,gzd5",
        images=f"{rows / 'gz_decals'}",
    )
    catalog = catalog_of(result).set_index("id_str")
    assert (result.rows_read, result.rows_written, result.n_galaxies) == (12, 12, 11)
    both = catalog.loc[shared_id]
    assert both["sources"] == "gzd12+gzd5"
    assert both["smooth-or-featured-dr12_total-votes"] == 52  # its GZD-1/2 votes
    assert both["smooth-or-featured_total-votes"] == 3  # and the GZD-5 row's
    assert both["file_loc"] == str(rows / "gz_decals/dr5/J084/J084235.76+241231.3.png")


def test_the_same_question_from_two_sources_rejects_those_rows(rows, tmp_path):
    first = copy_csv(rows, GZD5, tmp_path, lambda t: t.iloc[:4], "first.csv")
    last = copy_csv(rows, GZD5, tmp_path, lambda t: t.iloc[2:], "last.csv")
    result = ingest(
        tmp_path,
        sources=f"{first},{last}",
        releases="gzd5",
        images=str(rows / "gz_decals"),
        max_rejected_fraction=0.5,
    )
    assert [(s.rows_read, s.rows_written, s.rows_rejected) for s in result.sources] == [
        (4, 2, 2),
        (4, 2, 2),
    ]
    assert result.n_galaxies == 4
    rejected = only_rejection(tmp_path)
    assert rejected["row"].tolist() == ["3", "4", "1", "2"]
    assert rejected["reason"].str.contains("column 'iauname'.*also has votes for").all()
    assert "last.csv row 1" in rejected["reason"][0]


# ---- file-level errors: one line naming the file, the column and what to do ------------------


def test_missing_column_is_one_line_naming_file_and_column(rows, tmp_path):
    source = copy_csv(rows, GZD5, tmp_path, lambda t: t.drop(columns=["bar_weak"]))
    with pytest.raises(UserError) as err:
        ingest(tmp_path, sources=str(source), releases="gzd5")
    message = str(err.value)
    assert message.startswith(f"{source}: missing column(s) 'bar_weak' required by release gzd5")
    assert "\n" not in message
    assert not (tmp_path / "out" / "catalog.parquet").exists()


def test_release_mismatch_says_which_release_the_file_looks_like(rows, tmp_path):
    with pytest.raises(UserError, match="looks like a gzd12 file: pass releases=gzd12"):
        ingest(tmp_path, sources=str(rows / GZD12), releases="gzd5")
    with pytest.raises(UserError, match="release gzd12 gives .* tree 'gzd5' lacks; use tree=gzd12"):
        ingest(tmp_path, sources=str(rows / GZD12), releases="gzd12", tree="gzd5")
    with pytest.raises(UserError, match="different trees"):
        ingest(tmp_path, sources=f"{rows / GZD12},{rows / KAGGLE}")


def test_published_posteriors_are_refused_as_a_source_and_read_as_a_baseline(rows, tmp_path):
    posteriors = rows / "gz_decals/gz_decals_auto_posteriors.csv"
    with pytest.raises(UserError, match="automated posteriors.*not volunteer votes"):
        ingest(tmp_path, sources=str(posteriors))
    ids, concentrations = read_published_posteriors(posteriors, load_tree("gzd5"))
    assert ids[0] == "J075543.11+213131.1" and concentrations.shape == (6, 34, 25)
    assert concentrations[0, 0, 0] == pytest.approx(49.1831)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("absent.csv", None, "source file not found"),
        ("broken.parquet", b"not parquet", "cannot read it as parquet"),
        ("columns.csv", b"a,b\n1,2\n", "cannot tell which release"),
    ],
)
def test_unusable_files_are_one_clear_line(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=message) as err:
        ingest(tmp_path, sources=str(tmp_path / name))
    assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)


def test_a_file_given_twice_is_refused_before_any_row_is_read(rows, tmp_path):
    with pytest.raises(UserError, match="given twice in sources"):
        ingest(tmp_path, sources=f"{rows / GZD5},{rows / GZD5}")


def test_parquet_sources_keep_ids_as_text(rows, tmp_path):
    source = tmp_path / "kaggle.parquet"
    pd.read_csv(rows / KAGGLE).to_parquet(source)  # GalaxyID becomes an int64 column
    result = ingest(
        tmp_path, sources=str(source), images=str(rows / "kaggle_gz2/images_training_rev1")
    )
    assert catalog_of(result)["id_str"].tolist() == ["100008", "100023", "100053"]


def test_out_is_not_overwritten_unless_asked(rows, tmp_path):
    ingest(tmp_path, sources=str(rows / GZD12))
    with pytest.raises(UserError, match="overwrite=true"):
        ingest(tmp_path, sources=str(rows / GZD12))
    assert ingest(tmp_path, sources=str(rows / GZD12), overwrite=True).n_galaxies == 6


# ---- row-level problems: rejected rows naming the column and row ----------------------------


def _set(column, row, value):
    def mutate(table):
        table.loc[row - 1, column] = value
        return table

    return mutate


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (
            _set("smooth-or-featured_smooth", 2, "4"),
            "column 'smooth-or-featured_total-votes' is 5 but smooth-or-featured_smooth \\+ "
            "smooth-or-featured_featured-or-disk \\+ smooth-or-featured_artifact = 6",
        ),
        (_set("png_loc", 2, "dr5/J085/nowhere.png"), "image .*nowhere.png not found"),
        (
            _set("png_loc", 2, "../../../../../../../../etc/passwd"),
            "image .*etc/passwd is outside the image folder .*; move it inside, or pass "
            "images_outside=true",
        ),
        (
            _set("iauname", 2, "J081412.47+220853.0"),
            "column 'iauname': id 'J081412.47\\+220853.0' is repeated in rows 1, 2",
        ),
        (_set("bar_no", 2, "-1"), "column 'bar_no' is negative"),
        (_set("bar_no", 2, "many"), "column 'bar_no' is not a number \\('many'\\)"),
        (_set("bar_no", 2, None), "column 'bar_no' is empty"),
        (_set("bar_no", 2, "0.5"), "column 'bar_no' is not a whole number of votes"),
        (_set("iauname", 2, None), "column 'iauname' is empty"),
    ],
)
def test_row_problems_are_rejected_rows_naming_column_and_row(rows, tmp_path, mutate, reason):
    source = copy_csv(rows, GZD5, tmp_path, mutate)
    images = str(rows / "gz_decals")
    with pytest.raises(UserError) as err:
        ingest(tmp_path, sources=str(source), images=images)
    message = str(err.value)  # names the first rejected row (1 when rows 1 and 2 share an id)
    assert re.match(rf"{re.escape(str(source))}: row [12] \(id .*\) rejected: column '", message)
    assert "\n" not in message
    rejected = only_rejection(tmp_path)
    assert rejected.columns.tolist() == ["source", "row", "id_str", "reason"]
    assert "2" in rejected["row"].tolist()
    assert rejected["reason"].str.contains(reason).any()
    assert not (tmp_path / "out" / "catalog.parquet").exists()

    result = ingest(
        tmp_path / "lenient", sources=str(source), images=images, max_rejected_fraction=0.5
    )
    assert result.rows_read == result.rows_written + result.rows_rejected == 6
    assert result.rows_rejected == len(pd.read_csv(result.rejected))


def test_kaggle_shares_that_do_not_follow_the_tree_are_rejected(rows, tmp_path):
    source = copy_csv(rows, KAGGLE, tmp_path, _set("Class2.2", 1, "0.3"))
    result = ingest(
        tmp_path,
        sources=str(source),
        images=str(rows / "kaggle_gz2/images_training_rev1"),
        max_rejected_fraction=0.5,
    )
    reasons = only_rejection(tmp_path)["reason"]
    assert (
        result.rows_rejected == 1
        and reasons.str.contains(
            "columns 'Class2.1'..'Class2.2' add up to 0.300000 but Class1.2 = 0.616853"
        ).all()
    )


# ---- release generic -------------------------------------------------------------------------


def test_generic_mapping_reads_any_table(rows, tmp_path):
    def renamed(table):
        table = table.rename(
            columns={
                "iauname": "name",
                "png_loc": "picture",
                "smooth-or-featured_smooth": "smooth",
                "smooth-or-featured_featured-or-disk": "featured",
                "smooth-or-featured_artifact": "artifact",
                "smooth-or-featured_total-votes": "votes",
            }
        )
        return table[["name", "picture", "smooth", "featured", "artifact", "votes"]]

    source = copy_csv(rows, GZD5, tmp_path, renamed, "mine.csv")
    mapping = tmp_path / "mine.yaml"
    mapping.write_text(
        "id_column: name\nimage_column: picture\ntree: gzd5\ncolumns:\n"
        "  smooth-or-featured_smooth: smooth\n  smooth-or-featured_featured-or-disk: featured\n"
        "  smooth-or-featured_artifact: artifact\n  smooth-or-featured_total-votes: votes\n"
    )
    result = ingest(
        tmp_path,
        sources=str(source),
        releases="generic",
        mapping=str(mapping),
        images=str(rows / "gz_decals"),
    )
    catalog = catalog_of(result)
    assert result.tree == "gzd5" and result.rows_written == 6
    assert catalog["smooth-or-featured_smooth"].tolist() == [3, 3, 27, 2, 3, 5]
    assert "merging" in result.sources[0].absent_questions
    assert (catalog["merging_total-votes"] == 0).all()


def test_generic_mapping_of_cumulative_fractions_matches_the_kaggle_release(rows, tmp_path):
    tree = load_tree("kaggle-gz2")
    mapping = tmp_path / "kaggle.yaml"
    columns = "".join(
        f"  {label}: '{col}'\n"
        for label, col in zip(tree.label_cols, kaggle_columns(tree), strict=True)
    )
    mapping.write_text(
        "id_column: GalaxyID\nimage_pattern: '{id}.jpg'\n"
        f"tree: {TREES / 'kaggle-gz2.yaml'}\ncount_mode: pseudo\ncolumns:\n{columns}"
    )
    images = str(rows / "kaggle_gz2/images_training_rev1")
    generic = ingest(
        tmp_path / "generic",
        sources=str(rows / KAGGLE),
        releases="generic",
        mapping=str(mapping),
        images=images,
    )
    kaggle = ingest(tmp_path / "kaggle", sources=str(rows / KAGGLE), images=images)
    pd.testing.assert_frame_equal(
        catalog_of(generic).drop(columns="sources"), catalog_of(kaggle).drop(columns="sources")
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "id_column: a\nimage_pattern: x\ntree: gzd5\ncolumns: {bar_weak: w}\n",
            "question 'bar' maps \\['bar_weak'\\] but not",
        ),
        (
            "id_column: a\nimage_pattern: x\ntree: gzd5\ncolumns: {bar_sometimes: w}\n",
            "'bar_sometimes' is not an answer column",
        ),
        ("id_column: a\ntree: gzd5\ncolumns: {}\n", "missing key\\(s\\) \\['columns'\\]"),
        (
            "id_column: a\nimage_pattern: x\ntree: gzd5\nfolder: b\ncolumns: {a: b}\n",
            "unknown key\\(s\\) \\['folder'\\]",
        ),
    ],
)
def test_generic_mapping_problems_name_the_mapping_file(rows, tmp_path, text, message):
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        ingest(tmp_path, sources=str(rows / GZD5), releases="generic", mapping=str(mapping))
    assert str(err.value).startswith(str(mapping))


# ---- config --------------------------------------------------------------------------------


def test_config_splits_lists_and_broadcasts_one_release_and_folder():
    config = IngestConfig.resolve(
        "debug", sources="a.csv, b.parquet", releases="gzd5", images="imgs", out="o"
    )
    assert config.sources == ("a.csv", "b.parquet") and config.max_rows == 100
    assert config.per_source() == [("a.csv", "gzd5", "imgs"), ("b.parquet", "gzd5", "imgs")]
    assert config.flatten()["ingest.sources"] == "a.csv,b.parquet"
    assert IngestConfig.from_strings("paper", {"sources": "a.csv", "out": "o"}).releases == (
        "auto",
    )


@pytest.mark.parametrize(
    "values, message",
    [
        ({"out": "o"}, "sources is empty"),
        ({"sources": "a.csv"}, "out is empty"),
        ({"sources": "a.txt", "out": "o"}, "'a.txt' is not a .csv/.parquet/.pq file"),
        ({"sources": "a.csv,b.csv", "releases": "gzd5,gzd12,gz2", "out": "o"}, "3 releases for 2"),
        ({"sources": "a.csv", "releases": "gzd7", "out": "o"}, "releases=\\('gzd7',\\) is not one"),
        ({"sources": "a.csv", "images": "x,y", "out": "o"}, "2 image folders for 1"),
        ({"sources": "a.csv", "count_mode": "rounded", "out": "o"}, "count_mode='rounded'"),
        ({"sources": "a.csv", "n_volunteers": 0, "out": "o"}, "n_volunteers=0 must be >= 1"),
        ({"sources": "a.csv", "max_rejected_fraction": 1.5, "out": "o"}, "must be <= 1"),
        ({"sources": "a.csv", "releases": "generic", "out": "o"}, "generic needs mapping"),
        ({"sources": "a.csv", "mapping": "m.yaml", "out": "o"}, "mapping is read only by"),
    ],
)
def test_bad_configs_fail_on_construction(values, message):
    with pytest.raises(ConfigError, match=message) as err:
        IngestConfig.resolve("paper", **values)
    assert str(err.value).startswith("invalid ingest config")


def test_releases_are_detected_from_real_headers(rows):
    for name, release in [
        (GZD5, "gzd5"),
        (GZD12, "gzd12"),
        (HART16, "gz2"),
        (KAGGLE, "kaggle-gz2"),
    ]:
        assert detect_release(list(pd.read_csv(rows / name, nrows=0).columns)) == release


def test_image_paths_outside_the_image_folder_are_accepted_only_when_asked(rows, tmp_path):
    source = copy_csv(rows, GZD5, tmp_path, _set("png_loc", 2, "/etc/hostname"))
    images = str(rows / "gz_decals")
    result = ingest(tmp_path, sources=str(source), images=images, images_outside=True)
    assert result.rows_rejected == 0
    assert "/etc/hostname" in pd.read_parquet(result.catalog)["file_loc"].tolist()
