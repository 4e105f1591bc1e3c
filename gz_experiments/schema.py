"""The domain model: a decision tree of Questions, each with Answers, as a Schema.

Everything else (loss, shards, metrics, predictions) takes a `Schema`. Pure Python + NumPy: no
TensorFlow import, so catalogs and trees can be checked without loading TensorFlow.

A tree file (YAML or JSON) looks like::

    name: my-tree
    questions:
      - {name: smooth-or-featured, answers: [smooth, featured-or-disk, artifact]}
      - {name: merging, answers: [none, merger],
         parents: [smooth-or-featured_smooth, smooth-or-featured_featured-or-disk]}

A question is asked when the volunteer gave *any* of its parent answers (a question may hang on
several answers, unlike zoobot's trees); a question with no parents is asked of everyone.
Label columns are ``{question}_{answer}``; the answers of one question are contiguous.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from gz_experiments.errors import UserError

BUILTIN_TREES = ("gzd5", "gzd12", "gz2", "dr8", "gz1", "decals-all", "kaggle-gz2")
TREE_KEYS = ("name", "questions", "class_aliases", "campaigns")


@dataclass(frozen=True)
class Answer:
    question: str
    name: str
    index: int  # position in Schema.label_cols (the model's output unit)

    @property
    def label_col(self) -> str:
        return f"{self.question}_{self.name}"


@dataclass(frozen=True)
class Question:
    name: str
    answers: tuple[Answer, ...]
    parents: tuple[str, ...]  # label columns of the answers that lead here; () for a root
    index: int

    @property
    def start(self) -> int:
        return self.answers[0].index

    @property
    def end(self) -> int:
        """Inclusive, as zoobot's question_index_groups."""
        return self.answers[-1].index

    @property
    def label_cols(self) -> list[str]:
        return [a.label_col for a in self.answers]

    @property
    def total_votes_col(self) -> str:
        return f"{self.name}_total-votes"


