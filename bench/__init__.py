"""Benchmarks of the agent against the ONTAP simulator."""
