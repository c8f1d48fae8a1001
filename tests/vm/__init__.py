"""The vm-marked tier: tests that run inside the real-kernel VM."""
