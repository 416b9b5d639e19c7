"""Sparse weight formats read by the compiled loops: CSR and SELL-C-sigma, for K networks.

SELL-C-sigma: Kreutzer, M., Hager, G., Wellein, G., Fehske, H. & Bishop, A. R. (2014). A unified
sparse matrix data format for efficient general sparse matrix-vector multiplication on modern
processors with wide SIMD units. *SIAM Journal on Scientific Computing* 36(5), C401-C423.
"""

from __future__ import annotations

import torch

__all__ = ["SELL_SIGMA", "csr_and_sell_c_sigma"]

#: rows are sorted by length within blocks of 64 (the thread-split granularity of the ESN loop)
SELL_SIGMA = 64


def csr_and_sell_c_sigma(W: torch.Tensor, dtype: torch.dtype):
    """``W [K, N, N]`` (dense) in CSR and in SELL-C-sigma with C = 64 bytes / element size and
    sigma = 64, as ``csrc/esn.c`` reads them (CSR in the lane mode, SELL in the gather mode),
    built for all K networks at once from one pass over the nonzeros.

    Returns:
        ``rowptr [K, N+1] int64``: each network's CSR row pointer (from 0; also the thread
        split);
        ``(offsets [K] int64, cols int32 [nnz], vals [nnz])``: the CSR nonzeros of all networks
        in row-major order, network k's from ``offsets[k]``;
        ``(slice_ptr [K, S+1] int64`` (global group indices), ``cols int32 [G, C]``,
        ``vals [G, C]``, ``perm int32 [K, S*C])``: SELL-C-sigma, with ``S = ceil(N / C)``
        slices per network and G groups over all networks. Values in ``dtype``.

    Within each block of 64 rows the rows are sorted by their number of nonzeros (so the C rows
    of a slice have similar lengths and little padding: 13% -> ~2% of gathers at 10% density);
    position p of network k's sorted order is row ``perm[k, p]`` (N marks padding), slice s
    holds positions ``s*C .. s*C+C-1`` and its g-th group the g-th nonzero of each row
    (zero-padded). Blocks never straddle the threads' row ranges (multiples of 64), so results
    stay independent of the thread count.
    """
    C = 64 // torch.empty(0, dtype=dtype).element_size()
    K, N = W.shape[0], W.shape[1]
    S = -(-N // C)
    kk, rows, cols = W.nonzero(as_tuple=True)  # row-major order per network
    grow = kk * N + rows  # global row
    counts = torch.bincount(grow, minlength=K * N).view(K, N)
    gptr = torch.zeros(K * N + 1, dtype=torch.int64)
    gptr[1:] = counts.reshape(-1).cumsum(0)
    rowptr = torch.zeros(K, N + 1, dtype=torch.int64)
    rowptr[:, 1:] = counts.cumsum(1)
    # sorted order within blocks of SELL_SIGMA rows: by block, then by descending length
    # (stable, so that equal lengths keep the row order)
    r = torch.arange(N)
    key = (r // SELL_SIGMA) * (N + 1) + (N - counts)  # [K, N]
    order = torch.argsort(key, dim=1, stable=True)
    perm = torch.full((K, S * C), N, dtype=torch.int64)
    perm[:, :N] = order
    where = torch.empty(K, N, dtype=torch.int64)  # sorted position of each row
    where.scatter_(1, order, r.expand(K, N).contiguous())
    padded = torch.zeros(K, S * C, dtype=torch.int64)
    padded[:, :N] = counts.gather(1, order)
    slice_len = padded.view(K, S, C).amax(2)  # [K, S]
    flat_ptr = torch.zeros(K * S + 1, dtype=torch.int64)
    flat_ptr[1:] = slice_len.reshape(-1).cumsum(0)
    sptr = flat_ptr[torch.arange(K)[:, None] * S + torch.arange(S + 1)]  # [K, S+1]
    G = int(flat_ptr[-1])
    pos = torch.arange(len(rows)) - gptr[grow]  # index of the nonzero within its row
    p = where[kk, rows]
    flat = (sptr[kk, p // C] + pos) * C + p % C
    vals, cols = W[kk, rows, cols].to(dtype).contiguous(), cols.to(torch.int32)
    sval = torch.zeros(G * C, dtype=dtype)
    scol = torch.zeros(G * C, dtype=torch.int32)
    sval[flat] = vals
    scol[flat] = cols
    offsets = torch.zeros(K, dtype=torch.int64)
    offsets[1:] = rowptr[:-1, -1].cumsum(0)
    return rowptr, (offsets, cols, vals), (sptr, scol, sval, perm.to(torch.int32))

