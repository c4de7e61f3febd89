"""The raw store: content addressing, compression, integrity and concurrent writers."""

from __future__ import annotations

import gzip
import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.fetch.rawstore import RawBodyCorrupt, RawBodyMissing, RawStore

BODY = "# Ένα άρθρο\n\nFull text of a paper.\n".encode()
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "raw")


def leftovers(store: RawStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file() and not p.name.endswith(".gz")]


def test_put_then_get_round_trips_under_the_content_hash(store: RawStore) -> None:
    assert not store.has(SHA)
    assert store.put(BODY) == SHA
    assert store.has(SHA)
    assert store.get(SHA) == BODY
    path = store.path_for(SHA)
    assert path == store.root / SHA[:2] / SHA[2:4] / f"{SHA}.gz"
    assert gzip.decompress(path.read_bytes()) == BODY


def test_bodies_are_compressed(store: RawStore) -> None:
    body = b"# repetitive\n" * 10_000
    sha = store.put(body)
    assert store.path_for(sha).stat().st_size < len(body) // 20


def test_put_is_idempotent(store: RawStore) -> None:
    store.put(BODY)
    before = store.path_for(SHA).stat().st_mtime_ns
    assert store.put(BODY) == SHA
    assert store.path_for(SHA).stat().st_mtime_ns == before
    assert [p.name for p in store.root.rglob("*") if p.is_file()] == [f"{SHA}.gz"]


def test_missing_body_is_a_typed_key_error(store: RawStore) -> None:
    with pytest.raises(RawBodyMissing) as caught:
        store.get(SHA)
    assert isinstance(caught.value, KeyError) and caught.value.sha256 == SHA


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (gzip.compress(b"someone else's body"), "does not match"),
        (b"not gzip at all", "unreadable gzip"),
        (gzip.compress(BODY)[:-12], "unreadable gzip"),  # cut short
    ],
    ids=["other-body", "not-gzip", "truncated-gzip"],
)
def test_corrupt_body_is_detected(store: RawStore, stored: bytes, reason: str) -> None:
    path = store.path_for(SHA)
    path.parent.mkdir(parents=True)
    path.write_bytes(stored)
    with pytest.raises(RawBodyCorrupt, match=reason):
        store.get(SHA)


@pytest.mark.parametrize("bad", ["../../../../etc/passwd", SHA.upper(), SHA[:-1], "", SHA + "0"])
def test_only_sha256_digests_name_paths(store: RawStore, bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        store.path_for(bad)
    with pytest.raises(ValueError):
        store.has(bad)


def test_concurrent_writers_in_threads(store: RawStore) -> None:
    bodies = [f"# paper {i % 4}\n".encode() for i in range(64)]
    with ThreadPoolExecutor(16) as pool:
        shas = list(pool.map(store.put, bodies))
    assert shas == [hashlib.sha256(b).hexdigest() for b in bodies]
    assert all(store.get(sha) == body for sha, body in zip(shas, bodies, strict=True))
    assert leftovers(store) == []


def test_concurrent_writers_in_processes(store: RawStore) -> None:
    bodies = [f"# paper {i % 3}\n".encode() * 1000 for i in range(24)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(4, mp_context=context) as pool:
        shas = list(pool.map(store.put, bodies))
    assert all(store.get(sha) == body for sha, body in zip(shas, bodies, strict=True))
    assert len(set(shas)) == 3 and leftovers(store) == []


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(st.binary(max_size=4096))
def test_any_bytes_round_trip(store: RawStore, body: bytes) -> None:
    sha = store.put(body)
    assert sha == hashlib.sha256(body).hexdigest()
    assert store.get(sha) == body


def test_sync_makes_a_batch_of_bodies_durable_in_one_call(
    store: RawStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    shas = [store.put(f"body {i}".encode()) for i in range(3)]
    calls: list[object] = []
    monkeypatch.setattr("flows.fetch.rawstore._syncfs", lambda root: calls.append(root) or True)
    assert store.sync([*shas, shas[0]]) == 3
    assert calls == [store.root]  # one call for the whole batch, not one per body
    assert store.sync([]) == 0 and calls == [store.root]


def test_sync_falls_back_to_an_fsync_per_body(
    store: RawStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    shas = [store.put(f"body {i}".encode()) for i in range(2)]
    synced: list[int] = []
    monkeypatch.setattr("flows.fetch.rawstore._syncfs", lambda root: False)
    monkeypatch.setattr("flows.fetch.rawstore.os.fsync", synced.append)
    assert store.sync(shas) == 2 and len(synced) == 2


def test_syncfs_runs_on_this_machine(store: RawStore) -> None:
    store.put(BODY)
    from flows.fetch.rawstore import _syncfs

    assert _syncfs(store.root) is True
