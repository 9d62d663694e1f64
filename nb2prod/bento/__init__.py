"""Bentos nb2prod made: the BentoML store, and finding a bento from any way of naming it."""
