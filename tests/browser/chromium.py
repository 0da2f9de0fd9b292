"""How every browser test and benchmark starts Debian's Chromium (never `playwright install`)."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream=fps=30",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    # Nothing may leave loopback. Captured on eth0 with tcpdump, Chromium still looked up
    # accounts.google.com, update.googleapis.com and content-autofill.googleapis.com, and
    # joined the mDNS group to hide host candidates: resolve no name but localhost, and keep
    # host candidates plain (the media node drops any outside MEDIA_PEER_NETWORKS anyway).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns,OptimizationHints,MediaRouter",
    "--no-first-run",
]
