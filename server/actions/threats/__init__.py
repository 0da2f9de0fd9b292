"""The threat map (KMZB): citizens pin non-urgent threats, the police verify them, all see them.

``reports`` holds the rules (``check_*``) and the writes (``do_*``); ``routes`` and ``open311``
are the thin HTTP sides; ``photos`` makes the public, EXIF-free copies; ``stats`` counts.
"""
