"""Stored files by key under one root every node shares (server/core/storage.py).

Two nodes here are two apps in this process on one database, each with a ``DATA_DIR`` of its
own and one ``STORAGE_DIR`` between them. What one node stores, the other serves, after the
first node's own directory is gone: nothing it needs lies on the disk of the node that wrote
it. Migration 0008 turns the old rows' paths into keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
from functools import partial
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import column, insert, table, update
from sqlmodel import col, select

from config import Settings
from server.app import create_app
from server.core.clock import FrozenClock
from server.core.storage import FileStorage, StorageConflict, check_key
from server.db.migrate import downgrade, upgrade
from server.db.models import AuditEntry, CallPhoto, Recording, ReportPhoto, Snapshot
from server.db.types import UTCDateTime
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from tests.conftest import ClientFactory
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import answer_via, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in
from tests.threats import TEST_AREA, created, jpeg_with_gps, post_report

MEDIA_TIMEOUT_SECS = 20.0


def _jpeg(color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(out, "JPEG")
    return out.getvalue()


# -- the storage itself ------------------------------------------------------------------------


def test_a_key_is_stored_whole_once_and_never_overwritten(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "files")
    key = "photos/call-1/000001-abcdef012345.jpg"
    assert not storage.exists(key)
    storage.put(key, b"first")
    assert storage.exists(key)
    assert storage.path(key) == tmp_path / "files" / "photos" / "call-1" / key.rsplit("/")[-1]
    with storage.open(key) as file:
        assert file.read() == b"first"
    storage.put(key, b"first")  # the same bytes again (a retried write) is no change
    with pytest.raises(StorageConflict):
        storage.put(key, b"other")
    assert storage.path(key).read_bytes() == b"first"
    # Only the file itself is left: no draft a reader could take for it.
    assert [p.name for p in storage.path(key).parent.iterdir()] == [key.rsplit("/")[-1]]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside.jpg",
        "photos/../../outside.jpg",
        "photos//x.jpg",
        "photos/.hidden",
        "photos/x y.jpg",
        "photos\\x.jpg",
        "photos/" + "x" * 600,
    ],
)
def test_a_key_never_leaves_the_root(tmp_path: Path, key: str) -> None:
    storage = FileStorage(tmp_path / "files")
    with pytest.raises(ValueError, match="not a storage key"):
        storage.put(key, b"data")
    with pytest.raises(ValueError, match="not a storage key"):
        check_key(key)
    assert not (tmp_path / "outside.jpg").exists()
    assert not (tmp_path / "files").exists()


def test_an_old_rows_absolute_path_is_read_where_it_lies(tmp_path: Path) -> None:
    """Rows from before keys whose files lie outside the root keep their path (0008)."""
    old = tmp_path / "var" / "photos" / "c" / "000001-aa.jpg"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    storage = FileStorage(tmp_path / "files")
    assert storage.path(str(old)) == old
    assert storage.exists(str(old))


def test_the_root_is_storage_dir_else_files_under_data_dir(tmp_path: Path) -> None:
    assert Settings(DATA_DIR=tmp_path).storage_dir == tmp_path / "files"
    assert Settings(DATA_DIR=tmp_path, STORAGE_DIR="").storage_dir == tmp_path / "files"
    assert Settings(DATA_DIR=tmp_path, STORAGE_DIR=tmp_path / "nfs").storage_dir == (
        tmp_path / "nfs"
    )


# -- two nodes, one storage --------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """Node A: its own DATA_DIR, the shared STORAGE_DIR (the database lies elsewhere)."""
    return settings.model_copy(
        update={
            "DATA_DIR": tmp_path / "node-a",
            "STORAGE_DIR": tmp_path / "shared",
            "NODE_ID": "node-a",
            "REPORT_AREA": TEST_AREA,
            "REPORT_RATE_LIMIT": "1000/day",
        }
    )


@pytest.fixture
async def node_b(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory, tmp_path: Path
) -> Client:
    """Node B: the same database, Redis and STORAGE_DIR, a DATA_DIR of its own."""
    other = settings.model_copy(update={"DATA_DIR": tmp_path / "node-b", "NODE_ID": "node-b"})
    client: Client = await aiohttp_client(create_app(other, clock))
    return client


def _lose_node_a_disk(settings: Settings) -> None:
    """What node A keeps on its own disk is not node B's: take it away."""
    shutil.rmtree(settings.DATA_DIR, ignore_errors=True)


async def test_a_callers_photo_stored_by_one_node_is_served_by_the_other(
    client: Client, node_b: Client, settings: Settings
) -> None:
    started = await start_call(client)
    call_id, token = started["call_id"], started["token"]
    photo = _jpeg()
    form = {"photo": io.BytesIO(photo)}
    sent = await client.post(
        f"/api/calls/{call_id}/photos", data=form, headers={"X-Call-Token": token}
    )
    assert sent.status == 201, await sent.text()
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        row = (await session.exec(select(CallPhoto))).one()
    _lose_node_a_disk(settings)

    served = await node_b.get(f"/api/calls/{call_id}/photos/1", headers={"X-Call-Token": token})
    assert served.status == 200, await served.text()
    assert await served.read() == photo
    digest = hashlib.sha256(photo).hexdigest()
    assert served.headers["X-Content-SHA256"] == digest
    assert served.content_type == "image/jpeg"
    assert row.path == f"photos/{call_id}/000001-{digest[:12]}.jpg"  # a key, not a node's path
    assert (settings.storage_dir / row.path).read_bytes() == photo


