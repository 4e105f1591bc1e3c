import json

import numpy as np
import pytest

from gz_experiments.errors import UserError
from gz_experiments.schema import BUILTIN_TREES, get_schema

EXPECTED_SIZES = {
    "gzd5": (10, 34),
    "dr8": (10, 34),
    "gzd12": (10, 30),
    "gz2": (10, 30),
    "gz1": (1, 5),
    "decals-all": (20, 64),
    "kaggle-gz2": (11, 37),
}


@pytest.mark.parametrize("name", BUILTIN_TREES)
def test_builtin_tree_sizes_and_contiguous_answers(name):
    schema = get_schema(name)
    assert (schema.n_questions, schema.n_answers) == EXPECTED_SIZES[name]
    flat = [i for start, end in schema.question_index_groups for i in range(start, end + 1)]
    assert flat == list(range(schema.n_answers))
    for q in schema.questions:
        assert q.label_cols == schema.label_cols[q.start : q.end + 1]


def test_gzd5_matches_zoobot_index_groups_and_faithful_parents():
    schema = get_schema("gzd5")
    assert schema.question_index_groups == [
        (0, 2),
        (3, 4),
        (5, 6),
        (7, 9),
        (10, 14),
        (15, 17),
        (18, 20),
        (21, 23),
        (24, 29),
        (30, 33),
    ]
    assert schema.question("bar").parents == ("disk-edge-on_no",)
    assert set(schema.question("merging").parents) == {
        "smooth-or-featured_smooth",
        "smooth-or-featured_featured-or-disk",
    }
    assert schema.label_cols[0] == "smooth-or-featured_smooth"
    assert schema.answer("spiral-arm-count_more-than-4").index == 28


def test_dr8_is_gzd5_with_campaign_suffix():
    gzd5, dr8 = get_schema("gzd5"), get_schema("dr8")
    assert [q.name + "-dr8" for q in gzd5.questions] == [q.name for q in dr8.questions]
    assert gzd5.question_index_groups == dr8.question_index_groups


def test_p_asked_chain_and_two_parent_question():
    schema = get_schema("gzd5")
    fractions = np.zeros(schema.n_answers)
    values = {
        "smooth-or-featured_smooth": 0.2,
        "smooth-or-featured_featured-or-disk": 0.7,
        "smooth-or-featured_artifact": 0.1,
        "disk-edge-on_yes": 0.4,
        "disk-edge-on_no": 0.6,
        "has-spiral-arms_yes": 0.5,
        "has-spiral-arms_no": 0.5,
    }
    for col, v in values.items():
        fractions[schema.answer(col).index] = v
    asked = schema.p_asked(fractions)
    by_name = dict(zip([q.name for q in schema.questions], asked, strict=True))
    assert by_name["smooth-or-featured"] == 1.0
    assert by_name["disk-edge-on"] == pytest.approx(0.7)
    assert by_name["bar"] == pytest.approx(0.7 * 0.6)
    assert by_name["spiral-winding"] == pytest.approx(0.7 * 0.6 * 0.5)
    assert by_name["how-rounded"] == pytest.approx(0.2)
    assert by_name["merging"] == pytest.approx(0.9)  # smooth + featured, not artifact


def test_p_asked_is_vectorised_over_galaxies():
    schema = get_schema("gzd5")
    rng = np.random.default_rng(0)
    fractions = schema.fractions_within_questions(rng.random((7, schema.n_answers)))
    asked = schema.p_asked(fractions)
    assert asked.shape == (7, schema.n_questions)
    assert np.all((asked >= 0) & (asked <= 1 + 1e-12))


def test_fractions_of_an_unasked_question_are_zero_not_nan():
    schema = get_schema("gz1")
    out = schema.fractions_within_questions(np.zeros((2, 5)))
    assert np.array_equal(out, np.zeros((2, 5)))


def _write(tmp_path, tree, suffix=".yaml"):
    path = tmp_path / f"tree{suffix}"
    path.write_text(json.dumps(tree))  # JSON is valid YAML too
    return path


GOOD = {
    "name": "t",
    "questions": [
        {"name": "a", "answers": ["x", "y"]},
        {"name": "b", "answers": ["p", "q"], "parents": ["a_x"]},
    ],
}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_user_tree_loads_from_yaml_or_json(tmp_path, suffix):
    schema = get_schema(_write(tmp_path, GOOD, suffix))
    assert schema.label_cols == ["a_x", "a_y", "b_p", "b_q"]
    assert schema.question("b").parents == ("a_x",)


@pytest.mark.parametrize(
    "questions, message",
    [
        (
            [{"name": "a", "answers": ["x", "y"]}, {"name": "a", "answers": ["p", "q"]}],
            "appears twice",
        ),
        ([{"name": "a", "answers": ["x"]}], "needs at least 2"),
        ([{"name": "a", "answers": ["x", "y"], "parents": ["zz_x"]}], "not an answer column"),
        (
            [
                {"name": "a", "answers": ["x", "y"], "parents": ["b_p"]},
                {"name": "b", "answers": ["p", "q"], "parents": ["a_x"]},
            ],
            "cycle",
        ),
        ([{"name": "a", "answers": ["x", "x"]}], "repeats answer"),
        ([{"name": "a"}], "needs 'name' and 'answers'"),
    ],
)
def test_invalid_tree_gives_one_clear_message(tmp_path, questions, message):
    path = _write(tmp_path, {"name": "bad", "questions": questions})
    with pytest.raises(UserError, match=message) as info:
        get_schema(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_unparseable_tree_file_and_unknown_name(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("questions: [unclosed")
    with pytest.raises(UserError, match="cannot parse"):
        get_schema(bad)
    with pytest.raises(UserError, match="unknown schema"):
        get_schema("gzd99")


def test_subset_keeps_first_question_as_root():
    sub = get_schema("gzd5").subset(["smooth-or-featured", "how-rounded"])
    assert sub.label_cols[:3] == get_schema("gzd5").label_cols[:3]
    assert sub.question("how-rounded").parents == ("smooth-or-featured_smooth",)


def test_schema_round_trips_through_dict():
    schema = get_schema("gzd5")
    from gz_experiments.schema import Schema

    assert Schema.from_dict(schema.to_dict()) == schema


# ---- broken trees: one clear line each, never a traceback -----------------------------------


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        (
            [{"name": "a_b", "answers": ["c", "d"]}, {"name": "a", "answers": ["b_c", "x"]}],
            "both make the column 'a_b_c'",
        ),
        ([{"name": "a", "answers": ["x", "y"], "parents": 5}], "parents must be a list"),
        ([{"name": "a", "answers": ["x", "y"], "parents": [5]}], "parent 5 is not"),
        ([{"name": 7, "answers": ["x", "y"]}], "name 7 is not a non-empty text"),
    ],
)
def test_colliding_columns_and_odd_parents_are_refused(tmp_path, questions, message):
    path = _write(tmp_path, {"name": "bad", "questions": questions})
    with pytest.raises(UserError, match=message):
        get_schema(path)


def test_unquoted_yes_no_in_yaml_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "tree.yaml"
    path.write_text("questions:\n  - {name: ring, answers: [yes, no]}\n")
    with pytest.raises(UserError, match=r"answer True is not a non-empty text \(quote it"):
        get_schema(path)
    path.write_text('questions:\n  - {name: ring, answers: ["yes", "no"]}\n')
    assert get_schema(path).label_cols == ["ring_yes", "ring_no"]


def test_a_tree_file_that_is_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "tree.yaml"
    path.write_bytes("questions:\n  - {name: r\xe9gion, answers: [a, b]}\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8 text"):
        get_schema(path)
