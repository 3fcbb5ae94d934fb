"""Training rows that stay on disk: the bounded-memory path for AudioSet-sized data.

A training set is a few aligned arrays of rows (waveforms, labels, AudioSet targets, teacher logits). When
they fit the memory budget they are resident tensors, the fast path. When they do not, the waveforms are
read batch by batch from the memory-mapped waveform cache (:class:`DiskRows`, optionally as consecutive
pieces of its rows: the 1 s pieces of 10 s clips), and :func:`asc_lib.training.loop.fit` reads the batches in
DataLoader workers ahead of the training step. Both kinds answer ``rows[index]`` with the same tensor, so a
run draws identical batches, and ends with identical weights, either way.

The budget is a named setting of the machine, not of the data: ``ASC_MEMORY_BUDGET_GB`` in the environment,
else half of the physical memory (:func:`memory_budget`); on a GPU, what goes onto the device is bounded as
well by its free memory (``torch.cuda.mem_get_info``) times ``ASC_DEVICE_MEMORY_SHARE`` (default 0.5: the other
half stays free for the model, its activations and the optimizer); what does not fit there stays in host
memory and each batch is moved, and what does not fit the host budget stays on disk. ``ASC_LOADER_WORKERS``
sets the reading workers (default: the cores but two, at most 8, divided among torchrun's processes on the node; 0 reads in the
training process).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from asc_lib.config.provenance import tensor_digest

BUDGET_ENV = "ASC_MEMORY_BUDGET_GB"
DEVICE_SHARE_ENV = "ASC_DEVICE_MEMORY_SHARE"
DEVICE_SHARE = 0.5
WORKERS_ENV = "ASC_LOADER_WORKERS"


def physical_memory() -> int:
    """Bytes of physical memory (0 when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def memory_budget(device: str | torch.device | None = None, free: int | None = None) -> int:
    """Bytes of data that may be held resident on ``device``: on the host (None or the CPU)
    ``ASC_MEMORY_BUDGET_GB``, else half of RAM; on a GPU the least of that and its free memory (``free``, else
    ``torch.cuda.mem_get_info``) times :func:`device_share`."""
    host = _host_budget()
    if device is None or torch.device(device).type != "cuda":
        return host
    if free is None:
        free = torch.cuda.mem_get_info(torch.device(device))[0]
    return min(host, int(free * device_share()))


def device_share() -> float:
    """The share of a GPU's free memory that data may take: ``ASC_DEVICE_MEMORY_SHARE``, else 0.5."""
    value = os.environ.get(DEVICE_SHARE_ENV, "").strip()
    if not value:
        return DEVICE_SHARE
    try:
        share = float(value)
    except ValueError:
        raise ValueError(f"{DEVICE_SHARE_ENV}={value!r} is not a number between 0 and 1") from None
    if not 0 < share <= 1:
        raise ValueError(f"{DEVICE_SHARE_ENV}={value!r} must lie in (0, 1]")
    return share


def placement(sizes: dict[str, int], budget: int) -> set[str]:
    """Which of the named arrays (``sizes``: bytes) go onto the device within ``budget`` bytes: the smallest
    first, while they fit (labels and targets before waveforms); the rest stay in host memory."""
    chosen, used = set(), 0
    for name, size in sorted(sizes.items(), key=lambda item: (item[1], item[0])):
        if used + size > budget:
            break
        chosen.add(name)
        used += size
    return chosen


def hold(rows: "DiskRows", device: str | torch.device = "cpu", budget: int | None = None, disk: bool = True):
    """Where ``rows`` live: one tensor on ``device`` when they fit ``budget`` bytes (default
    :func:`memory_budget` of the device), else in host memory when they fit the host's budget (a GPU's
    batches are then moved one at a time), else on disk, read batch by batch (``disk=False``: host memory)."""
    if rows.nbytes <= (memory_budget(device) if budget is None else budget):
        return rows.resident(device)
    if not disk or (budget is None and rows.nbytes <= memory_budget()):
        return rows.resident("cpu")
    return rows


def _host_budget() -> int:
    value = os.environ.get(BUDGET_ENV, "").strip()
    if value:
        try:
            gb = float(value)
        except ValueError:
            raise ValueError(f"{BUDGET_ENV}={value!r} is not a number of gigabytes") from None
        if not 0 < gb < float("inf"):
            raise ValueError(f"{BUDGET_ENV}={value!r} must be a positive, finite number of gigabytes")
        return int(gb * 2**30)
    return physical_memory() // 2 or 8 * 2**30


def loader_workers() -> int:
    """DataLoader workers that read streamed batches: ``ASC_LOADER_WORKERS``, else the cores but two (the
    training process keeps two for its own threads), at most 8; 0 reads in the training process. Measured on
    2 cores (mini split 5, batch 64): one worker process cost 19 % of the training rate, reading in the
    training process nothing measurable (positioned reads of a local cache take about a millisecond a batch)."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        if not value.isdigit():
            raise ValueError(f"{WORKERS_ENV}={value!r} is not a number of workers")
        return int(value)
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))  # torchrun's processes on this node share the cores
    return max(0, min(8, (os.cpu_count() or 1) // ranks - 2))


def _as_index(index) -> np.ndarray:
    if isinstance(index, slice):
        raise TypeError("use rows.read(start, stop) for a range")
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    return np.asarray(index, dtype=np.int64).reshape(-1)


class DiskRows:
    """Rows of a ``.npy`` file (e.g. a waveform cache), read on demand with positioned reads.

    ``pieces=(rows, starts, length)`` views the file as pieces instead: item ``i`` is
    ``array[rows[i], starts[i]:starts[i] + length]``. Rows come back in the stored dtype (as
    :meth:`asc_lib.data.audio.WaveformCache.to_tensor` gives them). The file is read with ``os.pread``, not
    memory-mapped, so that what was read does not stay in the process's resident memory. ``identity``
    names the content (the cache key and the piece layout), standing in for the bytes in run fingerprints
    and cache keys.
    """

    def __init__(self, path: str | Path, identity: str, pieces: tuple | None = None):
        self.path = Path(path)
        self.identity = str(identity)
        self._fd = None
        self._pid = None
        self._header = None
        if pieces is not None:
            rows, starts, length = pieces
            self.piece_rows = np.asarray(rows, dtype=np.int64)
            self.piece_starts = np.asarray(starts, dtype=np.int64)
            self.piece_length = int(length)
            if len(self.piece_rows) != len(self.piece_starts):
                raise ValueError(f"{self.path}: {len(self.piece_rows)} piece rows but {len(self.piece_starts)} starts")
            self.identity += ":" + hashlib.sha256(self.piece_rows.tobytes() + self.piece_starts.tobytes()
                                                  + str(self.piece_length).encode()).hexdigest()[:16]
        else:
            self.piece_rows = None

    # a file descriptor does not cross process boundaries: workers reopen the file
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fd"], state["_pid"] = None, None
        return state

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: the on-disk rows are gone (was the cache cleaned?)")
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    @property
    def header(self) -> tuple[tuple, np.dtype, int]:
        """The array's shape, dtype and the byte offset of its data (from the ``.npy`` header)."""
        if self._header is None:
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: the on-disk rows are gone (was the cache cleaned?)")
            with self.path.open("rb") as fh:
                try:
                    version = np.lib.format.read_magic(fh)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = read_header(fh)
                except ValueError as err:
                    raise ValueError(f"{self.path}: not a .npy array ({err})") from err
                if fortran or dtype.hasobject or len(shape) < 1:
                    raise ValueError(f"{self.path}: expected a C-ordered numeric array with rows")
                self._header = (tuple(shape), dtype, fh.tell())
        return self._header

    def __len__(self) -> int:
        return len(self.piece_rows) if self.piece_rows is not None else int(self.header[0][0])

    def __repr__(self) -> str:
        return f"DiskRows({str(self.path)!r}, {len(self)} rows of {self.row_shape})"

    @property
    def row_shape(self) -> tuple:
        return (self.piece_length,) if self.piece_rows is not None else tuple(self.header[0][1:])

    @property
    def shape(self) -> tuple:
        return (len(self), *self.row_shape)

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.zeros(0, dtype=self.header[1])).dtype

    @property
    def nbytes(self) -> int:
        """Bytes the rows take when held resident."""
        return len(self) * int(np.prod(self.row_shape)) * self.header[1].itemsize

    def _read(self, offset: int, count: int) -> np.ndarray:
        dtype = self.header[1]
        data = os.pread(self._open(), count * dtype.itemsize, offset)
        if len(data) != count * dtype.itemsize:
            raise ValueError(f"{self.path}: the file is shorter than its header says (truncated?)")
        return np.frombuffer(data, dtype=dtype)

    def __getitem__(self, index) -> torch.Tensor:
        """The rows ``index`` (a tensor or array of row numbers, or a slice), returned in ``index``'s order."""
        if isinstance(index, slice):
            return self.read(*index.indices(len(self))[:2])
        idx = _as_index(index)
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"{self}: row index out of range")
        idx = idx % max(1, n)
        shape, dtype, base = self.header
        width = int(np.prod(shape[1:]))
        out = np.empty((len(idx), *self.row_shape), dtype=dtype)
        flat = out.reshape(len(idx), -1)
        if self.piece_rows is None:
            for j, i in enumerate(idx):
                flat[j] = self._read(base + int(i) * width * dtype.itemsize, width)
        else:
            for j, i in enumerate(idx):
                offset = base + (int(self.piece_rows[i]) * width + int(self.piece_starts[i])) * dtype.itemsize
                flat[j] = self._read(offset, self.piece_length)
        return torch.from_numpy(out)

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` (a contiguous range; one read when they are whole rows)."""
        stop = min(stop, len(self))
        if self.piece_rows is not None or stop <= start:
            return self[np.arange(start, max(start, stop))]
        shape, dtype, base = self.header
        width = int(np.prod(shape[1:]))
        block = self._read(base + start * width * dtype.itemsize, (stop - start) * width)
        return torch.from_numpy(block.reshape(stop - start, *shape[1:]).copy())

    def to(self, *args, **kwargs) -> "DiskRows":
        """Rows on disk stay there whatever the device asked for; :func:`asc_lib.training.loop.fit` moves each batch."""
        return self

    def resident(self, device="cpu", chunk: int = 4096) -> torch.Tensor:
        """All rows as one tensor on ``device`` (read in chunks), carrying these rows' identity
        (:func:`identified`): resident or read from disk, the same data are the same data to a run."""
        parts = [self.read(i, i + chunk) for i in range(0, len(self), chunk)]
        if not parts:
            return torch.empty((0, *self.row_shape), dtype=self.dtype, device=device)
        return identified(torch.cat(parts).to(device), self.identity)


class ConcatRows:
    """Several row sources (tensors or :class:`DiskRows`) end to end, read as one, in ``dtype``."""

    def __init__(self, parts, dtype: torch.dtype | None = None):
        # resident parts are kept on the CPU: DataLoader workers read these rows, and a GPU tensor cannot
        # be used in a forked worker
        self.parts = [p.cpu() if isinstance(p, torch.Tensor) else p for p in parts if len(p)]
        self.dtype = dtype or self.parts[0].dtype
        self.bounds = np.cumsum([0] + [len(p) for p in self.parts])
        shapes = {tuple(p.shape[1:]) for p in self.parts}
        if len(shapes) > 1:
            raise ValueError(f"cannot concatenate rows of shapes {sorted(shapes)}")
        self.identity = "+".join(getattr(p, "identity", None) or _tensor_identity(p) for p in self.parts)

    def __len__(self) -> int:
        return int(self.bounds[-1])

    @property
    def shape(self) -> tuple:
        return (len(self), *self.parts[0].shape[1:])

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes if isinstance(p, DiskRows) else p.numel() * p.element_size() for p in self.parts)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        idx = _as_index(index)
        out = torch.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        which = np.searchsorted(self.bounds, idx, side="right") - 1
        for k, part in enumerate(self.parts):
            mine = np.flatnonzero(which == k)
            if len(mine):
                local = torch.from_numpy(idx[mine] - self.bounds[k])
                rows = part[local]
                out[torch.from_numpy(mine)] = rows.to(self.dtype)
        return out


def _tensor_identity(t: torch.Tensor) -> str:
    return tensor_digest(t)


def is_resident(rows) -> bool:
    return isinstance(rows, torch.Tensor)


def read_ahead(items: torch.utils.data.Dataset, workers: int, pin_memory: bool = False):
    """``items`` in order, each read by one of ``workers`` DataLoader processes ahead of use (prefetch 4;
    0: in this process). The loader has its own generator, so the global RNG is left untouched."""
    return torch.utils.data.DataLoader(items, batch_size=None, shuffle=False, num_workers=workers,
                                       prefetch_factor=4 if workers else None, pin_memory=pin_memory,
                                       generator=torch.Generator().manual_seed(0))


IDENTITY = "asc_identity"  # attribute of a tensor loaded whole from rows on disk: what they were built from


def identified(tensor: torch.Tensor, identity: str | None) -> torch.Tensor:
    """``tensor`` marked with the ``identity`` of the rows it was read from (a verified cache's key), so that
    run fingerprints name it as they name those rows when they stay on disk (the memory budget decides which
    happens; the run is the same). None leaves it unmarked."""
    if identity is not None:
        setattr(tensor, IDENTITY, identity)
    return tensor


def moved(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """``tensor.to(...)`` keeping its identity (:func:`identified`)."""
    return identified(tensor.to(*args, **kwargs), getattr(tensor, IDENTITY, None))


def held(x) -> torch.Tensor:
    """``x`` as a tensor (rows on disk are read in full: only for sets known to be small)."""
    return x if isinstance(x, torch.Tensor) else x.resident()


def concat(parts, dtype: torch.dtype | None = None):
    """Tensors concatenated as a tensor; anything on disk as :class:`ConcatRows`."""
    parts = [p for p in parts if p is not None and len(p)]
    if all(isinstance(p, torch.Tensor) for p in parts):
        dtype = dtype or parts[0].dtype
        return torch.cat([p.to(parts[0].device, dtype) for p in parts])
    return ConcatRows(parts, dtype)
