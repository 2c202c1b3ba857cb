"""The composite licence-plate benchmark: rendered plates on real vehicle photos."""