class Schema:
    """A validated decision tree. Build with `get_schema` or `Schema.from_dict`."""

    def __init__(
        self,
        name: str,
        questions: list[Question],
        class_aliases: dict[str, str] | None = None,
        campaigns: dict[str, str] | None = None,
    ):
        self.name = name
        # Other spellings of answers in one-label-per-galaxy catalogs (e.g. GZ1's spiral_cw).
        self.class_aliases: dict[str, str] = dict(class_aliases or {})
        # Campaign name -> the suffix of its question names ("" = the questions of no other
        # campaign), for trees that hold several campaigns side by side (decals-all).
        self.campaigns: dict[str, str] = dict(campaigns or {})
        self.questions: tuple[Question, ...] = tuple(questions)
        self.answers: tuple[Answer, ...] = tuple(a for q in questions for a in q.answers)
        self.label_cols: list[str] = [a.label_col for a in self.answers]
        self.question_index_groups: list[tuple[int, int]] = [(q.start, q.end) for q in questions]
        self._questions = {q.name: q for q in questions}
        self._answers = {a.label_col: a for a in self.answers}

    def __repr__(self) -> str:
        return (
            f"Schema({self.name!r}, {len(self.questions)} questions, {len(self.answers)} answers)"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @property
    def n_questions(self) -> int:
        return len(self.questions)

    @property
    def n_answers(self) -> int:
        return len(self.answers)

    def question(self, name: str) -> Question:
        try:
            return self._questions[name]
        except KeyError:
            raise KeyError(f"schema {self.name!r} has no question {name!r}") from None

    def answer(self, label_col: str) -> Answer:
        try:
            return self._answers[label_col]
        except KeyError:
            raise KeyError(f"schema {self.name!r} has no answer column {label_col!r}") from None

    @cached_property
    def topological_order(self) -> list[Question]:
        """Questions ordered so that every parent's question comes before its children."""
        order, seen = [], set()

        def visit(q: Question) -> None:
            if q.name in seen:
                return
            for parent in q.parents:
                visit(self._questions[self._answers[parent].question])
            seen.add(q.name)
            order.append(q)

        for q in self.questions:
            visit(q)
        return order

    def subset(self, question_names: list[str], name: str | None = None) -> Schema:
        """A tree of only these questions (e.g. a catalog labelled for the first question only).

        Parents outside the subset are dropped, so a kept question becomes a root.
        """
        unknown = [q for q in question_names if q not in self._questions]
        if unknown:
            raise UserError(f"schema {self.name!r} has no question(s) {unknown}")
        keep = [q for q in self.questions if q.name in question_names]
        kept_cols = {c for q in keep for c in q.label_cols}
        tree = {
            "name": name or f"{self.name}-subset",
            "questions": [
                {
                    "name": q.name,
                    "answers": [a.name for a in q.answers],
                    "parents": [p for p in q.parents if p in kept_cols],
                }
                for q in keep
            ],
        }
        return Schema.from_dict(tree, source=f"subset of {self.name}")

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "questions": [
                {"name": q.name, "answers": [a.name for a in q.answers], "parents": list(q.parents)}
                for q in self.questions
            ],
        }
        if self.class_aliases:
            out["class_aliases"] = dict(self.class_aliases)
        if self.campaigns:
            out["campaigns"] = dict(self.campaigns)
        return out

    # ---- probabilities -------------------------------------------------------------------

    def fractions_within_questions(self, values: np.ndarray) -> np.ndarray:
        """Normalise counts or concentrations (..., n_answers) to fractions within each question.

        A question whose values sum to 0 (never asked) gets 0 for every answer, never NaN.
        """
        values = np.asarray(values, dtype=np.float64)
        out = np.zeros_like(values)
        for q in self.questions:
            block = values[..., q.start : q.end + 1]
            total = block.sum(axis=-1, keepdims=True)
            np.divide(block, total, out=out[..., q.start : q.end + 1], where=total > 0)
        return out

    def p_asked(self, fractions: np.ndarray) -> np.ndarray:
        """Probability that a volunteer reaches each question, shape (..., n_questions).

        `fractions` are per-answer fractions within each question (..., n_answers). A root is
        always asked; otherwise p(asked) = sum over parent answers of p(parent asked) * fraction.
        The parent answers of one question are mutually exclusive paths, so the sum is exact.
        """
        fractions = np.asarray(fractions, dtype=np.float64)
        if fractions.shape[-1] != self.n_answers:
            raise ValueError(
                f"expected {self.n_answers} answer columns for schema {self.name!r}, "
                f"got {fractions.shape[-1]}"
            )
        asked = np.zeros(fractions.shape[:-1] + (self.n_questions,), dtype=np.float64)
        for q in self.topological_order:
            if not q.parents:
                asked[..., q.index] = 1.0
                continue
            for parent in q.parents:
                answer = self._answers[parent]
                parent_q = self._questions[answer.question]
                asked[..., q.index] += asked[..., parent_q.index] * fractions[..., answer.index]
        return asked

    def joint_fractions(self, fractions: np.ndarray) -> np.ndarray:
        """Per-question fractions (..., n_answers) -> the share of *all* volunteers who gave each
        answer: fraction x p_asked of its question (zoobot's joint_p; Kaggle's GZ2 "cumulative"
        vote fractions)."""
        fractions = np.asarray(fractions, dtype=np.float64)
        question_of = [self._questions[a.question].index for a in self.answers]
        return fractions * self.p_asked(fractions)[..., question_of]

    # ---- construction --------------------------------------------------------------------

    @classmethod
    def from_dict(cls, tree: dict, source: str = "<tree>") -> Schema:
        """Build and validate a tree; every problem raises a UserError naming `source`."""

        def fail(problem: str) -> UserError:
            return UserError(f"{source}: {problem}")

        if not isinstance(tree, dict) or not isinstance(tree.get("questions"), list):
            raise fail(
                "expected a mapping with a 'questions' list (see gz_experiments/trees/gzd5.yaml)"
            )
        name = str(tree.get("name") or Path(source).stem)
        raw_questions = tree["questions"]
        if not raw_questions:
            raise fail("the tree has no questions")

        questions = [_question(raw, i, fail) for i, raw in enumerate(raw_questions)]
        names = [q.name for q in questions]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise fail(
                f"question name {repeated[0]!r} appears twice; question names must be unique"
            )
        questions = _numbered(questions)
        label_cols: dict[str, Answer] = {}
        for answer in (a for q in questions for a in q.answers):
            other = label_cols.setdefault(answer.label_col, answer)
            if other is not answer:
                raise fail(
                    f"answer {answer.name!r} of question {answer.question!r} and answer "
                    f"{other.name!r} of question {other.question!r} both make the column "
                    f"{answer.label_col!r}; rename one of them"
                )
        for q in questions:
            for parent in q.parents:
                if parent not in label_cols:
                    raise fail(
                        f"question {q.name!r} hangs on {parent!r}, which is not an answer column "
                        f"of this tree (answer columns are '<question>_<answer>')"
                    )
                if label_cols[parent].question == q.name:
                    raise fail(f"question {q.name!r} hangs on its own answer {parent!r}")
        _check_acyclic(questions, label_cols, fail)
        aliases = tree.get("class_aliases") or {}
        if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
        ):
            raise fail(
                "class_aliases must map label text to answer names, e.g. {spiral_cw: spiral}"
            )
        unknown = sorted(set(tree) - set(TREE_KEYS))
        if unknown:
            raise fail(f"unknown key(s) {unknown}; a tree has {list(TREE_KEYS)}")
        campaigns = _campaigns(tree.get("campaigns"), questions, fail)
        return cls(name, questions, aliases, campaigns)

    def campaign_of(self, question: str) -> str:
        """The campaign a question belongs to ("" when the tree declares none)."""
        suffixed = [(name, s) for name, s in self.campaigns.items() if s and question.endswith(s)]
        if suffixed:
            return max(suffixed, key=lambda item: len(item[1]))[0]
        return next((name for name, s in self.campaigns.items() if not s), "")


