"""Environments of the project's own, registered with gymnasium on import."""
