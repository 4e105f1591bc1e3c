import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gz_experiments.catalog import load_catalog, split_catalog
from gz_experiments.errors import UserError
from gz_experiments.schema import get_schema

from .conftest import shared_data


def _catalog(tmp_path, rows=6, schema="gz1"):
    schema = get_schema(schema)
    (tmp_path / "img").mkdir()
    records = []
    for i in range(rows):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / "img" / f"g{i}.png")
        votes = {c: float((i + j) % 3) for j, c in enumerate(schema.label_cols)}
        records.append({"id_str": f"g{i}", "file_loc": f"img/g{i}.png", **votes})
    df = pd.DataFrame(records)
    return df, schema


def _load(tmp_path, df, schema, **kwargs):
    path = tmp_path / "cat.csv"
    df.to_csv(path, index=False)
    return load_catalog(path, schema, **kwargs)


def test_valid_catalog_resolves_relative_paths_and_float_votes(tmp_path):
    df, schema = _catalog(tmp_path)
    out = _load(tmp_path, df, schema)
    assert out["file_loc"].iloc[0] == str(tmp_path / "img" / "g0.png")
    assert out[schema.label_cols].dtypes.unique().tolist() == [np.float32]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda df: df.drop(columns=["gz1-class_spiral"]),
            r"missing vote column\(s\) \['gz1-class_spiral'\]",
        ),
        (lambda df: df.drop(columns=["file_loc"]), "missing required column"),
        (
            lambda df: df.assign(id_str=["a", "a", "b", "c", "d", "e"]),
            "duplicate ids.*2 row\\(s\\): 1, 2",
        ),
        (
            lambda df: df.assign(**{"gz1-class_merger": [1, -1, 0, 0, 0, 0]}),
            "'gz1-class_merger' is negative in 1 row\\(s\\): 2",
        ),
        (lambda df: df.assign(**{"gz1-class_merger": [1, 0.5, 0, 0, 0, 0]}), "not a whole number"),
        (
            lambda df: df.assign(**{"gz1-class_merger": [1, None, 0, 0, 0, 0]}),
            "is empty \\(NaN\\); pass --fill-missing-votes",
        ),
        (lambda df: df.assign(**{"gz1-class_merger": ["x", 0, 0, 0, 0, 0]}), "is not a number"),
        (
            lambda df: df.assign(
                file_loc=["img/nope.png"] + [f"img/g{i}.png" for i in range(1, 6)]
            ),
            "missing image files in 1 row",
        ),
        (lambda df: df.assign(**{"gz1-class_total-votes": 99}), "differs from the sum"),
    ],
)
def test_each_problem_kind_gives_one_clear_error(tmp_path, mutate, message):
    df, schema = _catalog(tmp_path)
    with pytest.raises(UserError, match=message) as info:
        _load(tmp_path, mutate(df), schema)
    assert "cat.csv" in str(info.value) and "\n" not in str(info.value)


def test_fill_missing_votes_is_explicit_and_reported(tmp_path, capsys):
    df, schema = _catalog(tmp_path)
    df.loc[1, "gz1-class_merger"] = None
    out = _load(tmp_path, df, schema, fill_missing_votes=True)
    assert out.loc[1, "gz1-class_merger"] == 0.0
    assert "filled 1 empty vote cell" in capsys.readouterr().out


def test_unlabelled_catalog_needs_no_votes(tmp_path):
    df, schema = _catalog(tmp_path)
    out = _load(tmp_path, df[["id_str", "file_loc"]], schema, labelled=False)
    assert len(out) == 6


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    df = pd.DataFrame({"id_str": [str(i) for i in range(100)]})
    a, b = split_catalog(df, 0.1, 0.2, seed=3), split_catalog(df, 0.1, 0.2, seed=3)
    assert {k: len(v) for k, v in a.items()} == {"train": 70, "val": 10, "test": 20}
    assert all(a[k]["id_str"].tolist() == b[k]["id_str"].tolist() for k in a)
    ids = pd.concat(a.values())["id_str"]
    assert ids.is_unique and len(ids) == 100
    assert (
        split_catalog(df, 0.1, 0.2, seed=4)["test"]["id_str"].tolist()
        != a["test"]["id_str"].tolist()
    )


def test_real_gz1_catalog_loads_as_one_vote_per_galaxy():
    folder = shared_data("gz1_sdss_64")
    schema = get_schema("gz1")
    df = load_catalog(folder / "catalog.csv", schema, class_column="gz1_class_name")
    assert len(df) == 6664
    assert (df[schema.label_cols].sum(axis=1) == 1).all()
    assert df["gz1-class_spiral"].sum() == 436 + 414


