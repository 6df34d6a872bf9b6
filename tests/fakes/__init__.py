"""Fake platform APIs for tests: real local HTTP servers that answer like the platforms."""
