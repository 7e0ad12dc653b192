"""S3 access for the trainer (boto3), compatible with activities/storage/artifact-store.ts: objects
carry their SHA-256 in the `sha256` metadata field, URIs are `s3://bucket/key`, and a put of the
same bytes to the same key is a no-op."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .errors import BadInputError
from .safe_keys import check_key, path_under
from .settings import S3Settings

_URI = re.compile(r"^s3://([^/]+)/(.*)$")


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

    def list(self, prefix_key_or_uri: str) -> Iterator[str]:
        prefix = self.key_of(prefix_key_or_uri)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def download_prefix(self, prefix_uri: str, dest: Path) -> list[str]:
        """Downloads every object under the prefix into dest (relative names kept); returns the names."""
        prefix = self.key_of(prefix_uri.rstrip("/") + "/")
        names = []
        for key in self.list(f"s3://{self.bucket}/{prefix}"):
            rel = key[len(prefix) :]
            if not rel or rel.endswith("/"):
                continue
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
