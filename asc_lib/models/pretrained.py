"""Pretrained checkpoints: one resolver for every AudioSet network the papers start from.

A checkpoint named in ``params/models.yaml`` (``pretrained:`` for EfficientAT, ``passt.ensemble`` for
PaSST) is looked up, in this order:

1. ``data/weights/<file>`` (the project's own folder: copy a release file there to use it offline);
2. the shared reference folder, ``../shared/data/weights/<file>`` (``ASC_SHARED_DATA``), read in place;
3. a download from the authors' release URL into ``data/weights/`` (torch.hub's downloader).

Every file found is checked against the SHA-256 recorded in ``params/models.yaml``; a mismatch is refused,
naming the file and both hashes. Where no hash is recorded yet, the first file's hash is written to
``data/weights/sha256.json`` and later loads are checked against it. When none of the three gives the file,
:class:`CheckpointUnavailable` says what was tried; the methods then decide whether a stand-in may replace
it (:func:`asc_lib.methods.surkov.resolve_weights`).

Which weights a run started from is a :class:`Checkpoint` (file, hash, origin), written into its
``metrics.json`` and shown by its notebook.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from asc_lib.config import load_yaml
from asc_lib.config.atomic import atomic_path, write_json
from asc_lib.config.paths import PARAMS_DIR, shared_data_dir, weights_dir
from asc_lib.config.provenance import file_digest

ORIGINS = ("local", "shared", "download", "path", "standin", "random")
OFFLINE_ENV = "ASC_OFFLINE"  # set to 1: never try a download (tests, air-gapped machines)


class CheckpointUnavailable(FileNotFoundError):
    """A pretrained checkpoint that can be had neither locally, nor from the shared folder, nor by download."""


@dataclass(frozen=True)
class Checkpoint:
    """Which weights a model starts from: ``name`` (the catalogue's, e.g. ``mn04_as``), the file, its full
    SHA-256 and where it came from (``local``, ``shared``, ``download``, ``path``; ``standin`` for the mini
    stand-in tagger, ``random`` for no weights)."""

    name: str
    path: str | None
    sha256: str | None
    origin: str

    @property
    def pretrained(self) -> bool:
        """True for real released weights (not the stand-in, not random initialisation)."""
        return self.origin in ("local", "shared", "download", "path")

    def info(self) -> dict:
        return {**asdict(self), "pretrained": self.pretrained}

    def describe(self) -> str:
        """In words, for notebooks and the report."""
        if self.origin == "random":
            return "random initialisation"
        short = (self.sha256 or "")[:12]
        file = Path(self.path).name if self.path else "?"
        if self.origin == "standin":
            return f"the mini stand-in AudioSet tagger ({file}, sha256 {short}…): NOT real AudioSet pretraining"
        where = {"local": "data/weights/", "shared": "the shared reference folder", "download": "downloaded",
                 "path": "a given path"}[self.origin]
        return f"the released checkpoint {self.name} ({file}, sha256 {short}…, {where})"


def catalogue() -> dict[str, dict]:
    """Every released checkpoint the study knows: ``{name: {file, url, sha256, model, n_classes}}`` from
    ``params/models.yaml`` (``pretrained:``)."""
    return dict(load_yaml(PARAMS_DIR / "models.yaml")["pretrained"])


def _known_hashes_path() -> Path:
    return weights_dir() / "sha256.json"


def verify_sha256(path: Path, expected: str) -> str:
    """Refuse a weights file whose SHA-256 is not ``expected`` (naming the file and both hashes)."""
    actual = file_digest(path)
    if actual.lower() != str(expected).lower():
        raise ValueError(f"{path}: SHA-256 {actual} does not match the recorded {expected}; the file is damaged "
                         "or not the release the study expects (delete it to download it again)")
    return actual


def _check(path: Path, sha256: str | None) -> str:
    """The file's hash, checked against ``sha256`` or, without one, against (or recorded into) sha256.json."""
    if sha256:
        return verify_sha256(path, sha256)
    known_path = _known_hashes_path()
    known = json.loads(known_path.read_text()) if known_path.is_file() else {}
    if path.name in known:
        return verify_sha256(path, known[path.name])
    return file_digest(path)  # recorded only once the file has loaded into its network (record_hash)


def record_hash(path: str | Path) -> None:
    """Trust on first use, after the use: once a weights file without a pinned SHA-256 has loaded strictly into
    its network, record its hash in sha256.json (a file that is refused is never recorded, so a good one put
    in its place later is not rejected)."""
    path = Path(path)
    known_path = _known_hashes_path()
    known = json.loads(known_path.read_text()) if known_path.is_file() else {}
    pinned = {entry["file"] for entry in catalogue().values() if entry.get("sha256")}
    if path.name in known or path.name in pinned or path.parent.resolve() not in (
            weights_dir().resolve(), (shared_data_dir() / "weights").resolve()):
        return  # pinned already (params/models.yaml, sha256.json; checked when found), or not a release file
    known[path.name] = file_digest(path)
    write_json(known_path, known)
    warnings.warn(f"{path}: no SHA-256 recorded for it; recorded {known[path.name]} in {known_path} (copy it to "
                  "params/models.yaml to pin it for everyone)", stacklevel=3)


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def resolve_file(file: str, url: str | None = None, sha256: str | None = None, name: str | None = None,
                 download: bool = True) -> Checkpoint:
    """The checkpoint ``file``: ``data/weights/`` first, then the shared folder, then a download from ``url``
    (unless ``download`` is False or ``ASC_OFFLINE=1``); checked against ``sha256``. Raises
    :class:`CheckpointUnavailable` naming every place tried."""
    name = name or Path(file).stem
    tried = []
    for origin, folder in (("local", weights_dir()), ("shared", shared_data_dir() / "weights")):
        candidate = folder / file
        if candidate.is_file():
            return Checkpoint(name, str(candidate), _check(candidate, sha256), origin)
        tried.append(str(candidate))
    if url and download and not offline():
        target = weights_dir() / file
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_path(target, suffix=".pt") as tmp:
                torch.hub.download_url_to_file(url, str(tmp))
                if sha256:
                    verify_sha256(tmp, sha256)
        except (OSError, ValueError) as err:
            if isinstance(err, ValueError):
                raise
            tried.append(f"{url} ({type(err).__name__}: {err})")
        else:
            return Checkpoint(name, str(target), _check(target, sha256), "download")
    elif url:
        tried.append(f"{url} (not tried: {'offline' if offline() else 'downloads disabled'})")
    raise CheckpointUnavailable(f"checkpoint {file!r} cannot be had; tried: " + "; ".join(tried))


def resolve(name_or_path: str, download: bool = True) -> Checkpoint:
    """A catalogue name (``mn04_as``), a catalogued file name (``mn04_as_mAP_432.pt``) or a path to a file."""
    entries = catalogue()
    for key, entry in entries.items():
        if name_or_path in (key, entry["file"]):
            return resolve_file(entry["file"], entry.get("url"), entry.get("sha256"), key, download)
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.is_file():
        return Checkpoint(path.stem, str(path.resolve()), file_digest(path), "path")
    raise CheckpointUnavailable(f"{name_or_path!r} is neither a checkpoint of params/models.yaml "
                                f"({', '.join(entries)}) nor an existing file")


def catalogue_entry(name: str) -> dict:
    """The catalogue entry of a checkpoint name or file name (``model`` and ``n_classes`` of its network)."""
    for key, entry in catalogue().items():
        if name in (key, entry["file"], Path(name).name):
            return {"name": key, **entry}
    raise KeyError(f"{name!r} is not in params/models.yaml pretrained:")


__all__ = ["Checkpoint", "CheckpointUnavailable", "catalogue", "catalogue_entry", "offline", "resolve",
           "record_hash", "resolve_file", "verify_sha256"]