def test_real_gzd5_first_question_catalog_loads_with_partial_labels(tmp_path):
    folder = shared_data("gzd5_q1_votes")
    raw = pd.read_csv(folder / "gzd_smooth_featured_votes_4000.csv")
    # The file has repeated ids and no images: dedupe and skip the file check.
    path = tmp_path / "q1.parquet"
    raw.drop_duplicates("id_str").assign(file_loc="unused.png").to_parquet(path)
    schema = get_schema("gzd5").subset(["smooth-or-featured"])
    df = load_catalog(path, schema, check_files=False)
    full = load_catalog(path, get_schema("gzd5"), check_files=False, missing_questions="zero")
    assert len(df) == 3988
    assert (df["smooth-or-featured_total-votes"] == df[schema.label_cols].sum(axis=1)).all()
    assert full["bar_strong"].sum() == 0


def test_real_gzd5_images_catalog_loads_unlabelled_and_labelled_subset():
    folder = shared_data("gzd5_real_128")
    schema = get_schema("gzd5")
    df = load_catalog(folder / "catalog.csv", schema, labelled=False)
    assert len(df) == 470
    with pytest.raises(UserError, match="is empty"):
        load_catalog(folder / "catalog.csv", schema.subset(["smooth-or-featured"]))


# ---- hostile or broken catalogs (issue: nothing lost, no traceback) -------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1e39, "above 16,777,216 votes, more than float32 stores exactly"),
        (16777217, "above 16,777,216 votes"),
    ],
)
def test_counts_float32_cannot_hold_exactly_are_refused(tmp_path, value, message):
    df, schema = _catalog(tmp_path)
    df["gz1-class_merger"] = df["gz1-class_merger"].astype(object)
    df.loc[2, "gz1-class_merger"] = value
    with pytest.raises(UserError, match=f"'gz1-class_merger' is {message}.*row\\(s\\): 3"):
        _load(tmp_path, df, schema)
    df.loc[2, "gz1-class_merger"] = 16777216  # the largest exact one is fine
    assert _load(tmp_path, df, schema)["gz1-class_merger"][2] == 16777216


def test_empty_catalogs_and_blank_ids_are_refused(tmp_path):
    df, schema = _catalog(tmp_path)
    with pytest.raises(UserError, match="has no rows"):
        _load(tmp_path, df.iloc[:0], schema)
    totals = df.iloc[:0].assign(**{"gz1-class_total-votes": []})
    with pytest.raises(UserError, match="has no rows"):
        _load(tmp_path, totals, schema)
    df.loc[1, "id_str"] = None
    with pytest.raises(UserError, match="'id_str' is empty in 1 row\\(s\\): 2"):
        _load(tmp_path, df, schema)


def test_a_catalog_without_a_single_vote_is_refused(tmp_path):
    df, schema = _catalog(tmp_path)
    df[schema.label_cols] = 0.0
    with pytest.raises(UserError, match="every vote count is 0"):
        _load(tmp_path, df, schema)


def test_too_few_galaxies_for_the_split_are_refused_with_the_numbers(tmp_path):
    df, schema = _catalog(tmp_path, rows=1)
    loaded = _load(tmp_path, df, schema)
    with pytest.raises(
        UserError, match=r"1 galaxies are too few.*\['val', 'test'\] would be empty"
    ):
        split_catalog(loaded, 0.1, 0.2, seed=0, source="cat.csv")
    assert len(split_catalog(loaded, 0.0, 0.0, seed=0)["train"]) == 1


def test_class_labels_become_one_vote_through_the_trees_aliases(tmp_path):
    df, schema = _catalog(tmp_path, rows=4)
    df = df.drop(columns=schema.label_cols)
    df["label"] = ["elliptical", "spiral_cw", "edge_on", "gz1-class_merger"]
    out = _load(tmp_path, df, schema, class_column="label")
    assert out[schema.label_cols].sum(axis=1).tolist() == [1.0] * 4
    assert out["gz1-class_spiral"].tolist() == [0, 1, 0, 0]
    df.loc[3, "label"] = "cigar"
    with pytest.raises(UserError, match=r"'label' has labels \['cigar'\] in 1 row\(s\): 4"):
        _load(tmp_path, df, schema, class_column="label")


def test_fractional_votes_need_the_flag(tmp_path):
    df, schema = _catalog(tmp_path)
    df["gz1-class_merger"] = 0.4
    with pytest.raises(UserError, match="--fractional-votes"):
        _load(tmp_path, df, schema)
    assert _load(tmp_path, df, schema, fractional_votes=True)["gz1-class_merger"][
        0
    ] == pytest.approx(0.4)
