"""Drift monitoring: attached to the bento at build time, run by ``nb2prod monitor``."""
