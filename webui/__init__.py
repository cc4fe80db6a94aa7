"""shadownet webui package."""
