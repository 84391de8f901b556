"""Out-of-core Cholesky: host-resident tiles streamed through a few device buffers.

:func:`streamed_cholesky` factors a matrix whose lower tiles live in host memory,
left-looking, one column of tiles at a time (as in FALKON's out-of-core solver):
column ``j`` is uploaded, updated by every finished column ``k < j`` streamed in
tile by tile, factored, and written back. Uploads and write-backs run on their
own streams ahead of and behind the computation, ordered by events.

The code talks to the device only through an *engine* (:class:`harness.kernels.cuda.CudaStreams`
on a GPU), so the same schedule runs, and is tested, on NumPy with a simulated engine:

- ``empty(size, dtype)``: a flat device buffer;
- ``upload(host, device, after)`` / ``download(device, host, after)``: an asynchronous
  copy on the upload / download stream, once the events in ``after`` have happened;
- ``compute(function, *args, after)``: ``function(*args)`` on the compute stream;
- ``synchronize()``: wait for all streams.

Each of the four returns the event of its completion (``synchronize`` returns nothing).
"""

from __future__ import annotations

from collections import deque

from harness.kernels.linalg import NotPositiveDefiniteError
from harness.kernels.progress import StageProgress, advance

RING_DEPTH = 2
"""Device buffers that streamed tiles rotate through: one being used while the next uploads."""


def tile_view(buffer, start: int, shape: tuple[int, int]):
    """The Fortran-ordered ``shape`` tile at element ``start`` of a flat buffer."""
    return buffer[start : start + shape[0] * shape[1]].reshape(shape, order="F")


class _Uploads:
    """Uploads the tiles one column needs, in the order it uses them.

    A column's own tiles go to fixed slots of the column buffer (slot ``i`` for
    row ``i``), once the previous column's tile there has been written back.
    Finished tiles of earlier columns go round a ring of :data:`RING_DEPTH`
    buffers, at most that many ahead of the computation.
    """

    def __init__(self, store, engine):
        self.store, self.engine = store, engine
        grid = store.layout.rows
        self.ring = [engine.empty(grid.tile_size**2, store.dtype) for _ in range(RING_DEPTH)]
        self.ring_free = [None] * RING_DEPTH
        self.column = engine.empty(grid.size * grid.tile_size, store.dtype)
        self.column_free = [None] * grid.count
        self.issued = self.released = 0  # ring tiles uploaded and released, over the whole factorization
        self.planned = deque()
        self.ready = deque()

    def column_tile(self, i: int, j: int):
        """Tile ``(i, j)`` in slot ``i`` of the column buffer."""
        grid = self.store.layout.rows
        return tile_view(self.column, grid.span(i).start * grid.tile_size, self.store.layout.shape(i, j))

    def start_column(self, j: int) -> None:
        """Plan the uploads of column ``j``: its tiles (interleaved with the first update) and the finished tiles."""
        count = self.store.layout.rows.count
        if j == 0:
            self.planned.extend((i, 0, True) for i in range(count))
        for k in range(j):
            for i in range(j, count):
                if k == 0:
                    self.planned.append((i, j, True))
                self.planned.append((i, k, False))
        self._issue()

    def take(self):
        """``(device tile, ready event, ring slot or None)`` of the next tile in order of use."""
        self._issue()
        return self.ready.popleft()

    def release(self, slot: int | None, event) -> None:
        """The ring buffer ``slot`` may be refilled after ``event`` (no-op for column tiles)."""
        if slot is not None:
            self.ring_free[slot] = event
            self.released += 1
            self._issue()

    def _issue(self) -> None:
        while self.planned:
            i, k, own = self.planned[0]
            if not own and self.issued >= self.released + RING_DEPTH:
                return  # the ring is full: wait until a buffer is released
            self.planned.popleft()
            host = self.store.host_tile(i, k)
            if own:
                slot, device, after = None, self.column_tile(i, k), self.column_free[i]
            else:
                slot = self.issued % RING_DEPTH
                device, after = tile_view(self.ring[slot], 0, host.shape), self.ring_free[slot]
                self.issued += 1
            self.ready.append((device, self.engine.upload(host, device, after=(after,)), slot))


def _copy(target, source) -> None:
    target[...] = source


def streamed_cholesky(store, engine, progress: StageProgress | None = None) -> None:
    """Overwrite the host-resident lower tiles of ``store`` with ``L``, ``K = L Lᵀ`` (left-looking).

    ``store`` hands out host views of its tiles (``host_tile(i, j)``); the device
    holds one column of tiles and :data:`RING_DEPTH` + 1 more tiles. Raises
    :class:`NotPositiveDefiniteError` naming the global pivot row that failed.
    """
    backend, grid = store.backend, store.layout.rows
    engine.synchronize()  # the tiles may still be in flight from earlier writes
    uploads = _Uploads(store, engine)
    top_buffer = engine.empty(grid.tile_size**2, store.dtype)  # tile (j, k) while column k updates column j
    infos = {}

    def factor_diagonal(tile, j):
        infos[j] = backend.cholesky_in_place(tile)

    try:
        for j in range(grid.count):
            uploads.start_column(j)
            column, arrivals = {}, {}
            if j == 0:
                for i in range(grid.count):
                    column[i], arrivals[i], _ = uploads.take()
            for k in range(j):
                for i in range(j, grid.count):
                    if k == 0:
                        column[i], arrivals[i], _ = uploads.take()
                    tile, arrival, slot = uploads.take()
                    after = (arrival, arrivals.pop(i, None))
                    if i == j:
                        top = tile_view(top_buffer, 0, tile.shape)
                        uploads.release(slot, engine.compute(_copy, top, tile, after=after))
                        engine.compute(backend.syrk_update, column[j], top)
                    else:
                        uploads.release(slot, engine.compute(backend.gemm_update, column[i], tile, top, after=after))
                    advance(progress)
            done = engine.compute(factor_diagonal, column[j], j, after=(arrivals.pop(j, None),))
            uploads.column_free[j] = engine.download(column[j], store.host_tile(j, j), after=(done,))
            advance(progress)
            if infos.get(j):
                break
            for i in range(j + 1, grid.count):
                done = engine.compute(backend.solve_panel, column[j], column[i], after=(arrivals.pop(i, None),))
                uploads.column_free[i] = engine.download(column[i], store.host_tile(i, j), after=(done,))
                advance(progress)
    finally:
        engine.synchronize()  # no copy may outlive the buffers it reads or writes
    for j in sorted(infos):
        if infos[j]:
            raise NotPositiveDefiniteError(grid.span(j).start + infos[j] - 1, grid.size, store.dtype)
