"""Fused fast paths of hot loops. Each has a plain-torch ``reference`` (the specification) that
tests compare it against; the CPU paths never import Triton."""

from .rate_loop import rate_loop, rate_loop_reference

__all__ = ["rate_loop", "rate_loop_reference"]
