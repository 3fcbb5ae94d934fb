"""What a result was made from: digests of code, data, modules and tensors, and safe loading.

Every cached or reused artefact of the study (a training run, a waveform cache, teacher outputs, an
embedding table, a report entry) is keyed by these digests, so that a changed input is never mistaken
for the one that produced the artefact:

- :func:`code_digest`     the source of the study's functions and classes an object uses, found by
                          following the names its code refers to (a loss line changed in
                          ``distill.py`` changes the digest of Surkov's distillation, not the baseline's);
- :func:`module_digest`   a module's configuration (every plain attribute of every submodule, e.g. a
                          front end's hop), buffers and weights;
- :func:`tensor_digest`   the bytes of tensors (the training data as the loop sees it);
- :func:`files_signature` a cheap content signature of files on disk (path, size, modification time);
- :func:`package_digest`  the whole library and ``params/`` (what a report entry is keyed by).

:func:`load_torch` is the only way the study reads a ``.pt`` file: ``weights_only=True`` always, so a
crafted pickle is refused, with an error naming the file. :func:`save_torch` writes one atomically and
with the same bytes for the same content, so that a file's digest can key a cache.
"""
from __future__ import annotations

import dataclasses
import dis
import hashlib
import inspect
import json
import os
import types
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from asc_lib.config import paths
from asc_lib.config.atomic import atomic_path, file_sha256

_PACKAGE = __name__.split(".")[0]
_SKIP_ATTRS = {"training", "dump_patches", "call_super_init"}


def _own(obj) -> bool:
    """True for functions and classes defined in this package."""
    module = getattr(obj, "__module__", None) or ""
    return module == _PACKAGE or module.startswith(_PACKAGE + ".")


def _functions_of(cls: type) -> list:
    out = []
    for value in vars(cls).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            out += [f for f in (value.fget, value.fset) if f is not None]
        elif isinstance(value, types.FunctionType):
            out.append(value)
    return out


def _references(code: types.CodeType) -> list[tuple[str, str | None]]:
    """The global (or closure) names ``code`` loads, each with the attribute loaded from it right after,
    if any (``module.function`` gives ``("module", "function")``); nested code included."""
    out: list[tuple[str, str | None]] = []
    instructions = list(dis.get_instructions(code))
    for i, ins in enumerate(instructions):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLASSDEREF"):
            nxt = instructions[i + 1] if i + 1 < len(instructions) else None
            attr = nxt.argval if nxt is not None and nxt.opname in ("LOAD_ATTR", "LOAD_METHOD") else None
            out.append((ins.argval, attr))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out += _references(const)
    return out


def _reachable(roots: Iterable) -> list:
    """The package's functions and classes reachable from ``roots`` through the names their code loads."""
    seen: dict[int, object] = {}
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if not _own(obj) or id(obj) in seen or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        seen[id(obj)] = obj
        if inspect.isclass(obj):
            stack += [c for c in obj.__mro__[1:] if _own(c)]
            functions = _functions_of(obj)
        else:
            functions = [obj]
        for fn in functions:
            scope = fn.__globals__
            closure = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
            for name, attr in _references(fn.__code__):
                target = closure[name] if name in closure else scope.get(name)
                if isinstance(target, types.ModuleType):
                    if target.__name__.startswith(_PACKAGE) and attr is not None:
                        stack.append(getattr(target, attr, None))
                elif target is not None:
                    stack.append(target)
    return sorted(seen.values(), key=lambda o: (o.__module__, o.__qualname__))


@lru_cache(maxsize=None)
def _source(obj) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return f"<no source for {obj.__module__}.{obj.__qualname__}>"


def code_digest(*objects) -> str:
    """Digest of the source of every function and class of the study that ``objects`` use.

    ``objects`` are functions, classes or instances (an ``nn.Module`` contributes the classes of all its
    submodules). Names are followed through globals, closures and ``module.attribute`` references."""
    roots = []
    for obj in objects:
        if isinstance(obj, nn.Module):
            roots += [type(m) for m in obj.modules()]
            roots += [v for v in vars(obj).values() if dataclasses.is_dataclass(v)]
        elif inspect.isclass(obj) or inspect.isfunction(obj) or isinstance(obj, (staticmethod, classmethod)):
            roots.append(obj)
        else:
            roots.append(type(obj))
    h = hashlib.sha256()
    for obj in _reachable(roots):
        h.update(f"{obj.__module__}.{obj.__qualname__}\n".encode())
        h.update(_source(obj).encode())
    return h.hexdigest()[:20]


def _plain(value):
    """A JSON-able form of a configuration value, or None when it is not plain data."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return items if all(i is not None or v is None for i, v in zip(items, value)) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        items = {str(k): _plain(v) for k, v in value.items()}
        return items if all(items[str(k)] is not None or v is None for k, v in value.items()) else None
    if isinstance(value, torch.dtype):
        return str(value)
    return None


def _update_tensor(h, tensor: torch.Tensor) -> None:
    t = tensor.detach()
    h.update(f"{tuple(t.shape)}{t.dtype}".encode())
    if t.numel() == 0:
        return
    t = t.cpu().contiguous()
    flat = t.reshape(-1)
    # hash in chunks of ~64 MB so that a large tensor never needs a second full copy
    step = max(1, (64 << 20) // max(1, t.element_size()))
    for start in range(0, flat.numel(), step):
        chunk = flat[start:start + step]
        if chunk.dtype == torch.bool:
            chunk = chunk.to(torch.uint8)
        h.update(chunk.view(torch.uint8).numpy().tobytes() if chunk.dtype != torch.uint8 else chunk.numpy().tobytes())


def tensor_digest(*tensors: torch.Tensor | None) -> str:
    """Digest of the shape, dtype and bytes of ``tensors`` (None entries count as absent). Rows kept on
    disk (:mod:`asc_lib.data.rows`), and the same rows loaded whole, contribute their ``identity`` (what they
    were built from) instead of bytes: a run's fingerprint does not depend on the memory budget."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"<none>")
        elif not isinstance(t, torch.Tensor) and hasattr(t, "identity"):
            h.update(f"<rows {tuple(t.shape)} {t.identity}>".encode())
        elif getattr(t, "asc_identity", None) is not None:  # the same rows loaded whole (asc_lib.data.rows)
            h.update(f"<rows {tuple(t.shape)} {t.asc_identity}>".encode())
        else:
            _update_tensor(h, t)
    return h.hexdigest()[:20]


