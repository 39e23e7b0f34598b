"""Linear48 core library: IO, colour, forward operator, baselines, metrics, pipeline (no Qt)."""

__version__ = "0.1.0"
