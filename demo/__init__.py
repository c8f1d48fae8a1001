"""`make demo`: the agent's main job end to end in the real-kernel VM (see README, Set-up)."""
