"""Live call media: aiortc peers, encoded-frame forwarding, stream-copy recording."""
