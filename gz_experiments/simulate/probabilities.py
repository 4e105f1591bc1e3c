"""What volunteers would answer: the true probability of every answer of every GZ DECaLS question.

One function per question of the `gzd5` tree maps latents to answer probabilities, for *every*
galaxy (a question may be reached by a volunteer who misread an earlier one). Answers get less
certain as detail becomes harder to see: `visibility` falls with surface brightness (`snr`) and
resolution (`r_eff / psf_fwhm`), and structure in the disk plane (arms, bars) also hides as a disk
turns edge-on. So a faint spiral is called smooth by many volunteers, as in real Galaxy Zoo.

Ordered answers (bar strength, bulge size, roundness, winding, disturbance) use an ordered-logit
model: a latent value, cut points between answers, and a width that grows with the ambiguity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gz_experiments.errors import UserError
from gz_experiments.schema import Schema

FLOOR = 0.003  # no answer is impossible: some volunteer always clicks it


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@dataclass(frozen=True)
class Seen:
    """Latents plus what a volunteer can make out of them (all arrays of length n)."""

    lat: dict[str, np.ndarray]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.lat[key]

    @property
    def smooth(self) -> np.ndarray:
        return self.lat["morphology"] == 0

    @property
    def disk(self) -> np.ndarray:
        return self.lat["morphology"] == 1

    @property
    def artifact_class(self) -> np.ndarray:
        return self.lat["morphology"] == 2

    @property
    def brightness_visibility(self) -> np.ndarray:
        return sigmoid(1.8 * (np.log(self["snr"]) - np.log(5.0)))

    @property
    def visibility(self) -> np.ndarray:
        """0..1: how well fine detail can be seen (bright and well resolved -> 1)."""
        resolution = self["r_eff"] / self["psf_fwhm"]
        return self.brightness_visibility * sigmoid(2.5 * (np.log(resolution) - np.log(2.5)))

    @property
    def edge_on(self) -> np.ndarray:
        return np.where(self.disk, sigmoid((self["inclination"] - 76.0) / 4.0), 0.0)

    @property
    def plane_visibility(self) -> np.ndarray:
        """Visibility of structure in the disk plane (arms, bars): lost as the disk tilts."""
        return self.visibility * sigmoid((68.0 - self["inclination"]) / 6.0)


def ordinal(x: np.ndarray, cuts: list[float], width: np.ndarray) -> np.ndarray:
    """Ordered-logit probabilities (n, len(cuts)+1) of answers from low to high x."""
    below = np.stack([sigmoid((c - x) / width) for c in cuts] + [np.ones_like(x)], axis=-1)
    return np.diff(below, axis=-1, prepend=0.0)


def blend(sharp: np.ndarray, confused, amount: np.ndarray) -> np.ndarray:
    """Mix a clear-sighted answer distribution with a confused one, per galaxy."""
    amount = np.asarray(amount)[..., None]
    return (1 - amount) * sharp + amount * np.asarray(confused, dtype=float)


def _rows_where(mask: np.ndarray, a, b) -> np.ndarray:
    """Per galaxy, the row of `a` where mask else of `b` (either may be one shared row)."""
    width = max(np.shape(a)[-1], np.shape(b)[-1])
    shape = (mask.shape[0], width)
    return np.where(mask[:, None], np.broadcast_to(a, shape), np.broadcast_to(b, shape))


# ---- one function per question; columns in the order of the answers named -------------------


def smooth_or_featured(s: Seen) -> dict[str, np.ndarray]:
    vis = s.visibility
    # Volunteers click "artifact" more for poor images and crowded fields, and for real artifacts.
    strength = s["artifact_strength"]
    contamination = np.where(s.artifact_class, 0.5 + 0.4 * strength, 0.35 * strength)
    p_art = np.clip(0.045 * (1 - vis) + 0.018 * s["n_background"] + contamination, 0, 0.95)
    structure = np.clip(
        0.9 * s["arm_strength"] + 0.5 * s["bar_strength"] + 0.5 * (1 - s["bulge_fraction"]), 0, 1
    )
    # An edge-on disk is obvious even when faint; face-on structure needs detail.
    seen = np.maximum(structure * vis, s.edge_on * s.brightness_visibility)
    disk_featured = 0.1 + 0.88 * seen**0.7
    smooth_featured = 0.1 + 0.25 * sigmoid((0.45 - s["axis_ratio"]) / 0.07)  # cigars look disky
    featured = np.where(s.disk, disk_featured, np.where(s.smooth, smooth_featured, 0.25))
    featured = np.clip(featured + 0.12 * (s["interaction"] >= 2), 0, 0.97)
    return {
        "smooth": (1 - p_art) * (1 - featured),
        "featured-or-disk": (1 - p_art) * featured,
        "artifact": p_art,
    }


def disk_edge_on(s: Seen) -> dict[str, np.ndarray]:
    unsure = 0.5 * (1 - s.brightness_visibility)
    disk_yes = (1 - unsure) * s.edge_on + unsure * 0.3
    smooth_yes = 0.05 + 0.6 * sigmoid((0.4 - s["axis_ratio"]) / 0.06)
    trail = s["artifact"] == 2  # a satellite trail looks like a thin edge-on disk
    yes = np.where(s.disk, disk_yes, np.where(trail, 0.6, np.where(s.smooth, smooth_yes, 0.2)))
    return {"yes": yes, "no": 1 - yes}


def has_spiral_arms(s: Seen) -> dict[str, np.ndarray]:
    seen = s["arm_strength"] * s.plane_visibility
    yes = 0.06 + 0.88 * sigmoid((seen - 0.2) / 0.06)
    return {"yes": np.where(s.disk, yes, 0.1), "no": np.where(s.disk, 1 - yes, 0.9)}


def bar(s: Seen) -> dict[str, np.ndarray]:
    vis = s.plane_visibility
    seen = s["bar_strength"] * (1 - 0.6 * s["bulge_fraction"]) * vis
    probs = ordinal(seen, [0.15, 0.42], 0.05 + 0.08 * (1 - vis))  # no, weak, strong
    probs = blend(probs, [0.72, 0.2, 0.08], 0.4 * (1 - vis))
    return {"no": probs[:, 0], "weak": probs[:, 1], "strong": probs[:, 2]}


def bulge_size(s: Seen) -> dict[str, np.ndarray]:
    vis = s.visibility
    size = np.where(s.disk, s["bulge_fraction"], np.where(s.smooth, 0.8, 0.4))
    probs = ordinal(size, [0.04, 0.14, 0.3, 0.52], 0.03 + 0.08 * (1 - vis))
    probs = blend(probs, [0.1, 0.3, 0.35, 0.15, 0.1], 0.3 * (1 - vis))
    names = ["none", "small", "moderate", "large", "dominant"]
    return {name: probs[:, i] for i, name in enumerate(names)}


def how_rounded(s: Seen) -> dict[str, np.ndarray]:
    width = 0.04 + 0.06 * (1 - s.visibility)
    probs = ordinal(s["axis_ratio"], [0.45, 0.75], width)  # cigar, in-between, round
    return {"cigar-shaped": probs[:, 0], "in-between": probs[:, 1], "round": probs[:, 2]}


def edge_on_bulge(s: Seen) -> dict[str, np.ndarray]:
    none = sigmoid((0.06 - s["bulge_fraction"]) / 0.025)
    boxy = (1 - none) * np.where(s["bulge_boxy"], 0.75, 0.06)
    sharp = np.stack([boxy, none, 1 - none - boxy], axis=-1)  # boxy, none, rounded
    probs = blend(sharp, [0.1, 0.3, 0.6], 0.5 * (1 - s.visibility))
    probs = _rows_where(s.disk, probs, [0.05, 0.15, 0.8])
    return {"boxy": probs[:, 0], "none": probs[:, 1], "rounded": probs[:, 2]}


def spiral_winding(s: Seen) -> dict[str, np.ndarray]:
    vis = s.plane_visibility * np.minimum(1, s["arm_strength"] / 0.5)
    probs = ordinal(s["pitch_angle"], [15.0, 25.0], 2.5 + 6.0 * (1 - vis))  # tight .. loose
    probs = _rows_where(s["arm_strength"] > 0, probs, [0.3, 0.45, 0.25])
    return {"tight": probs[:, 0], "medium": probs[:, 1], "loose": probs[:, 2]}


def spiral_arm_count(s: Seen) -> dict[str, np.ndarray]:
    vis = s.plane_visibility * np.minimum(1, s["arm_strength"] / 0.5)
    counts = np.arange(1, 6)  # 1, 2, 3, 4, more than 4
    arms = np.minimum(s["arm_count"], 5)[:, None]
    sigma = (0.35 + 1.0 * (1 - vis))[:, None]
    sharp = np.exp(-((counts[None] - arms) ** 2) / (2 * sigma**2))
    sharp /= sharp.sum(axis=1, keepdims=True)
    sharp = blend(sharp, [0.1, 0.55, 0.2, 0.1, 0.05], 0.3 * (1 - vis))
    cant_tell = np.where(s["arm_strength"] > 0, 0.04 + 0.55 * (1 - vis), 0.6)[:, None]
    probs = np.concatenate([sharp * (1 - cant_tell), cant_tell], axis=1)
    names = ["1", "2", "3", "4", "more-than-4", "cant-tell"]
    return {name: probs[:, i] for i, name in enumerate(names)}


def merging(s: Seen) -> dict[str, np.ndarray]:
    vis = np.maximum(s.brightness_visibility, 0.5)
    probs = ordinal(s["interaction"].astype(float), [0.5, 1.5, 2.5], 0.12 + 0.2 * (1 - vis))
    probs = _rows_where(s.artifact_class, [0.7, 0.15, 0.1, 0.05], probs)
    names = ["none", "minor-disturbance", "major-disturbance", "merger"]
    return {name: probs[:, i] for i, name in enumerate(names)}


QUESTION_MODELS: dict[str, Callable[[Seen], dict[str, np.ndarray]]] = {
    "smooth-or-featured": smooth_or_featured,
    "disk-edge-on": disk_edge_on,
    "has-spiral-arms": has_spiral_arms,
    "bar": bar,
    "bulge-size": bulge_size,
    "how-rounded": how_rounded,
    "edge-on-bulge": edge_on_bulge,
    "spiral-winding": spiral_winding,
    "spiral-arm-count": spiral_arm_count,
    "merging": merging,
}


def true_probabilities(latents: dict[str, np.ndarray], schema: Schema) -> np.ndarray:
    """(n, schema.n_answers) answer probabilities in label order; each question sums to 1.

    Works for `gzd5` and any tree made of its questions (e.g. `gzd5.subset([...])`).
    """
    seen = Seen(latents)
    n = len(latents["morphology"])
    out = np.zeros((n, schema.n_answers))
    for question in schema.questions:
        model = QUESTION_MODELS.get(question.name)
        answers = model(seen) if model else {}
        if not answers or any(a.name not in answers for a in question.answers):
            raise UserError(
                f"the simulator knows the gzd5 questions only, not question {question.name!r} "
                f"with answers {[a.name for a in question.answers]} of schema {schema.name!r}; "
                f"simulate with schema gzd5 (or a subset of it)"
            )
        for answer in question.answers:
            out[:, answer.index] = np.broadcast_to(answers[answer.name], (n,))
        block = out[:, question.start : question.end + 1] + FLOOR
        out[:, question.start : question.end + 1] = block / block.sum(axis=1, keepdims=True)
    return out
