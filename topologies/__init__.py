"""shadownet topologies package."""