def module_digest(module: nn.Module, weights: bool = True) -> str:
    """Digest of a module's configuration: for every submodule its class, its plain attributes (sizes,
    rates, hops, flags, dataclass configs), its buffers and, with ``weights``, its parameters."""
    h = hashlib.sha256()
    for name, sub in module.named_modules():
        attrs = {k: _plain(v) for k, v in vars(sub).items()
                 if not k.startswith("_") and k not in _SKIP_ATTRS and _plain(v) is not None}
        h.update(json.dumps([name, type(sub).__module__, type(sub).__qualname__, attrs],
                            sort_keys=True, default=str).encode())
        for key, buf in sorted(sub._buffers.items()):
            if buf is not None:
                h.update(key.encode())
                _update_tensor(h, buf)
        if weights:
            for key, param in sorted(sub._parameters.items()):
                if param is not None:
                    h.update(key.encode())
                    _update_tensor(h, param)
    return h.hexdigest()[:20]


def identity(module: nn.Module) -> dict:
    """Code and configuration (weights included) of a module, for cache keys."""
    return {"code": code_digest(module), "module": module_digest(module)}


def files_signature(root: str | os.PathLike, names: Iterable[str]) -> str:
    """Cheap content signature of files under ``root``: resolved root, then each name, size and
    modification time (nanoseconds). Missing files count as such (the caller decides what that means)."""
    root = Path(root).resolve()
    h = hashlib.sha256(str(root).encode() + b"\0")
    for name in names:
        try:
            st = os.stat(root / name)
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{name}\0<missing>\n".encode())
    return h.hexdigest()[:20]


def tree_signature(*roots: str | os.PathLike) -> str:
    """:func:`files_signature` of every file below each root (hidden files and folders skipped)."""
    h = hashlib.sha256()
    for root in roots:
        root = Path(root)
        names = []
        if root.is_dir():
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                rel = os.path.relpath(folder, root)
                names += [os.path.normpath(os.path.join(rel, f)) for f in sorted(files) if not f.startswith(".")]
        elif root.is_file():
            root, names = root.parent, [root.name]
        h.update(files_signature(root, names).encode())
    return h.hexdigest()[:20]


def package_digest() -> str:
    """Digest of every module of the library and every file of ``params/`` (a report entry's code)."""
    h = hashlib.sha256()
    package = paths.PACKAGE_DIR
    files = sorted(package.rglob("*.py")) + sorted(package.rglob("*.json")) + sorted(paths.PARAMS_DIR.glob("*.yaml"))
    for path in files:
        h.update(str(path.relative_to(paths.ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (full hex), read in chunks (the caches' seals use the same function)."""
    return file_sha256(path)


def load_torch(path: str | os.PathLike, what: str = "file"):
    """``torch.load(path, weights_only=True)`` on the CPU, with errors naming the file.

    Only tensors and plain containers load; a pickle that would run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        text = str(err)
        if "Weights only load failed" in text or "Unsupported global" in text:
            why = "it holds Python objects other than tensors and plain containers, which the study never loads"
        else:
            why = f"not a readable PyTorch file, damaged or of another format ({type(err).__name__}: " \
                  f"{text.splitlines()[0][:200] if text else ''})"
        raise ValueError(f"{path}: cannot read {what}: {why}") from None


def load_state(model: nn.Module, state, path: str | os.PathLike, what: str) -> nn.Module:
    """``model.load_state_dict(state, strict=True)`` with errors that name the file and say what is wrong: not a
    state dict, or another architecture (missing and unexpected keys, mismatched shapes, a few of each)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of {what} (a {type(state).__name__} of "
                         f"{', '.join(sorted({type(v).__name__ for v in getattr(state, 'values', lambda: [])()}))})")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} where the network has {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = ([f"{len(missing)} missing keys (e.g. {missing[0]})"] if missing else []) \
            + ([f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})"] if unexpected else []) \
            + ([f"{len(shapes)} shape mismatches (e.g. {shapes[0]})"] if shapes else [])
        raise ValueError(f"{path}: not {what}: another architecture ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)
    return model


def save_torch(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` into ``path`` atomically, with the same bytes whenever ``obj`` is the same.

    ``torch.save`` names the folder inside its zip archive after the file it writes to; saved under
    :func:`~asc_lib.config.atomic.atomic_path`'s random temporary name, the same weights would give other
    bytes on every save, and a cache keyed by the file's content (the teacher outputs of a fine-tuned
    teacher, :func:`asc_lib.methods.surkov.teacher_key`) would never hit. Through a file object the folder
    is always ``archive``. (Training checkpoints are keyed by their fingerprint, not by their bytes.)"""
    path = Path(path)
    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return path
