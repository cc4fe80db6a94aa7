"""shadownet predictive package."""
