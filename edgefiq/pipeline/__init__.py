"""End to end runs: ``edgefiq run RECIPE`` composes label -> distill -> prune -> export -> eval -> bench.

- ``recipe``: the ``RunRecipe`` dataclass and ``load_recipe``;
- ``runner``: the stage engine (content-hashed stage keys in ``state.json``, skip, resume);
- ``stages``: one small function per stage over the owning team's library function;
- ``report``: the final ``report.md`` / ``report.json`` / plots.
"""

from edgefiq.pipeline.recipe import RunRecipe, load_recipe

__all__ = ["RunRecipe", "load_recipe"]
