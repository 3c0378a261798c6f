"""bench.bench_store's paging rows: the same stored history read through the in-process client,
through boto3 against a `statelang serve` process, and through bare HTTP requests to that server
(the server's share of a page, without the SDK's own work per call)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import bench_store  # noqa: E402


@pytest.mark.parametrize("way", [False, True, "plain"], ids=["client", "boto3", "plain-http"])
def test_every_way_reads_the_whole_history_in_pages(tmp_path, way):
    result = bench_store.paged_read(f"sqlite:///{tmp_path / 'paged.db'}", events=450, page=100, over_http=way)
    assert result["pages"] == 5   # 100, 100, 100, 100, 50: nextToken ends with the last page


def test_plain_http_refuses_an_error_answer_by_name(tmp_path):
    """A bare request that the server answers with an AWS error is reported, not read as a page."""
    import statelang
    db = f"sqlite:///{tmp_path / 'e.db'}"
    statelang.Engine(db=db).close()
    proc, client = bench_store._serve(db, str(tmp_path / "data"))
    try:
        plain = bench_store._PlainHttp(client.meta.endpoint_url)
        with pytest.raises(RuntimeError, match=r"GetExecutionHistory: HTTP 400: .*ExecutionDoesNotExist"):
            plain.get_execution_history(executionArn="arn:aws:states:us-east-1:123456789012:execution:m:none")
    finally:
        proc.terminate()
        proc.wait(30)
