"""The street basemap on the server: MAP_PMTILES served whole and in byte ranges (206,
Accept-Ranges, ETag and If-Range, a bad range 416 with its reason), public and cacheable; the
pages told where it is; a missing or wrong file stops start-up with one line naming the
setting. The file is made here with the PyPI ``pmtiles`` writer (tests/street_basemap.py)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import mapbox_vector_tile
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from config import Settings, SettingsError, load_settings
from config.pmtiles_header import read_header
from server.app import create_app
from server.core.clock import FrozenClock
from server.http.basemap import BASEMAP_PATH
from tests.conftest import ClientFactory
from tests.street_basemap import MAX_ZOOM, world_pixel, write_street_basemap

Client = TestClient[web.Request, web.Application]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def basemap_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_street_basemap(tmp_path_factory.mktemp("basemap") / "streets.pmtiles")


@pytest.fixture
def served(tmp_path: Path, basemap_file: Path) -> Path:
    """This test's own copy: a test may replace or remove it."""
    copy = tmp_path / "basemap.pmtiles"
    copy.write_bytes(basemap_file.read_bytes())
    return copy


@pytest.fixture
def data(served: Path) -> bytes:
    """The served file's bytes, as the test started."""
    return served.read_bytes()


def _size(path: Path) -> int:
    return path.stat().st_size


def _remove(path: Path) -> None:
    path.unlink()


def _replace(path: Path) -> None:
    """Another version of the file in place: longer, and with another modification time."""
    path.write_bytes(path.read_bytes() + b"\0" * 64)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))


@pytest.fixture
def settings(settings: Settings, served: Path) -> Settings:
    return settings.model_copy(update={"MAP_PMTILES": served})


def _refused(body: dict[str, dict[str, str]], code: str) -> None:
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body


# --- the file, whole and in ranges -------------------------------------------------------------


async def test_the_whole_file_is_public_cacheable_and_ranged(client: Client, data: bytes) -> None:
    response = await client.get(BASEMAP_PATH)
    assert response.status == 200
    assert await response.read() == data
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "application/octet-stream"
    cache = response.headers["Cache-Control"]
    assert "public" in cache and "max-age=" in cache and "no-store" not in cache
    etag = response.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/"), etag  # pmtiles drops weak tags
    assert "Set-Cookie" not in response.headers  # one copy serves every phone


