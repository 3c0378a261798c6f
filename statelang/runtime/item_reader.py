"""A distributed Map's data outside the execution: ItemReader sources and ResultWriter files.

Amazon S3 is a directory here: ``s3://bucket/key`` is ``<root>/bucket/key``, where the root is
``engine.s3_root``, else ``$STATELANG_S3_ROOT``, else ``./.statelang/s3``. That keeps runs offline
and makes the files a test or a person can look at. A bucket or key that would leave the root
(``..``, an absolute key) is refused: the error names the field, not a path of this machine.

Readers return plain lists because a map run reads its items once and keeps them for its life
(re-reading only after a crash); writers stream, because results can outgrow memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from statelang.language import errors as E
from statelang.language.errors import StatesError

GET_OBJECT = "arn:aws:states:::s3:getObject"
LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
PUT_OBJECT = "arn:aws:states:::s3:putObject"
DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}
MAX_RESULT_FILE = 5 * 1024 ** 3   # AWS starts SUCCEEDED_1.json once SUCCEEDED_0.json passes 5 GB
HIDDEN = ".statelang"            # our own work files under the root, never listed as objects


def s3_root(engine: Any = None) -> Path:
    root = getattr(engine, "s3_root", None) or os.environ.get("STATELANG_S3_ROOT") or "./.statelang/s3"
    return Path(root).resolve()


def s3_path(root: Path, bucket: Any, key: Any, error: str) -> Path:
    """The file for (bucket, key) under root; a bucket or key that escapes the root is an error."""
    if not isinstance(bucket, str) or not bucket or "/" in bucket or bucket in (".", ".."):
        raise StatesError(error, f"Invalid S3 bucket name: {json.dumps(bucket)}")
    if not isinstance(key, str):
        raise StatesError(error, f"Invalid S3 key: {json.dumps(key)}")
    path = (root / bucket / key).resolve()
    base = (root / bucket).resolve()
    if path != base and base not in path.parents or key.startswith("/") or bucket == HIDDEN:
        raise StatesError(error, f"The S3 key {json.dumps(key)} of bucket {bucket!r} is outside the bucket.")
    return path


# -- ItemReader ------------------------------------------------------------------------------

def read_items(reader: dict, root: Path) -> list:
    """The items an ItemReader names, MaxItems applied. Raises States.ItemReaderFailed."""
    try:
        items = _read(reader, root)
    except StatesError:
        raise
    except (OSError, ValueError, csv.Error, UnicodeDecodeError) as e:
        raise StatesError(E.ITEM_READER_FAILED, f"{type(e).__name__}: {e}") from e
    cfg = reader.get("ReaderConfig") or {}
    limit = cfg.get("MaxItems")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise StatesError(E.ITEM_READER_FAILED, f"MaxItems must be a non-negative integer, not {limit!r}.")
        if limit:   # 0 means no limit, as AWS reads it
            del items[limit:]
    return items


def _params(reader: dict) -> dict:
    p = reader.get("Parameters", reader.get("Arguments")) or {}
    if not isinstance(p, dict):
        raise StatesError(E.ITEM_READER_FAILED, "The ItemReader's Parameters must be an object.")
    return p


def _read(reader: dict, root: Path) -> list:
    resource = reader.get("Resource", "")
    params = _params(reader)
    cfg = reader.get("ReaderConfig") or {}
    if resource == LIST_OBJECTS:
        return list_objects(root, params.get("Bucket"), params.get("Prefix", ""))
    if resource != GET_OBJECT:
        raise StatesError(E.ITEM_READER_FAILED, f"Unsupported ItemReader resource: {resource!r}.")
    path = s3_path(root, params.get("Bucket"), params.get("Key"), E.ITEM_READER_FAILED)
    if not path.is_file():
        raise StatesError(E.ITEM_READER_FAILED, f"The specified key does not exist: s3://{params['Bucket']}/{params['Key']}"
                          " (Service: S3, Status Code: 404, Error Code: NoSuchKey)")
    kind = cfg.get("InputType", "JSON")
    text = path.read_text(encoding="utf-8-sig")
    if kind == "JSON":
        return _json_items(json.loads(text), cfg)
    if kind == "JSONL":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if kind == "CSV":
        return csv_items(text, cfg)
    raise StatesError(E.ITEM_READER_FAILED, f"Unsupported InputType: {kind!r}.")


def _json_items(doc: Any, cfg: dict) -> list:
    pointer = cfg.get("ItemsPointer")
    if pointer:
        for part in pointer.lstrip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    if isinstance(doc, dict):   # an object's key-value pairs are the items, as for a Map's input
        return [{k: v} for k, v in doc.items()]
    if not isinstance(doc, list):
        raise StatesError(E.ITEM_READER_FAILED, "The JSON file must contain an array or an object.")
    return doc


def csv_items(text: str, cfg: dict) -> list[dict]:
    """Rows as objects of strings: a short row gets empty strings, a long one loses its extra
    fields (AWS's documented rules); quotes may enclose delimiters and newlines."""
    delimiter = DELIMITERS.get(cfg.get("CSVDelimiter", "COMMA"))
    if delimiter is None:
        raise StatesError(E.ITEM_READER_FAILED, f"Unsupported CSVDelimiter: {cfg.get('CSVDelimiter')!r}.")
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True,
                      escapechar="\\")
    location = cfg.get("CSVHeaderLocation", "FIRST_ROW")
    if location == "GIVEN":
        headers = cfg.get("CSVHeaders")
        if not isinstance(headers, list) or not headers:
            raise StatesError(E.ITEM_READER_FAILED, "CSVHeaders must be a non-empty array when "
                                                    "CSVHeaderLocation is GIVEN.")
    elif location == "FIRST_ROW":
        headers = next(rows, None)
        if headers is None:
            return []
    else:
        raise StatesError(E.ITEM_READER_FAILED, f"Unsupported CSVHeaderLocation: {location!r}.")
    n = len(headers)
    out = []
    for row in rows:
        if not row:
            continue
        row = row[:n] + [""] * (n - len(row))
        out.append(dict(zip(headers, row, strict=True)))
    return out


