"""Batch scoring: ``nb2prod score``, a table through a bento's own path, locally or on Spark."""