async def test_a_reports_photos_stored_by_one_node_are_served_by_the_other(
    client: Client, node_b: Client, settings: Settings, clock: FrozenClock
) -> None:
    photo = jpeg_with_gps()
    body = await created(await post_report(client, [photo]))
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        row = (await session.exec(select(ReportPhoto))).one()
    _lose_node_a_disk(settings)

    public = await node_b.get(f"/api/reports/{body['id']}/photos/1")
    assert public.status == 200, await public.text()
    assert hashlib.sha256(await public.read()).hexdigest() == row.public_sha256
    officer = await another_browser(node_b)
    try:
        await sign_in(officer, await add_account(node_b, "olga", "operator"), clock)
        original = await officer.get(f"/api/staff/reports/{body['id']}/photos/1/original")
        assert original.status == 200, await original.text()
        assert await original.read() == photo
    finally:
        await officer.close()
    assert row.original_path.startswith(f"reports/{body['id']}/1-")
    assert row.public_path.startswith(f"reports/{body['id']}/1-")


async def test_a_nodes_snapshot_and_recording_are_served_by_the_other(
    client: Client, node_b: Client, settings: Settings, clock: FrozenClock
) -> None:
    """A real call's media on node A (its own media node); the operator, signed in on node B
    too, reads the snapshot and the recording segment there, byte for byte."""
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    account = await add_account(client, "olga", "operator")
    desk_a = await another_browser(client)
    desk_b = await another_browser(node_b)
    peers: list[MediaPeer] = []
    try:
        await sign_in(desk_a, account, clock)
        csrf_b = await sign_in(desk_b, account, clock, step=1)
        started = await start_call(client)
        call_id = started["call_id"]
        async with citizen(client, started["token"]) as phone, console(desk_a) as desk:
            peers.append(await citizen_peer(answer_via(phone)))
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            clock.advance(1.0)  # the keyframe limit runs on this clock
            peers.append(await subscriber_peer(answer_via(desk, call_id=call_id), talk=True))
            await wait_until(
                lambda: peers[1].received.video_frames > 30,
                MEDIA_TIMEOUT_SECS,
                "video at the operator",
            )
            snap = await desk.call("snapshot", {"call_id": call_id})
            assert snap["ok"], snap
            ended = await desk.call(
                "end_call", {"call_id": call_id, "disposition": "dispatched", "note": ""}
            )
            assert ended["state"] == "ended"
    finally:
        for peer in peers:
            await peer.close()
        await desk_a.close()
    try:
        async with client.app[SERVICES_KEY].db.session() as session:
            [segment] = (await session.exec(select(Recording))).all()
            [snapshot] = (await session.exec(select(Snapshot))).all()
        _lose_node_a_disk(settings)

        image = await desk_b.get(snap["url"])
        assert image.status == 200, await image.text()
        assert hashlib.sha256(await image.read()).hexdigest() == snap["sha256"]
        # Played as the call's record plays it: within a view opened with a reason.
        view = await desk_b.post(
            f"/api/archive/calls/{call_id}/views",
            json={"reason": "storage test"},
            headers={"X-CSRF-Token": csrf_b},
        )
        assert view.status == 201, await view.text()
        token = (await view.json())["view"]["token"]
        recording = await desk_b.get(f"/api/calls/{call_id}/recordings/1", params={"view": token})
        assert recording.status == 200, await recording.text()
        data = await recording.read()
        assert hashlib.sha256(data).hexdigest() == segment.sha256
        assert len(data) == segment.size_bytes
        assert recording.headers["X-Content-SHA256"] == segment.sha256
        assert recording.headers["Content-Disposition"].startswith("attachment;")
        assert recording.content_type == "video/x-matroska"
        assert segment.path == f"recordings/{call_id}/segment-0001.mkv"
        assert snapshot.path.startswith(f"snapshots/{call_id}/")
        missing = await desk_b.get(f"/api/calls/{call_id}/recordings/2", params={"view": token})
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "recording_not_found"
    finally:
        await desk_b.close()
    async with client.app[SERVICES_KEY].db.session() as session:
        actions = (await session.exec(select(AuditEntry.action))).all()
    assert "recording_played" in actions


