"""A local directory standing in for the S3 bucket: the same URIs (`s3://<bucket>/<key>`), the same
methods as store.Store, objects as files under `<root>/<key>` (their SHA-256 computed when read back).
For tests and single-host experiments without an S3 server (`update_cli --local-store DIR`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

from .errors import BadInputError
from .safe_keys import path_under
from .store import Store, check_file, safe_relative, sha256_file


class LocalStore(Store):
    def __init__(self, root: Path, bucket: str = "segflow", prefix: str = "") -> None:  # noqa: D107 - no S3 client
        self.root = Path(root).resolve()
        self.bucket = bucket
        self.prefix = prefix

    def _path(self, key_or_uri: str) -> Path:
        key = self.key_of(key_or_uri)
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise BadInputError(f"key {key!r} leaves the local store {self.root}")
        return path

    def exists(self, key_or_uri: str) -> bool:
        return self._path(key_or_uri).is_file()

    def get_bytes(self, key_or_uri: str) -> bytes:
        path = self._path(key_or_uri)
        if not path.is_file():
            raise BadInputError(f"artifact s3://{self.bucket}/{self.key_of(key_or_uri)} does not exist")
        return path.read_bytes()

    def _write(self, key_or_uri: str, write) -> Path:
        path = self._path(key_or_uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.part{os.getpid()}")
        write(tmp)
        tmp.replace(path)
        return path

    def put_bytes(self, key_or_uri: str, body: bytes, content_type: str) -> dict:
        key = self.key_of(key_or_uri)
        self._write(key_or_uri, lambda tmp: tmp.write_bytes(body))
        sha = hashlib.sha256(body).hexdigest()
        return {"uri": f"s3://{self.bucket}/{key}", "sha256": sha, "bytes": len(body), "contentType": content_type}

    def put_file(self, key_or_uri: str, path: Path, content_type: str) -> dict:
        key = self.key_of(key_or_uri)
        self._write(key_or_uri, lambda tmp: shutil.copyfile(path, tmp))
        return {
            "uri": f"s3://{self.bucket}/{key}",
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "contentType": content_type,
        }

    def put_bytes_if_absent(self, key_or_uri: str, body: bytes, content_type: str) -> bool:
        """A hard link of a written temporary file: it fails when the name exists, so of several
        writers exactly one creates the object (as S3's `If-None-Match: *`)."""
        path = self._path(key_or_uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.part{os.getpid()}-{threading.get_ident()}")
        tmp.write_bytes(body)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def delete_prefix(self, prefix_key_or_uri: str) -> int:
        keys = list(self.list(prefix_key_or_uri))
        for key in keys:
            (self.root / key).unlink(missing_ok=True)
        return len(keys)

    def download_files(self, prefix_uri: str, files: dict[str, dict], dest: Path, what: str) -> list[str]:
        prefix = self.key_of(prefix_uri.rstrip("/") + "/")
        for rel in sorted(files):
            target = dest / safe_relative(rel, what)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self._path(prefix + rel)
            if not source.is_file():
                raise BadInputError(f"artifact s3://{self.bucket}/{prefix}{rel} does not exist")
            tmp = target.with_name(target.name + f".part{os.getpid()}")
            shutil.copyfile(source, tmp)
            check_file(tmp, files[rel], f"{what}: file {rel} (s3://{self.bucket}/{prefix}{rel})")
            tmp.replace(target)
        return sorted(files)

    def list(self, prefix_key_or_uri: str) -> Iterator[str]:
        prefix = self.key_of(prefix_key_or_uri)
        base = self.root / prefix if prefix.endswith("/") else (self.root / prefix).parent
        if not base.is_dir():
            return
        for path in sorted(p for p in base.rglob("*") if p.is_file() and ".part" not in p.name):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                yield key

    def download_prefix(self, prefix_uri: str, dest: Path, skip_dirs: tuple[str, ...] = ()) -> list[str]:
        prefix = self.key_of(prefix_uri.rstrip("/") + "/")
        names = []
        for key in self.list(f"s3://{self.bucket}/{prefix}"):
            rel = key[len(prefix) :]
            if rel.startswith(skip_dirs):
                continue
            target = path_under(dest, rel, what=f"object name ({key})")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / key, target)
            names.append(rel)
        if not names:
            raise BadInputError(f"policy folder s3://{self.bucket}/{prefix} is empty or does not exist")
        return sorted(names)
