"""How many threads a model's numerical libraries may start while it works its own.

BLAS (OpenBLAS here) starts a thread per core for every large enough product or factorisation and
spins while it waits for them. Where the model already runs threads of its own (implicit's
factorisations, the champion's pages and signals), or the machine is shared with other work, those
threads outnumber the cores, and a spinning thread waits for a core its sibling holds: a 600-item
EASE inversion that takes 0.03 s on one thread took 3.3 s on BLAS's two, on a 2-core machine running
a test suite beside it. The champion's whole fit gains less (0.81-1.03x as long under other work,
0.94-1.01x alone: benchmarks/results/blas_threads/), and sums in one order on any machine.
"""

from __future__ import annotations

from functools import lru_cache

from threadpoolctl import ThreadpoolController


@lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    # found once: `threadpool_limits` looks up every loaded library on each call (~3 ms, more than
    # a whole ALS fold-in of one basket)
    return ThreadpoolController()


def one_blas_thread():
    """A context in which BLAS runs on the calling thread alone (process-wide, as BLAS holds its
    thread count; the earlier count is put back on leaving)."""
    return _threadpools().limit(limits=1, user_api="blas")
