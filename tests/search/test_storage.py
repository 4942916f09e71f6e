"""Storage locations: paths and URIs joined and listed, files copied up and down (on the local
filesystem here, through the same pyarrow calls an object store gets; tests/integration/
test_object_store.py runs them against an S3 server)."""
from search import storage


def test_join_keeps_a_uris_query_at_its_end():
    uri = "s3://bucket/searches/?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.join(uri, "tiny-1") == "s3://bucket/searches/tiny-1?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.join("gs://bucket", "a") == "gs://bucket/a"
    assert storage.join("/data/runs", "a") == "/data/runs/a"
    assert storage.is_uri("s3://b") and not storage.is_uri("/data/s3:")
    assert storage.name(storage.join(uri, "tiny-1")) == "tiny-1" == storage.name("/data/runs/tiny-1/")


def test_children_lists_the_searches_of_a_name_in_order(tmp_path):
    for name in ("tiny-20261122-090000", "tiny-20261121-235959", "other-20261123-000000"):
        (tmp_path / name).mkdir()
    (tmp_path / "tiny-file").write_text("not a search")
    assert storage.children(str(tmp_path), "tiny-") == ["tiny-20261121-235959", "tiny-20261122-090000"]
    assert storage.children(str(tmp_path / "missing"), "tiny-") == []


def test_upload_then_download_leaves_checkpoints_behind(tmp_path):
    remote = tmp_path / "remote" / "search"
    (remote / "trial" / "checkpoint_000001").mkdir(parents=True)
    (remote / "trial" / "checkpoint_000001" / "model.mqat").write_bytes(b"\0" * 100)
    (remote / "trial" / "result.json").write_text('{"final": true}\n')
    local = tmp_path / "local"
    local.mkdir()
    (local / "trials.parquet").write_bytes(b"table")
    storage.upload([local / "trials.parquet", local / "absent.png"], str(remote))
    assert (remote / "trials.parquet").read_bytes() == b"table"
    assert not (remote / "absent.png").exists()

    copy = tmp_path / "copy"
    storage.download(str(remote), copy)
    assert (copy / "trial" / "result.json").read_text() == '{"final": true}\n'
    assert (copy / "trials.parquet").read_bytes() == b"table"
    assert not (copy / "trial" / "checkpoint_000001").exists()
