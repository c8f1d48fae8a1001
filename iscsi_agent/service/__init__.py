"""Attach and detach orchestration, and the pure decisions it is built on."""
