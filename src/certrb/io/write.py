"""Atomic writing of a model file: an unnamed (or hidden) temporary file, fsynced and renamed."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from typing import Any

import numpy as np

from .layout import Attrs, Datasets


def write_atomic(h5py: Any, path: str, data: Datasets, attrs: Attrs) -> None:
    """Write the file complete, fsync it, then rename it over ``path``; nothing of it is left on failure.

    On Linux the data go to an unnamed ``O_TMPFILE`` file in the destination folder, linked
    to a temporary name only once complete, so a killed process leaves no partial file
    behind; elsewhere to a named temporary file. An existing ``path`` keeps its permissions;
    a new file gets ``0o666`` less the umask, as :func:`open` gives.
    """
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "the folder of the model file does not exist", path)
    try:
        mode: int | None = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(8)}.tmp")
    fd = _unnamed_file(directory, path)
    linked = fd is None
    if fd is None:  # created with mode 0o666 so the umask applies as for any new file; O_EXCL never clobbers
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with _FileObject(os.fdopen(fd, "w+b")) as fh:
            fh.write_model(h5py, data, attrs)
            os.fsync(fd)
            if mode is not None:
                os.fchmod(fd, mode)
            if not linked:
                _link(fd, tmp)
                linked = True
        os.replace(tmp, target)
    except BaseException:
        if linked:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        raise
    _fsync_directory(directory)


def _unnamed_file(directory: str, path: str) -> int | None:
    """A descriptor of a new unnamed file in ``directory`` (Linux ``O_TMPFILE``), or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, flag | os.O_RDWR, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):  # a file system without O_TMPFILE
            return None
        raise type(exc)(exc.errno, f"cannot write the model file: {exc.strerror}", path) from exc


def _link(fd: int, name: str) -> None:
    """Give the unnamed file ``fd`` the name ``name`` (``linkat`` of ``/proc/self/fd/<fd>``, following the link)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


class _FileObject:
    """A binary file for h5py's file-object driver that keeps the first exception its methods raise.

    h5py turns an exception raised inside a driver call (a KeyboardInterrupt, say) into its own
    OSError; :meth:`write_model` re-raises the original instead.
    """

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.error: BaseException | None = None

    def __enter__(self) -> _FileObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._fh, method)(*args)
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def read(self, *args: Any) -> Any:
        return self._call("read", *args)

    def readinto(self, buffer: Any) -> Any:
        return self._call("readinto", buffer)

    def write(self, buffer: Any) -> Any:
        return self._call("write", buffer)

    def seek(self, *args: Any) -> Any:
        return self._call("seek", *args)

    def tell(self) -> Any:
        return self._call("tell")

    def truncate(self, *args: Any) -> Any:
        return self._call("truncate", *args)

    def flush(self) -> Any:
        return self._call("flush")

    def write_model(self, h5py: Any, data: Datasets, attrs: Attrs) -> None:
        """Write the datasets and root attributes through h5py and flush them to the file."""
        try:
            with h5py.File(self, "w") as f:
                _write(h5py, f, data, attrs)
        except BaseException as exc:
            cause = self.error if self.error is not None else _interrupt_behind(exc)
            if cause is not None and cause is not exc:
                raise cause from exc
            raise
        self.flush()


def _interrupt_behind(exc: BaseException) -> BaseException | None:
    """A KeyboardInterrupt (or other non-``Exception``) that ``exc`` was raised while handling, if any.

    h5py can turn an interrupt inside its file driver's write, during ``close``, into an
    ``OSError`` ("driver write request failed") whose context is the interrupt.
    """
    seen = exc.__context__
    while seen is not None:
        if not isinstance(seen, Exception):
            return seen
        seen = seen.__context__
    return None


def _write(h5py: Any, f: Any, data: Datasets, attrs: Attrs) -> None:
    for key in sorted(data):
        f.create_dataset(key, data=data[key])
    for key, value in attrs.items():
        if isinstance(value, str):
            # fixed-length strings live in the attribute message itself: no global heap to corrupt
            encoded = value.encode("utf-8")
            f.attrs.create(key, np.bytes_(encoded), dtype=h5py.string_dtype("utf-8", len(encoded)))
        else:
            f.attrs[key] = value
    f.flush()


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows syncing a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
