# Two commands on a fresh machine: `make run` (server + demo data) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck pytest bench bench-send bench-recorder bench-transcripts faults clean chromium coturn nettools speechtools

install: $(STAMP)

$(STAMP): pyproject.toml setup.py rtpkit/_srtpsend.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/visitation serve --demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Browser tests drive Debian's Chromium (playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The network tests run Debian's coturn (a real TURN server) and build NATs in network
# namespaces with iproute2 and nftables (they need root, as CI has).
coturn:
	@command -v turnserver >/dev/null 2>&1 || { \
		echo "installing Debian's coturn for the TURN tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq coturn >/dev/null; }

nettools:
	@{ command -v nft && command -v ip; } >/dev/null 2>&1 || { \
		echo "installing Debian's nftables and iproute2 for the NAT tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nftables iproute2 >/dev/null; }

# The statement tests render a PDF page with poppler's pdftoppm; the transcript tests speak
# with espeak-ng (both Debian packages, as Chromium is).
speechtools:
	@{ command -v pdftoppm && command -v espeak-ng; } >/dev/null 2>&1 || { \
		echo "installing Debian's poppler-utils and espeak-ng for the statement and transcript tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq poppler-utils espeak-ng >/dev/null; }

pytest: $(STAMP) chromium coturn nettools speechtools
	$(BIN)/python -m pytest --durations=20 $(PYTEST_ARGS)

test: lint typecheck pytest

# The SFU benchmark (ours vs the naive aiortc pipeline), e.g. make bench ARGS="--calls 4 --seconds 10"
bench: $(STAMP)
	$(BIN)/python -m loadtest.bench $(ARGS)

# The SFU's per-packet send cost, fastpath.send_rtp vs rtpkit.outlet side by side
bench-send: $(STAMP)
	$(BIN)/python -m loadtest.send_path $(ARGS)

# What recording costs the worker: muxing on the loop vs a writer thread per call, side by side
bench-recorder: $(STAMP)
	$(BIN)/python -m loadtest.recorder_handoff $(ARGS)

# What idle family sockets cost a node at each log setting, e.g. make bench-idle ARGS="--sockets 2000"
bench-idle: $(STAMP)
	$(BIN)/python -m loadtest.idle_sockets $(ARGS)

# Transcription throughput (audio s per CPU s and per wall s) and backlog drain with the
# pocketsphinx engine, e.g. make bench-transcripts ARGS="--calls 8 --workers 1,2"
bench-transcripts: $(STAMP) speechtools
	$(BIN)/python -m loadtest.transcribe_bench $(ARGS)

# The fault suite against real processes (kills, restarts, starvation, full disk, webhook
# outage, churn), e.g. make faults ARGS="--case worker_kill --short"; needs root (tmpfs mount).
faults: $(STAMP)
	$(BIN)/python -m loadtest.faults $(ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
