"""Local S3 on a folder: bucket ``b``, key ``k/x.json`` is the file ``<root>/b/k/x.json``.

Step Functions reaches S3 only through SDK integrations (``aws-sdk:s3:getObject``, ``putObject``,
``listObjectsV2``, ``deleteObject``); errors are named as those name them (``S3.NoSuchKeyException``,
``S3.NoSuchBucketException``). A bucket exists when its folder does (the template's buckets are
created at load). A key that would leave the bucket's folder is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from statelang.runtime.services.errors import ServiceError


def _err(exception: str, message: str) -> ServiceError:
    return ServiceError("S3", exception, message)


class LocalS3:
    ACTIONS = ("getObject", "putObject", "listObjectsV2", "deleteObject")

    def __init__(self, env):
        self.env = env

    def create_bucket(self, name: str) -> Path:
        path = self.env.s3_root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _bucket(self, name: Any) -> Path:
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise _err("NoSuchBucketException", f"The specified bucket does not exist: {name}")
        path = self.env.s3_root / name
        if not path.is_dir():
            raise _err("NoSuchBucketException", f"The specified bucket does not exist: {name}")
        return path

    def _object(self, bucket: Any, key: Any) -> Path:
        root = self._bucket(bucket).resolve()
        if not isinstance(key, str) or not key:
            raise _err("InvalidArgumentException", "Key must be a non-empty string")
        path = (root / key).resolve()
        if root not in path.parents:
            raise _err("InvalidArgumentException", f"Key {key!r} leaves the bucket")
        return path

    def get_object(self, p: dict) -> dict:
        path = self._object(p.get("Bucket"), p.get("Key"))
        if not path.is_file():
            raise _err("NoSuchKeyException", "The specified key does not exist.")
        data = path.read_bytes()
        return {"Body": data.decode("utf-8", errors="replace"), "ContentLength": len(data),
                "ContentType": "application/octet-stream", "ETag": f'"{hashlib.md5(data).hexdigest()}"'}  # noqa: S324

    def put_object(self, p: dict) -> dict:
        path = self._object(p.get("Bucket"), p.get("Key"))
        body = p.get("Body", "")
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return {"ETag": f'"{hashlib.md5(data).hexdigest()}"'}  # noqa: S324

    def delete_object(self, p: dict) -> dict:
        path = self._object(p.get("Bucket"), p.get("Key"))
        if path.is_file():
            path.unlink()
        return {}

    def list_objects_v2(self, p: dict) -> dict:
        root = self._bucket(p.get("Bucket"))
        prefix = p.get("Prefix") or ""
        keys = sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())
        keys = [k for k in keys if k.startswith(prefix)]
        limit = int(p.get("MaxKeys") or 1000)
        contents = [{"Key": k, "Size": (root / k).stat().st_size} for k in keys[:limit]]
        return {"Contents": contents, "KeyCount": len(contents), "IsTruncated": len(keys) > limit,
                "Name": p.get("Bucket"), "Prefix": prefix, "MaxKeys": limit}

    def sdk(self, action: str) -> Callable[[Any, Any], dict]:
        fn = {"getObject": self.get_object, "putObject": self.put_object,
              "listObjectsV2": self.list_objects_v2, "deleteObject": self.delete_object}[action]

        def handle(params: Any, ctx: Any = None) -> dict:
            if not isinstance(params, dict):
                raise _err("InvalidArgumentException", "The request parameters must be a JSON object")
            return fn(params)
        return handle
