"""nb2prod's benchmarks and hardening checks: ``make bench`` runs them all, side by side."""
