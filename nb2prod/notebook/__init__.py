"""The notebook as nb2prod reads it: cells and roles, settings, and the static check."""
