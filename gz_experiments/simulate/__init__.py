"""The embedded default dataset: rendered galaxies and volunteers walking the GZ DECaLS tree.

    simulate(config) -> catalog path      default_dataset("cpu") -> cached catalog path
    simulate_votes(config) -> Votes       (latents, true probabilities, counts; no images)

Modules: `latents` (what each galaxy is), `profiles` + `render` + `artifacts` (images),
`probabilities` (what volunteers would answer), `volunteers` (how many, walking the tree),
`dataset` (writing catalog / images / truth in parallel), `preview` (a grid figure).
"""

from importlib import import_module

_EXPORTS = {
    "simulate": "dataset",
    "default_dataset": "dataset",
    "dataset_dir": "dataset",
    "cache_dir": "dataset",
    "simulate_votes": "volunteers",
    "Votes": "volunteers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Lazy, so that worker processes importing the renderer do not pay for pandas.
    if name in _EXPORTS:
        return getattr(import_module(f"gz_experiments.simulate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
