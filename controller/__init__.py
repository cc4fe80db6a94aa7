"""shadownet controller package."""