async def test_a_range_gets_206_with_those_bytes(client: Client, data: bytes) -> None:
    size = len(data)
    response = await client.get(BASEMAP_PATH, headers={"Range": "bytes=0-126"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 0-126/{size}"
    assert response.headers["Accept-Ranges"] == "bytes"
    body = await response.read()
    assert body == data[:127] and body.startswith(b"PMTiles\x03")

    # The pmtiles library's first read asks for 16 KiB, more than this small file has.
    response = await client.get(BASEMAP_PATH, headers={"Range": "bytes=0-16383"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
    assert await response.read() == data

    response = await client.get(BASEMAP_PATH, headers={"Range": "bytes=-10"})
    assert response.status == 206
    assert await response.read() == data[-10:]


async def test_if_range_gives_the_range_only_for_the_same_file(client: Client, data: bytes) -> None:
    first = await client.get(BASEMAP_PATH)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]

    same = await client.get(BASEMAP_PATH, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert same.status == 206
    assert await same.read() == data[10:20]

    for stale in ('"0-0"', f"W/{etag}"):  # another version; a weak tag never matches
        other = await client.get(BASEMAP_PATH, headers={"Range": "bytes=10-19", "If-Range": stale})
        assert other.status == 200, stale
        assert await other.read() == data

    # If-Range may name the version by its date too.
    dated = await client.get(BASEMAP_PATH, headers={"Range": "bytes=10-19", "If-Range": modified})
    assert dated.status == 206
    older = "Mon, 01 Jan 2001 00:00:00 GMT"
    whole = await client.get(BASEMAP_PATH, headers={"Range": "bytes=10-19", "If-Range": older})
    assert whole.status == 200
    assert await whole.read() == data

    cached = await client.get(BASEMAP_PATH, headers={"If-None-Match": etag})
    assert cached.status == 304


async def test_a_new_file_in_place_has_a_new_etag(client: Client, served: Path) -> None:
    before = (await client.get(BASEMAP_PATH)).headers["ETag"]
    _replace(served)
    fresh = await client.get(BASEMAP_PATH, headers={"Range": "bytes=0-9", "If-Range": before})
    assert fresh.status == 200  # the reader's cached header is stale: it gets the new file
    assert fresh.headers["ETag"] != before
    assert len(await fresh.read()) == _size(served)


@pytest.mark.parametrize("wanted", ["bytes=999999999-", "bytes=abc", "bytes=20-10"])
async def test_a_bad_range_is_416_with_the_size(client: Client, served: Path, wanted: str) -> None:
    response = await client.get(BASEMAP_PATH, headers={"Range": wanted})
    assert response.status == 416, wanted
    assert response.headers["Content-Range"] == f"bytes */{_size(served)}"
    _refused(await response.json(), "range_not_satisfiable")


async def test_a_range_of_another_unit_is_ignored(client: Client, data: bytes) -> None:
    response = await client.get(BASEMAP_PATH, headers={"Range": "lines=0-9"})
    assert response.status == 200  # RFC 9110: a unit the server does not know is ignored
    assert await response.read() == data


async def test_a_file_gone_since_start_up_is_503(client: Client, served: Path) -> None:
    _remove(served)
    response = await client.get(BASEMAP_PATH)
    assert response.status == 503
    _refused(await response.json(), "basemap_unavailable")


async def test_the_pages_name_the_basemap_and_its_attribution(client: Client) -> None:
    page = await (await client.get("/map")).text()
    assert f'data-pmtiles-url="{BASEMAP_PATH}"' in page
    assert 'data-attribution="© OpenStreetMap contributors"' in page


async def test_without_a_basemap_there_is_none(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    plain = await aiohttp_client(create_app(settings.model_copy(update={"MAP_PMTILES": None})))
    response = await plain.get(BASEMAP_PATH)
    assert response.status == 404
    _refused(await response.json(), "not_found")
    page = await (await plain.get("/map")).text()
    assert 'data-pmtiles-url=""' in page


# --- the file the tests make -------------------------------------------------------------------


@pytest.mark.one_pass
def test_the_made_file_holds_streets_in_the_protomaps_schema(basemap_file: Path) -> None:
    header = read_header(basemap_file)
    assert (header.min_zoom, header.max_zoom) == (0, MAX_ZOOM)
    with basemap_file.open("rb") as file:
        reader = Reader(MmapSource(file))
        x, y = (int(v // 256) for v in world_pixel(43.24, 76.93, MAX_ZOOM))
        tile = reader.get(MAX_ZOOM, x, y)
        assert tile is not None
        assert reader.header()["tile_type"] == TileType.MVT
    layers = mapbox_vector_tile.decode(gzip.decompress(tile))
    assert {"earth", "water", "roads", "landuse"} <= set(layers)
    kinds = {f["properties"]["kind"] for f in layers["roads"]["features"]}
    assert kinds == {"major_road", "minor_road"}


# --- start-up refuses a wrong file -------------------------------------------------------------


def _raster_pmtiles(path: Path) -> Path:
    with path.open("wb") as file:
        writer = Writer(file)
        writer.write_tile(zxy_to_tileid(0, 0, 0), b"\x89PNG\r\n\x1a\n")
        writer.finalize(
            {"tile_type": TileType.PNG, "tile_compression": Compression.NONE}, {"name": "x"}
        )
    return path


@pytest.mark.one_pass
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p, "no file at"),
        (lambda p: (p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200), p)[1], "not a PMTiles file"),
        (lambda p: (p.write_bytes(b"PMTiles"), p)[1], "not a PMTiles file"),
        (lambda p: (p.mkdir(), p)[1], "is a directory"),
        (_raster_pmtiles, "png tiles"),
    ],
)
def test_a_wrong_file_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make: object, reason: str
) -> None:
    assert callable(make)
    path = make(tmp_path / "region.pmtiles")
    monkeypatch.setenv("LIFELINE_MAP_PMTILES", str(path))
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("LIFELINE_MAP_PMTILES:") and reason in message, message
    assert "\n" not in message


@pytest.mark.one_pass
def test_another_pmtiles_version_is_named(tmp_path: Path, basemap_file: Path) -> None:
    old = tmp_path / "old.pmtiles"
    old.write_bytes(b"PM\x02\x00" + b"\0" * 512)  # version 2's own header
    with pytest.raises(SettingsError, match=r"LIFELINE_MAP_PMTILES: .*version 2; version 3"):
        load_settings(MAP_PMTILES=old)
    data = bytearray(basemap_file.read_bytes())
    data[7] = 4
    newer = tmp_path / "newer.pmtiles"
    newer.write_bytes(bytes(data))
    with pytest.raises(SettingsError, match=r"LIFELINE_MAP_PMTILES: .*version 4; version 3"):
        load_settings(MAP_PMTILES=newer)


@pytest.mark.one_pass
def test_unset_and_set(monkeypatch: pytest.MonkeyPatch, basemap_file: Path) -> None:
    monkeypatch.setenv("LIFELINE_MAP_PMTILES", "")
    assert load_settings().MAP_PMTILES is None
    monkeypatch.setenv("LIFELINE_MAP_PMTILES", str(basemap_file))
    monkeypatch.setenv("LIFELINE_MAP_ATTRIBUTION", "© OpenStreetMap contributors, Protomaps")
    settings = load_settings()
    assert basemap_file == settings.MAP_PMTILES
    assert settings.MAP_ATTRIBUTION == "© OpenStreetMap contributors, Protomaps"


@pytest.mark.one_pass
def test_run_with_a_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "LIFELINE_DATA_DIR": str(tmp_path / "var")}
    env["LIFELINE_MAP_PMTILES"] = str(tmp_path / "nowhere.pmtiles")
    done = subprocess.run(
        [sys.executable, "-m", "server", "run", "--port", "0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith("error: LIFELINE_MAP_PMTILES:"), done.stderr
    assert "nowhere.pmtiles" in done.stderr
    assert not (tmp_path / "var").exists()  # nothing was touched
