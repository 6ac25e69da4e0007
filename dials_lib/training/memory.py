"""Peak memory of a training run: of each process, and of the main process and its workers together.

Everything is sampled with psutil, as RSS (resident set size, cheap to read; counts shared pages, such as torch's
libraries, in every process that maps them, so a sum over processes overstates their joint footprint) and as PSS
(proportional set size: each shared page split among the processes sharing it, slower to read; sums add up).

- `MemoryProbe`: one process's peak, read whenever `sample()` is called (worker tasks sample at every PPO update
  and AIP minibatch; the main process around its boundaries and as worker results arrive).
- `TreeMemorySampler`: the main process and its child processes summed, read by a background thread.
- `RunMemory`: what a run records in memory.json, built from both.
- `release_free_memory`: hand freed heap pages back to the operating system after a task or a boundary.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
import threading
from typing import Any

import psutil

MB = 2**20


class MemoryProbe:
    """Peak RSS and PSS of this process, sampled with psutil whenever `sample()` is called."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.peak = self.peak_pss = 0
        self.sample(full=True)

    def sample(self, full: bool = False) -> None:
        """Take one reading of RSS; `full` also reads PSS (where the platform provides it)."""
        self.take(self._process.memory_full_info() if full else self._process.memory_info(), full)

    def take(self, info: Any, full: bool) -> None:
        """Count a psutil reading of this process taken elsewhere (`full`: it holds PSS)."""
        self.peak = max(self.peak, info.rss)
        if full:
            self.peak_pss = max(self.peak_pss, getattr(info, "pss", info.rss))

    @property
    def peak_mb(self) -> float:
        """Peak resident set size seen so far, in MiB."""
        return self.peak / MB

    @property
    def peak_pss_mb(self) -> float:
        """Peak proportional set size seen at the full readings, in MiB."""
        return self.peak_pss / MB


class TreeMemorySampler:
    """Peak memory of this process and its child processes together, sampled in a background thread.

    The sum of each process's own peak overstates what a run ever holds at once: the main process peaks while
    evaluating, its workers while training, at different moments. This samples the simultaneous total instead:
    RSS every `interval` seconds, PSS every `pss_every` samples, the list of child processes renewed every
    `list_every` samples. It sees worker processes only where they are children of this one (joblib's loky
    backend); Dask or Ray workers elsewhere are not counted. `own`, if given, is a probe of this process alone,
    sampled at the same moments; `children=False` reads this process only.

    Why PSS every 5 s by default: reading it makes the kernel walk the process's page tables, about 20 ms for a
    1 GB worker (18 ms of CPU each, measured on a 100-agent traffic run), so once a second over a main process and
    two workers took about 6% of a core, and a loaded run that gets one core lost that share of its training.
    Listing the children walks every process of the machine (1.5 ms); RSS alone costs about 15 us.
    """

    def __init__(self, interval: float = 0.1, pss_every: int = 50, own: MemoryProbe | None = None,
                 children: bool = True, list_every: int = 10) -> None:
        self.interval, self.pss_every, self.own, self.children = interval, pss_every, own, children
        self.list_every = list_every
        self.peak_rss = self.peak_pss = 0
        self._processes: list[psutil.Process] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dials-memory-sampler")

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        main, n = psutil.Process(), 0
        while True:
            self.sample(main, full=n % self.pss_every == 0, relist=n % self.list_every == 0)
            n += 1
            if self._stop.wait(self.interval):
                self.sample(main, full=True, relist=True)
                return

    def sample(self, main: psutil.Process, full: bool, relist: bool = True) -> None:
        """One reading of the summed RSS (and, if `full`, PSS) of `main` and its descendants (listed anew if
        `relist`, else those of the last listing)."""
        if relist or not self._processes:
            self._processes = [main, *main.children(recursive=True)] if self.children else [main]
        rss = pss = 0
        for process in self._processes:
            try:
                info = process.memory_full_info() if full else process.memory_info()
            except psutil.Error:  # a worker that ended between listing and reading
                continue
            if process is main and self.own is not None:
                self.own.take(info, full)  # the same reading: this process alone
            rss += info.rss
            pss += getattr(info, "pss", info.rss) if full else 0
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)


