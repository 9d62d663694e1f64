"""Building a bento: the recipe, the training run, lifting and code generation, identity, cache.

Named ``builder`` rather than ``build`` so that ``nb2prod.build`` stays the function.
"""
