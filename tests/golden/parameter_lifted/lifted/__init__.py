# Generated from parameter_lifted.ipynb by nb2prod 0.1.0; edit the notebook, not this file.
"""The cells lifted from parameter_lifted.ipynb: ``schema`` (Pandera models) and ``features``.

They live in a package so that their module names cannot clash with installed packages.
"""