def list_objects(root: Path, bucket: Any, prefix: Any) -> list[dict]:
    """ListObjectsV2 of a bucket directory: every file whose key starts with the prefix, in key
    order (S3 lists keys in UTF-8 binary order), as the metadata items AWS hands to children."""
    base = s3_path(root, bucket, "", E.ITEM_READER_FAILED)
    if not isinstance(prefix, str):
        raise StatesError(E.ITEM_READER_FAILED, f"Invalid S3 prefix: {json.dumps(prefix)}")
    if not base.is_dir():
        raise StatesError(E.ITEM_READER_FAILED, f"The specified bucket does not exist: {bucket}"
                                                " (Service: S3, Status Code: 404, Error Code: NoSuchBucket)")
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d != HIDDEN]
        for fn in filenames:
            p = Path(dirpath) / fn
            key = p.relative_to(base).as_posix()
            if key.startswith(prefix):
                out.append((key.encode(), key, p))
    items = []
    for _, key, p in sorted(out):
        st = p.stat()
        items.append({"Etag": f'"{_md5(p)}"', "Key": key, "LastModified": int(st.st_mtime),
                      "Size": st.st_size, "StorageClass": "STANDARD"})
    return items


def _md5(p: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with p.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- ItemBatcher -----------------------------------------------------------------------------

def batch_bounds(sizes: Iterable[int] | None, count: int, batcher: dict) -> list[int]:
    """Start offsets of the batches (plus the end): at most MaxItemsPerBatch items and, when
    MaxInputBytesPerBatch is set, at most that many bytes of items each; a batch always takes
    at least one item. `sizes` (JSON bytes per selected item) is needed only for the byte bound."""
    per = batcher.get("MaxItemsPerBatch") or 0
    max_bytes = batcher.get("MaxInputBytesPerBatch") or 0
    if not per and not max_bytes:
        max_bytes = 256 * 1024
    bounds = [0]
    n = used = 0
    for i, size in enumerate(sizes if max_bytes else (0 for _ in range(count))):
        if n and ((per and n >= per) or (max_bytes and used + size + 1 > max_bytes)):
            bounds.append(i)
            n = used = 0
        n += 1
        used += size + 1
    if count:
        bounds.append(count)
    return bounds


# -- ResultWriter ----------------------------------------------------------------------------

def writer_target(writer: dict, root: Path) -> tuple[str, str] | None:
    """(bucket, prefix) of a ResultWriter that exports to S3, or None (WriterConfig only)."""
    params = writer.get("Parameters", writer.get("Arguments"))
    if params is None and "Resource" not in writer:
        return None
    if writer.get("Resource") != PUT_OBJECT or not isinstance(params, dict):
        raise StatesError(E.RESULT_WRITER_FAILED, "A ResultWriter exports with Resource "
                                                  f"{PUT_OBJECT} and Parameters {{Bucket, Prefix}}.")
    bucket, prefix = params.get("Bucket"), params.get("Prefix", "")
    s3_path(root, bucket, prefix or "x", E.RESULT_WRITER_FAILED)
    if not isinstance(prefix, str):
        raise StatesError(E.RESULT_WRITER_FAILED, f"Invalid S3 prefix: {json.dumps(prefix)}")
    return bucket, prefix


class ResultFiles:
    """Writes ``<Prefix>/<map run id>/{STATUS}_n.json`` as JSON arrays, entry by entry, starting
    the next file past `MAX_RESULT_FILE` bytes, then the manifest that lists them."""

    def __init__(self, root: Path, bucket: str, prefix: str, map_run_arn: str, jsonl: bool = False):
        self.root, self.bucket, self.map_run_arn, self.jsonl = root, bucket, map_run_arn, jsonl
        run_id = map_run_arn.rsplit(":", 1)[-1]
        self.folder = f"{prefix.rstrip('/')}/{run_id}" if prefix else run_id
        self.files: dict[str, list[dict]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        self._open: dict[str, tuple[Any, str, int, int]] = {}   # status -> (file, key, bytes, entries)

    def add(self, status: str, entry_json: str) -> None:
        f = self._open.get(status)
        data = entry_json.encode()
        if f is not None and f[2] + len(data) > MAX_RESULT_FILE:
            self._close(status)
            f = None
        if f is None:
            key = f"{self.folder}/{status}_{len(self.files[status])}.json"
            path = s3_path(self.root, self.bucket, key, E.RESULT_WRITER_FAILED)
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = path.open("wb")
            if not self.jsonl:
                fh.write(b"[")
            f = (fh, key, 1, 0)
        fh, key, size, n = f
        sep = b"\n" if self.jsonl else (b"," if n else b"")
        fh.write(sep + data)
        self._open[status] = (fh, key, size + len(sep) + len(data), n + 1)

    def _close(self, status: str) -> None:
        fh, key, _, _ = self._open.pop(status)
        if not self.jsonl:
            fh.write(b"]")
        fh.close()
        path = s3_path(self.root, self.bucket, key, E.RESULT_WRITER_FAILED)
        self.files[status].append({"Key": key, "Size": path.stat().st_size})

    def finish(self) -> dict:
        """Close the files, write manifest.json; returns the Map state's output."""
        for status in list(self._open):
            self._close(status)
        key = f"{self.folder}/manifest.json"
        manifest = {"DestinationBucket": self.bucket, "MapRunArn": self.map_run_arn, "ResultFiles": self.files}
        path = s3_path(self.root, self.bucket, key, E.RESULT_WRITER_FAILED)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, path)
        return {"MapRunArn": self.map_run_arn, "ResultWriterDetails": {"Bucket": self.bucket, "Key": key}}

    def abort(self) -> None:
        for fh, _, _, _ in self._open.values():
            fh.close()
        self._open.clear()
