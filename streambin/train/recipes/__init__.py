"""Training recipes (generator + losses + step), looked up by name.

``get_recipe("mono2binaural")(config)`` -> a :class:`Recipe`; see :mod:`.base` to add one.
Registered: mono2binaural, apnet, multitask, sagm, avconsistency, geometry, sepstereo.
"""

from streambin.train.recipes.base import Recipe, available_recipes, get_recipe, register_recipe
from streambin.train.recipes import apnet as _apnet  # noqa: F401  (registers "apnet")
from streambin.train.recipes import mono2binaural as _mono2binaural  # noqa: F401
from streambin.train.recipes import multitask as _multitask  # noqa: F401  (registers the recipe)
from streambin.train.recipes import sagm as _sagm  # noqa: F401
from streambin.train.recipes import avconsistency as _avconsistency  # noqa: F401
from streambin.train.recipes import geometry as _geometry  # noqa: F401
from streambin.train.recipes import sepstereo as _sepstereo  # noqa: F401

__all__ = ["Recipe", "available_recipes", "get_recipe", "register_recipe"]
