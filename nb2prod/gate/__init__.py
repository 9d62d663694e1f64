"""The property gate: which generated tests a build runs, running them, the failure report."""