async def test_a_file_missing_from_the_storage_is_a_clear_503(
    client: Client, node_b: Client, settings: Settings
) -> None:
    """A node whose STORAGE_DIR is not the shared one (or not mounted) says so, not 500."""
    started = await start_call(client)
    call_id, token = started["call_id"], started["token"]
    sent = await client.post(
        f"/api/calls/{call_id}/photos",
        data={"photo": io.BytesIO(_jpeg())},
        headers={"X-Call-Token": token},
    )
    assert sent.status == 201
    shutil.rmtree(settings.storage_dir)
    served = await node_b.get(f"/api/calls/{call_id}/photos/1", headers={"X-Call-Token": token})
    assert served.status == 503, await served.text()
    assert (await served.json())["error"]["code"] == "file_unavailable"


# -- migration 0008 ----------------------------------------------------------------------------


def _as_old_nodes_left_them(
    root: Path, data_dir: Path, keys: list[str], tmp_path: Path
) -> tuple[list[Path], Path, str]:
    """Each photo also under DATA_DIR (the old layout); the third one's file only there; a copy
    of the first outside both directories; the third's old path relative to the working
    directory."""
    old_layout = [data_dir / key for key in keys]
    for old, key in zip(old_layout, keys, strict=True):
        old.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / key, old)
    (root / keys[2]).unlink()
    elsewhere = tmp_path / "elsewhere" / "000004.jpg"
    elsewhere.parent.mkdir()
    shutil.copyfile(old_layout[0], elsewhere)
    return old_layout, elsewhere, os.path.relpath(old_layout[2], Path.cwd())


# The recordings table as 0007 has it (0009 and 0012 add columns the model has).
RECORDINGS_0007 = table(
    "recordings",
    column("call_id"),
    column("segment"),
    column("path"),
    column("media_node"),
    column("started_at", UTCDateTime()),
    column("ended_at", UTCDateTime()),
    column("size_bytes"),
    column("sha256"),
)


async def test_migration_turns_old_paths_into_keys_and_back(
    client: Client, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    """Rows as nodes wrote them before keys: an absolute path under the storage root, one under
    DATA_DIR whose file was moved into the root (the upgrade's advice), one relative to the
    working directory that stays where it is, and one elsewhere. Each comes out as a key
    where its file is in the root, else as an absolute path, and every one is still served."""
    started = await start_call(client)
    call_id, token = started["call_id"], started["token"]
    photos = [_jpeg((200, 0, 0)), _jpeg((0, 200, 0)), _jpeg((0, 0, 200))]
    for photo in photos:
        sent = await client.post(
            f"/api/calls/{call_id}/photos",
            data={"photo": io.BytesIO(photo)},
            headers={"X-Call-Token": token},
        )
        assert sent.status == 201, await sent.text()
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    async with services.db.session() as session:
        rows = (await session.exec(select(CallPhoto).order_by(col(CallPhoto.seq)))).all()
    keys = [row.path for row in rows]
    root, data_dir = settings.storage_dir, settings.DATA_DIR

    await asyncio.to_thread(
        partial(downgrade, database_url, "0007", storage_dir=root, data_dir=data_dir)
    )
    # At 0007 the tables lack later columns (purged_at, 0009): name only the columns read.
    async with services.db.session() as session:
        down = (await session.exec(select(CallPhoto.path).order_by(col(CallPhoto.seq)))).all()
    assert list(down) == [str(root.absolute() / key) for key in keys]

    # As the old nodes left them. Photo 2: written under DATA_DIR/photos, moved into the root
    # before migrating. Photo 3: under DATA_DIR, named relative to the working directory, and
    # not moved. A recording's row names a file outside both.
    old_layout, elsewhere, relative = await asyncio.to_thread(
        _as_old_nodes_left_them, root, data_dir, keys, tmp_path
    )
    old_paths = {2: str(old_layout[1]), 3: relative}
    now = services.clock.now()
    async with services.db.session() as session:
        for seq, path in old_paths.items():
            await session.exec(
                update(CallPhoto)
                .where(col(CallPhoto.call_id) == call_id, col(CallPhoto.seq) == seq)
                .values(path=path)
            )
        # The table as 0007 has it: the model's later columns are not there yet.
        await session.exec(
            insert(RECORDINGS_0007).values(
                call_id=call_id,
                segment=1,
                path=str(elsewhere),
                media_node="node-a",
                started_at=now,
                ended_at=now,
                size_bytes=len(photos[0]),
                sha256=hashlib.sha256(photos[0]).hexdigest(),
            )
        )
        await session.commit()

    await asyncio.to_thread(partial(upgrade, database_url, storage_dir=root, data_dir=data_dir))
    async with services.db.session() as session:
        up = (await session.exec(select(CallPhoto).order_by(col(CallPhoto.seq)))).all()
        [recording] = (await session.exec(select(Recording))).all()
    assert [row.path for row in up] == [keys[0], keys[1], str(old_layout[2].absolute())]
    assert recording.path == str(elsewhere)
    for seq, photo in enumerate(photos, start=1):
        served = await client.get(
            f"/api/calls/{call_id}/photos/{seq}", headers={"X-Call-Token": token}
        )
        assert served.status == 200, (seq, await served.text())
        assert await served.read() == photo