def _campaigns(raw, questions: list[Question], fail) -> dict[str, str]:
    """`campaigns: {gzd5: "", gzd12: "-dr12"}`: every question must belong to one campaign."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise fail('campaigns must map campaign names to question suffixes, e.g. {gzd12: "-dr12"}')
    suffixes = [s for s in raw.values() if s]
    has_default = any(not s for s in raw.values())
    orphans = [
        q.name
        for q in questions
        if not any(q.name.endswith(s) for s in suffixes) and not has_default
    ]
    if orphans:
        raise fail(
            f"question(s) {orphans[:3]} belong to no campaign: give them a campaign suffix or "
            f'declare a campaign with the empty suffix ""'
        )
    return dict(raw)


def _text(value, what: str, fail) -> str:
    """Names must be text: YAML turns unquoted yes/no/on/off into booleans and 1 into a number."""
    if not isinstance(value, str) or not value.strip():
        hint = ' (quote it: "yes", "no", "1")' if isinstance(value, bool | int | float) else ""
        raise fail(f"{what} {value!r} is not a non-empty text{hint}")
    return value


def _question(raw, i: int, fail) -> Question:
    """One question from its mapping (answer indices are assigned by `_numbered`)."""
    if not isinstance(raw, dict) or "name" not in raw or "answers" not in raw:
        raise fail(f"question #{i + 1} needs 'name' and 'answers'")
    q_name = _text(raw["name"], f"question #{i + 1}'s name", fail)
    answers = raw["answers"]
    if not isinstance(answers, list):
        raise fail(f"question {q_name!r}: 'answers' must be a list")
    answer_names = [_text(a, f"question {q_name!r}: answer", fail) for a in answers]
    if len(answer_names) < 2:
        raise fail(f"question {q_name!r} has {len(answer_names)} answer(s); it needs at least 2")
    duplicates = sorted({a for a in answer_names if answer_names.count(a) > 1})
    if duplicates:
        raise fail(f"question {q_name!r} repeats answer(s) {duplicates}")
    parents = raw.get("parents", raw.get("parent"))
    parents = [] if parents is None else [parents] if isinstance(parents, str) else parents
    if not isinstance(parents, list):
        raise fail(
            f"question {q_name!r}: parents must be a list of answer columns, got {parents!r}"
        )
    parents = [_text(p, f"question {q_name!r}: parent", fail) for p in parents]
    answers = tuple(Answer(q_name, a, j) for j, a in enumerate(answer_names))
    return Question(q_name, answers, tuple(parents), i)


def _numbered(questions: list[Question]) -> list[Question]:
    """Give answers their position in label order (a question's answers are contiguous)."""
    out, next_index = [], 0
    for q in questions:
        answers = tuple(Answer(q.name, a.name, next_index + j) for j, a in enumerate(q.answers))
        next_index += len(answers)
        out.append(Question(q.name, answers, q.parents, q.index))
    return out


def _check_acyclic(questions: list[Question], label_cols: dict[str, Answer], fail) -> None:
    parents_of = {q.name: {label_cols[p].question for p in q.parents} for q in questions}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise fail(f"the tree has a cycle: {' -> '.join(cycle)}")
        state[name] = 1
        for parent in sorted(parents_of[name]):
            visit(parent, path + [name])
        state[name] = 2

    for q in questions:
        visit(q.name, [])


def load_tree_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: tree file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: the tree file is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # the parser's own message says where
        raise UserError(f"{path}: cannot parse the tree file: {exc}".replace("\n", " ")) from None


def get_schema(name_or_path: str | Path) -> Schema:
    """A built-in tree by name (gzd5, gzd12, gz2, dr8, gz1) or a user tree from a YAML/JSON file."""
    if isinstance(name_or_path, Schema):
        return name_or_path
    key = str(name_or_path)
    if key in BUILTIN_TREES:
        text = resources.files("gz_experiments.trees").joinpath(f"{key}.yaml").read_text()
        import yaml

        return Schema.from_dict(yaml.safe_load(text), source=f"built-in tree {key}")
    path = Path(key)
    if path.suffix.lower() in {".yaml", ".yml", ".json"} or path.exists():
        return Schema.from_dict(load_tree_file(path), source=str(path))
    raise UserError(
        f"unknown schema {key!r}: use one of {', '.join(BUILTIN_TREES)} or a path to a "
        f".yaml/.json tree file"
    )
