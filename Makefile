# Lifeline: `make setup run` starts everything on the embedded default; `make test` tests it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
VENDOR := console_ui/static/vendor
# Scale-out test mode: PostgreSQL database `test` and Redis on loopback (see README).
SCALEOUT_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
SCALEOUT_REDIS_URL    ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: setup system-packages install install-prod vendor migrate run test test-embedded \
  test-scaleout lint bench fuzz clean

setup: system-packages install vendor migrate

# What the tests need from Debian (Chromium, fonts, nginx, coturn, systemd-analyze, sqlite3,
# Node.js, slapd for the directory sign-in tests):
# installed with apt-get as root, else named in one line (tools/system-packages.sh).
system-packages:
	@sh tools/system-packages.sh

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# A production node: the runtime dependencies only, no test or lint tools, and no Node.js: the
# page libraries come from `make vendor`, which a release build runs once, shipping
# console_ui/static/vendor/ in the tree it installs (docs/operations.md).
install-prod:
	@test -f $(VENDOR)/socket.io-client/socket.io.esm.min.js || { \
	  echo "install-prod: $(VENDOR) is empty: run 'make vendor' where Node.js is, then copy the tree" >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# The pages load these from us, never from a CDN. The street basemap (docs/map.md): pmtiles as
# an ES module, and protomaps-leaflet's browser build, which extends the pages' Leaflet when
# loaded (it bundles the same pmtiles release, pinned to match in package.json).
vendor: node_modules/.package-lock.json
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/leaflet $(VENDOR)/leaflet.markercluster \
	  $(VENDOR)/socket.io-client $(VENDOR)/chart.js $(VENDOR)/world-atlas $(VENDOR)/topojson-client \
	  $(VENDOR)/pmtiles $(VENDOR)/protomaps-leaflet
	cp -r node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet-src.esm.js \
	  node_modules/leaflet/dist/leaflet.css node_modules/leaflet/dist/images $(VENDOR)/leaflet/
	cp node_modules/leaflet.markercluster/dist/leaflet.markercluster.js \
	  node_modules/leaflet.markercluster/dist/MarkerCluster.css \
	  node_modules/leaflet.markercluster/dist/MarkerCluster.Default.css $(VENDOR)/leaflet.markercluster/
	cp node_modules/socket.io-client/dist/socket.io.esm.min.js $(VENDOR)/socket.io-client/
	cp node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/chart.js/
	cp node_modules/world-atlas/countries-110m.json node_modules/world-atlas/countries-50m.json \
	  node_modules/world-atlas/land-50m.json $(VENDOR)/world-atlas/
	cp node_modules/topojson-client/dist/topojson-client.min.js $(VENDOR)/topojson-client/
	cp node_modules/pmtiles/dist/index.js $(VENDOR)/pmtiles/
	cp node_modules/protomaps-leaflet/dist/protomaps-leaflet.js \
	  node_modules/protomaps-leaflet/LICENSE $(VENDOR)/protomaps-leaflet/

migrate: install
	$(BIN)/python -m server migrate

# A demo on this machine or its LAN: callers' candidates on loopback and private ranges are
# accepted (a deployment's default is public addresses only; docs/operations.md).
DEMO_PEER_NETWORKS := 127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,::1/128,fc00::/7
run: install
	LIFELINE_LOG_FORMAT=$${LIFELINE_LOG_FORMAT:-text} \
	  LIFELINE_MEDIA_PEER_NETWORKS=$${LIFELINE_MEDIA_PEER_NETWORKS:-$(DEMO_PEER_NETWORKS)} \
	  $(BIN)/python -m server run

# Every suite twice where storage matters: embedded (SQLite, in-process) and scale-out
# (PostgreSQL + Redis). The same tests; the settings choose (a test marked one_pass, the same in
# either mode, runs in the embedded pass only). Most of a test's time is spent waiting on a
# socket or a timer, not on the CPU, so the embedded pass runs beside the scale-out pass's
# tests without a browser; the scale-out pass's browser tests (media workers, PostgreSQL and
# Redis: the heaviest, the most sensitive to a busy machine) run after, alone. Each pass's
# output is printed whole when it ends. With test paths in PYTEST_ARGS both passes run at once.
SCALEOUT_FIRST := $(sort $(wildcard tests/test_*.py))
ifneq ($(filter tests/%,$(PYTEST_ARGS)),)
test: install vendor
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-embedded test-scaleout
else
test: install vendor
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-embedded test-scaleout \
	  SCALEOUT_PATHS="$(SCALEOUT_FIRST)"
	@$(MAKE) --no-print-directory test-scaleout SCALEOUT_PATHS=tests/browser
endif

test-embedded: install vendor
	env -u LIFELINE_DATABASE_URL -u LIFELINE_REDIS_URL $(BIN)/pytest $(PYTEST_ARGS)

test-scaleout: install vendor
	LIFELINE_DATABASE_URL=$(SCALEOUT_DATABASE_URL) LIFELINE_REDIS_URL=$(SCALEOUT_REDIS_URL) \
	  $(BIN)/pytest $(PYTEST_ARGS) $(SCALEOUT_PATHS)

lint: install
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-cache

bench: install
	$(BIN)/python -m bench

# Coverage-guided fuzzing (atheris) of what strangers send: every Socket.IO payload model, SDP
# offers, ICE candidates, the upload forms, the image and video sniffers (tests/fuzz/). Each
# target runs FUZZ_RUNS inputs or FUZZ_SECS seconds, whichever ends first; a crash stops it with
# the input in var/fuzz/<target>/crash-*. `make test` runs the same targets briefly.
FUZZ_RUNS ?= 1000000
FUZZ_SECS ?= 900
FUZZ_TARGETS ?= payloads sdp candidates forms images clips
fuzz: install
	@mkdir -p var/fuzz
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p var/fuzz/$$target; \
	  $(BIN)/python -m tests.fuzz $$target -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECS) \
	    -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
	    -artifact_prefix=var/fuzz/$$target/ > var/fuzz/$$target.log 2>&1 \
	    || { echo "fuzz $$target: CRASH (var/fuzz/$$target.log)"; tail -30 var/fuzz/$$target.log; exit 1; }; \
	  echo "fuzz $$target: $$(grep -h '^Done' var/fuzz/$$target.log), 0 crashes"; \
	done

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache .mypy_cache .ruff_cache
