"""Evaluation: the harness (methods, runs, reports), metrics, judge encoders, peer tools, strength trade-offs, the user-study kit and the Gatys baseline."""
