"""Execute one notebook headlessly with papermill, in a kernel set up so that its outputs are what a reader expects.

Two settings of the kernel are chosen here rather than inherited from whoever started the run:

- Matplotlib's backend is the inline one (`INLINE_BACKEND`), so that every figure a cell draws lands in that cell's
  outputs as `image/png`. ipykernel picks the inline backend only when `MPLBACKEND` is unset; a caller with
  `MPLBACKEND=Agg` in its environment (a headless shell, the test settings of the Makefile) handed that to the
  kernels, whose figures were then drawn and saved to `figures/` but never displayed: published notebooks without a
  single image.
- The kernel talks to papermill over IPC sockets instead of TCP: both are local processes, and ipykernel warns on
  every start that TCP is unencrypted (a warning printed once per notebook of a batch run, to no purpose). The
  sockets live in a private temporary folder under an absolute path: jupyter_client's default is the relative name
  `kernel-ipc`, which the kernel resolves in the notebook's folder and the manager, cleaning up, in its own, so
  every run left its sockets (`kernel-ipc-1`, ...) among the notebooks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
"""Matplotlib backend of the notebook kernels: figures shown in the cell outputs (what Jupyter itself uses)."""


class LocalKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels listen on IPC sockets (a local, unencrypted-TCP-free transport)."""

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    def _ip_default(self) -> str:
        # jupyter_client's own default for IPC is a name relative to whichever folder resolves it (see above).
        return os.path.join(self.socket_folder, "kernel-ipc")

    @property
    def socket_folder(self) -> str:
        """The private folder of this manager's IPC sockets (made on first use, removed by `remove_socket_folder`)."""
        if getattr(self, "_socket_folder", None) is None:
            self._socket_folder = tempfile.mkdtemp(prefix="dials-kernel-")
        return self._socket_folder

    def remove_socket_folder(self) -> None:
        """Delete the socket folder and whatever a killed kernel left in it."""
        folder = getattr(self, "_socket_folder", None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            self._socket_folder = None

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self.remove_socket_folder()

    cleanup_resources = _async_cleanup_resources


@contextmanager
def inline_figures() -> Iterator[None]:
    """Within the block, kernels started from this process draw inline (`MPLBACKEND` restored on exit)."""
    previous = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = previous


def execute_notebook(source: Path, target: Path, parameters: dict[str, Any], cwd: Path,
                     progress_bar: bool = False) -> None:
    """Run `source` with papermill into `target` (parameters injected, kernel started in `cwd`), figures inline.

    Raises papermill's `PapermillExecutionError` when a cell fails (the target then shows the failing cell)."""
    import papermill

    with inline_figures():
        papermill.execute_notebook(str(source), str(target), parameters=parameters, cwd=str(cwd),
                                   progress_bar=progress_bar, kernel_manager_class=LocalKernelManager)
