"""Linear48 core library: IO, colour, forward operator, baselines, metrics, pipeline (no Qt)."""
