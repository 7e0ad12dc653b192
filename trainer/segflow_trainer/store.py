"""S3 access for the trainer (boto3), compatible with activities/storage/artifact-store.ts: objects
carry their SHA-256 in the `sha256` metadata field, URIs are `s3://bucket/key`, and a put of the
same bytes to the same key is a no-op. `put_bytes_if_absent` is S3's conditional create
(`If-None-Match: *`, supported by AWS S3, MinIO and SeaweedFS): of several writers of one key exactly
one creates it; it is how an update commits a policy version (update.py)."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .errors import BadInputError
from .safe_keys import check_key, path_under
from .settings import S3Settings

_URI = re.compile(r"^s3://([^/]+)/(.*)$")


def safe_relative(name: str, where: str) -> str:
    """`name` as a path inside a folder: refused when absolute or with "." / ".." segments (a manifest's
    file names are checked by its contract too; this guards every join)."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(p in (".", "..") for p in parts):
        raise BadInputError(f"{where} names the file {name!r}, which would leave its folder")
    return name


def check_file(path: Path, expected: dict, what: str) -> None:
    """Raises BadInputError when the file at `path` is not the `{sha256, bytes}` a manifest lists for it."""
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise BadInputError(f"{what} has {size} bytes, its manifest lists {expected['bytes']}: the stored file is not the committed one")
    sha = sha256_file(path)
    if sha != expected["sha256"]:
        raise BadInputError(f"{what} has sha256 {sha}, its manifest lists {expected['sha256']}: the stored file is not the committed one")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Store:
    def __init__(self, s: S3Settings):
        self.bucket = s.bucket
        self.prefix = s.prefix
        self.client = boto3.client(
            "s3",
            endpoint_url=s.endpoint or None,
            region_name=s.region,
            aws_access_key_id=s.access_key_id,
            aws_secret_access_key=s.secret_access_key,
            config=Config(
                s3={"addressing_style": "path" if s.force_path_style else "auto"},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def uri_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def key_of(self, key_or_uri: str) -> str:
        """The bucket key of a store-relative key or an `s3://` URI; every key passes the guard for names
        built from input (safe_keys.py), so a URI in a batch or manifest cannot climb out of its prefix."""
        m = _URI.match(key_or_uri)
        if not m:
            return self.prefix + check_key(key_or_uri)
        if m.group(1) != self.bucket:
            raise BadInputError(
                f"artifact {key_or_uri} is in bucket {m.group(1)!r}, this trainer serves {self.bucket!r}"
            )
        return check_key(m.group(2), f"S3 key of {key_or_uri}")

    def exists(self, key_or_uri: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key_of(key_or_uri))
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def get_bytes(self, key_or_uri: str) -> bytes:
        key = self.key_of(key_or_uri)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BadInputError(f"artifact s3://{self.bucket}/{key} does not exist") from err
            raise

    def put_bytes(self, key_or_uri: str, body: bytes, content_type: str) -> dict:
        key = self.key_of(key_or_uri)
        sha = hashlib.sha256(body).hexdigest()
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, Metadata={"sha256": sha}
        )
        return {"uri": f"s3://{self.bucket}/{key}", "sha256": sha, "bytes": len(body), "contentType": content_type}

    def put_file(self, key_or_uri: str, path: Path, content_type: str) -> dict:
        key = self.key_of(key_or_uri)
        sha = sha256_file(path)
        self.client.upload_file(
            str(path), self.bucket, key, ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": sha}}
        )
        return {
            "uri": f"s3://{self.bucket}/{key}",
            "sha256": sha,
            "bytes": path.stat().st_size,
            "contentType": content_type,
        }

    def put_bytes_if_absent(self, key_or_uri: str, body: bytes, content_type: str) -> bool:
        """Creates the object only if no object has the key (`If-None-Match: *`): True when this call
        created it, False when one existed (HTTP 412). A 409 (a concurrent conditional write in
        flight, AWS's ConditionalRequestConflict) is retried until one of the two answers comes."""
        key = self.key_of(key_or_uri)
        sha = hashlib.sha256(body).hexdigest()
        for attempt in range(8):
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType=content_type,
                    Metadata={"sha256": sha},
                    IfNoneMatch="*",
                )
                return True
            except ClientError as err:
                status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = err.response.get("Error", {}).get("Code")
                if status == 412 or code == "PreconditionFailed":
                    return False
                if status == 409 or code == "ConditionalRequestConflict":
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise
        raise RuntimeError(f"s3://{self.bucket}/{key}: conditional create kept conflicting (HTTP 409); try again")

    def delete_prefix(self, prefix_key_or_uri: str) -> int:
        """Deletes every object under the prefix; returns how many."""
        keys = list(self.list(prefix_key_or_uri))
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = [{"Key": k} for k in keys[i : i + 1000]]
            out = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
            if out.get("Errors"):
                e = out["Errors"][0]
                raise RuntimeError(f"could not delete {len(out['Errors'])} objects under {prefix_key_or_uri}: {e.get('Key')}: {e.get('Message')}")
        return len(keys)

    def download_files(self, prefix_uri: str, files: dict[str, dict], dest: Path, what: str) -> list[str]:
        """Downloads the files a manifest lists (`{name: {sha256, bytes}}`) from under the prefix into
        dest, each checked against its size and sha256 (BadInputError when it is not the file listed)."""
        prefix = self.key_of(prefix_uri.rstrip("/") + "/")
        for rel in sorted(files):
            target = dest / safe_relative(rel, what)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + f".part{os.getpid()}")
            self._download(prefix + rel, tmp)
            check_file(tmp, files[rel], f"{what}: file {rel} (s3://{self.bucket}/{prefix}{rel})")
            tmp.replace(target)
        return sorted(files)

    def _download(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, key, str(path))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BadInputError(f"artifact s3://{self.bucket}/{key} does not exist") from err
            raise

    def list(self, prefix_key_or_uri: str) -> Iterator[str]:
        prefix = self.key_of(prefix_key_or_uri)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def download_prefix(self, prefix_uri: str, dest: Path, skip_dirs: tuple[str, ...] = ()) -> list[str]:
        """Downloads every object under the prefix into dest (relative names kept), except those under
        the sub-folders `skip_dirs` (e.g. "attempts/"); returns the names."""
        prefix = self.key_of(prefix_uri.rstrip("/") + "/")
        names = []
        for key in self.list(f"s3://{self.bucket}/{prefix}"):
            rel = key[len(prefix) :]
            if not rel or rel.endswith("/") or rel.startswith(skip_dirs):
                continue
            safe_relative(rel, f"policy folder s3://{self.bucket}/{prefix}")
            target = path_under(dest, rel, what=f"object name ({key})")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + f".part{os.getpid()}")
            self.client.download_file(self.bucket, key, str(tmp))
            tmp.replace(target)
            names.append(rel)
        if not names:
            raise BadInputError(f"policy folder s3://{self.bucket}/{prefix} is empty or does not exist")
        return sorted(names)

    def upload_folder(self, folder: Path, prefix_uri: str, skip: set[str] | None = None) -> dict[str, dict]:
        prefix = self.key_of(prefix_uri.rstrip("/") + "/")
        out = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            if skip and rel in skip:
                continue
            ct = "application/json" if rel.endswith(".json") else "application/octet-stream"
            ref = self.put_file(f"s3://{self.bucket}/{prefix}{rel}", path, ct)
            out[rel] = {"sha256": ref["sha256"], "bytes": ref["bytes"]}
        return out