def release_free_memory() -> None:
    """Hand the heap's free pages back to the operating system (glibc only; a no-op elsewhere).

    A task's transient tensors (AIP training activations: ~150 MB for 10 warehouse agents) are freed when it
    ends, but glibc keeps the pages, so an idle worker would go on holding its task's peak.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl)
            pass


class RunMemory:
    """The memory records of a run: main process, workers (from their tasks' own probes) and totals, in MiB.

    Totals come two ways: `simultaneous_peak_*` from a `TreeMemorySampler` running while the run trains (loky
    workers only, being children of this process), and `total_peak_*` = the main process's peak + the largest sum
    over the workers of one parallel call, an upper bound since the peaks need not coincide.
    """

    def __init__(self) -> None:
        self.main = MemoryProbe()
        self.tree: TreeMemorySampler | None = None
        self.worker_peaks: dict[int, tuple[float, float]] = {}  # pid: (peak RSS, peak PSS) over the session
        self.call_totals = (0.0, 0.0)  # largest sum over the workers of one parallel call: (RSS, PSS)

    def add_call(self, results: list[dict[str, Any]]) -> None:
        """Take in the peaks reported by the tasks of one parallel call (whose worker processes coexisted)."""
        call_peaks: dict[int, tuple[float, float]] = {}
        for result in results:
            if result["pid"] == os.getpid():  # a task this process ran: its peak is this process's peak
                self.main.peak = max(self.main.peak, int(result["peak_rss_mb"] * MB))
                self.main.peak_pss = max(self.main.peak_pss, int(result["peak_pss_mb"] * MB))
            for peaks in (self.worker_peaks, call_peaks):
                rss, pss = peaks.get(result["pid"], (0.0, 0.0))
                peaks[result["pid"]] = (max(rss, result["peak_rss_mb"]), max(pss, result["peak_pss_mb"]))
        others = [p for pid, p in call_peaks.items() if pid != os.getpid()]  # tasks run here count as main's
        self.call_totals = (max(self.call_totals[0], sum(p[0] for p in others)),
                            max(self.call_totals[1], sum(p[1] for p in others)))

    def records(self, previous: dict[str, Any]) -> dict[str, Any]:
        """memory.json: this session's readings merged with `previous` (the peaks of earlier sessions)."""
        self.main.sample(full=True)
        mem = dict(previous)
        workers = {pid: peaks for pid, peaks in self.worker_peaks.items() if pid != os.getpid()}
        for kind, index in (("rss", 0), ("pss", 1)):
            main = self.main.peak_mb if kind == "rss" else self.main.peak_pss_mb
            peaks = {str(pid): p[index] for pid, p in sorted(workers.items())}
            mem[f"main_peak_{kind}_mb"] = max(mem.get(f"main_peak_{kind}_mb", 0.0), main)
            mem[f"worker_peak_{kind}_mb"] = peaks
            mem[f"max_worker_peak_{kind}_mb"] = max(peaks.values(), default=0.0)
            total = main + self.call_totals[index]
            mem[f"total_peak_{kind}_mb"] = max(mem.get(f"total_peak_{kind}_mb", 0.0), total)
            if self.tree is not None:
                together = (self.tree.peak_rss if kind == "rss" else self.tree.peak_pss) / MB
                mem[f"simultaneous_peak_{kind}_mb"] = max(mem.get(f"simultaneous_peak_{kind}_mb", 0.0), together)
        mem["main_ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return mem


__all__ = ["MB", "MemoryProbe", "RunMemory", "TreeMemorySampler", "release_free_memory"]
