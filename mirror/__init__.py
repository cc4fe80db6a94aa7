"""Mirror namespaces: a live, read-only replica of each container's network state."""
