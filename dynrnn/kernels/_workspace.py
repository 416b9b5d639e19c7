"""Reusable large output buffers for the CPU kernels.

A fresh ``[K, T, B, N]`` float32 tensor of K=256, T=100, B=32, N=64 is 210 MB; glibc maps such
blocks fresh from the OS on every allocation, and touching them the first time (page faults
plus zeroing by the kernel) costs about half the forward pass of the C rate-RNN kernel. The
pool hands out views of buffers it keeps, and reuses a buffer only once nothing outside the pool
refers to its storage any more (no live view, no tensor saved by autograd): reuse can never
overwrite data somebody still holds.

Buffers under ``MIN_BYTES`` are not pooled (malloc recycles those itself). The pool keeps at
most ``max_bytes`` of idle buffers (default 2 GiB, least recently used dropped first);
:func:`clear_workspace` empties it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import torch

MIN_BYTES = 8 << 20
_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _uses(t: torch.Tensor) -> int:
    return _storage_use_count(t.untyped_storage()._cdata)


class WorkspacePool:
    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self._buffers: OrderedDict[int, tuple[torch.Tensor, int]] = OrderedDict()
        # finding an idle buffer and handing out its view must be one step: two threads (e.g.
        # dask workers) must never both see the same buffer idle
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` (a view of a pooled buffer where possible)."""
        numel = math.prod(shape)
        nbytes = numel * torch.empty(0, dtype=dtype).element_size()
        if _storage_use_count is None or nbytes < MIN_BYTES:
            return torch.empty(shape, dtype=dtype)
        with self._lock:
            return self._empty_locked(shape, numel, dtype)

    def _empty_locked(self, shape, numel, dtype) -> torch.Tensor:
        for key, (base, idle_uses) in self._buffers.items():
            if base.numel() == numel and base.dtype == dtype and _uses(base) <= idle_uses:
                self._buffers.move_to_end(key)
                return base.view(shape)
        base = torch.empty(numel, dtype=dtype)
        self._buffers[id(base)] = (base, _uses(base))
        self._evict()
        return base.view(shape)

    def _evict(self) -> None:
        total = sum(b.numel() * b.element_size() for b, _ in self._buffers.values())
        for key in list(self._buffers):
            if total <= self.max_bytes:
                break
            base, idle_uses = self._buffers[key]
            if _uses(base) <= idle_uses:  # idle: nobody else holds it
                total -= base.numel() * base.element_size()
                del self._buffers[key]

    def clear(self) -> None:
        with self._lock:
            self._buffers.clear()

    @property
    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b, _ in self._buffers.values())


POOL = WorkspacePool()


def clear_workspace() -> None:
    """Drop the CPU kernels' pooled buffers (memory is freed once no tensor uses it)."""
    POOL.clear()
