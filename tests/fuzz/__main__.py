"""``python -m tests.fuzz TARGET [libFuzzer flags]``: one target under atheris, coverage-guided.

``make fuzz`` runs every target with ``-runs=$(FUZZ_RUNS)`` and a time bound. The target's module
and the modules named in ``INSTRUMENT`` are imported instrumented, so that their new branches
steer the mutations; the target's seeds start the corpus. An uncaught exception is a crash:
libFuzzer stops, writes the input to ``crash-*`` under ``-artifact_prefix`` and exits non-zero.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

import atheris

# Target name -> what its coverage is measured on (besides its own module).
INSTRUMENT: dict[str, tuple[str, ...]] = {
    "payloads": ("signaling.payloads", "server.core.events", "pydantic"),
    "sdp": ("media.ice", "aiortc.sdp", "aioice.candidate"),
    "candidates": ("media.ice", "aiortc.sdp", "aioice.candidate"),
    "forms": (
        "server.http.threats.forms",
        "server.http.uploads",
        "aiohttp.multipart",
        "aiohttp.web_request",
        "aiohttp.helpers",
        "multidict",
    ),
    "images": ("server.actions.uploads", "PIL"),
    "clips": ("media.clips", "server.actions.video_clips"),
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in INSTRUMENT:
        sys.exit(f"usage: python -m tests.fuzz {{{','.join(INSTRUMENT)}}} [libFuzzer flags]")
    name = argv[1]
    with atheris.instrument_imports(include=[f"tests.fuzz.{name}", *INSTRUMENT[name]]):
        target = importlib.import_module(f"tests.fuzz.{name}").TARGET
    flags = [arg for arg in argv[2:] if arg.startswith("-")]
    paths = [arg for arg in argv[2:] if not arg.startswith("-")]  # inputs to rerun, or corpora
    if not paths:
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        for index, seed in enumerate(target.seeds):
            (corpus / f"seed-{index}").write_bytes(seed)
        paths = [str(corpus)]
    atheris.Setup([argv[0], *flags, *paths], target.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
