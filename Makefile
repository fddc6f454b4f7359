# The project's two commands: `make demo` and `make test`.
# Both create .venv when missing and install the project with what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chroma-keras-installed
BACKENDS := jax tensorflow torch
PYTEST_ARGS ?=
# pytest-xdist workers per backend run (0 = one process). Tests of one file stay on one worker
# (--dist loadfile), so module-scoped fixtures are built once.
PYTEST_WORKERS ?= 2
# XLA compiles every small test model under jax and tensorflow; its LLVM optimisation passes cost more than
# these models run, so the suite turns them off. Numerics stay within the tests' tolerances; library code
# and benchmarks keep XLA's defaults.
TEST_XLA_FLAGS := --xla_backend_optimization_level=0
DEMO_OUT ?= demo_output

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if ! $(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1; then \
		echo "Installing python3-venv (needed to create $(VENV))"; \
		apt-get update && apt-get install -y python3-venv; \
	fi
	@if ! command -v fluidsynth >/dev/null 2>&1 || [ ! -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then \
		echo "Installing fluidsynth + fluid-soundfont-gm (MIDI -> audio rendering)"; \
		(apt-get update && apt-get install -y fluidsynth fluid-soundfont-gm) \
			|| echo "fluidsynth unavailable: audio renders use the pure-Python additive synth"; \
	fi
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		echo "Installing chromium + chromium-driver (the listening-test page is tested in headless Chromium)"; \
		(apt-get update && apt-get install -y chromium chromium-driver) \
			|| echo "chromium unavailable: the headless-browser test of chroma-keras listen is skipped"; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch is pinned to the CPU wheel (a looser spec pulls a multi-GB CUDA build).
	$(BIN)/python -m pip install -e ".[all,dev]"
	touch $(STAMP)

test: $(STAMP)
	@status=0; \
	for backend in $(BACKENDS); do \
		echo "=== pytest with KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend TF_CPP_MIN_LOG_LEVEL=3 XLA_FLAGS="$(TEST_XLA_FLAGS) $$XLA_FLAGS" \
			$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || status=1; \
		echo "=== KERAS_BACKEND=$$backend finished ==="; \
	done; \
	if [ $$status -ne 0 ]; then echo "make test: at least one backend failed"; fi; \
	exit $$status

# The demo is the command-line journey of docs/cli.md on the built-in demo corpus: build the corpus, train a
# scorer and the conditional VAE, generate, evolve toward Green with the scorer as fitness, score the winners,
# and measure how often the scorer recognises generated segments as the colour asked for. The VAE trains 30 of
# its preset's 100 epochs so the demo stays a few minutes on CPU (zoo/cvae_chromatic/README.md has the full run).
CK = KERAS_BACKEND=$${KERAS_BACKEND:-torch} TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/chroma-keras

demo: $(STAMP)
	rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(CK) demo-corpus --out $(DEMO_OUT)/corpus.parquet --songs-per-colour 6 --segments-per-song 10 --audio auto --sample-rate 16000
	$(CK) train scorer_midi_only --data $(DEMO_OUT)/corpus.parquet --out $(DEMO_OUT)/runs/scorer
	$(CK) train cvae_chromatic --data $(DEMO_OUT)/corpus.parquet --out $(DEMO_OUT)/runs/cvae --epochs 30
	$(CK) generate $(DEMO_OUT)/runs/cvae --colour Green --num-samples 4 --out $(DEMO_OUT)/samples/green
	$(CK) generate $(DEMO_OUT)/runs/cvae --modes future,thing,known --num-samples 4 --out $(DEMO_OUT)/samples/future-thing-known
	$(CK) evolve --generator $(DEMO_OUT)/runs/cvae --scorer $(DEMO_OUT)/runs/scorer --target Green \
		--population 50 --keep 3 --generations 8 --out $(DEMO_OUT)/evolved/green
	$(CK) score $(DEMO_OUT)/runs/scorer $(DEMO_OUT)/evolved/green/best_000.mid $(DEMO_OUT)/samples/green/sample_000.mid
	$(CK) evaluate-generation $(DEMO_OUT)/runs/cvae --scorer $(DEMO_OUT)/runs/scorer --samples-per-colour 8 \
		--data $(DEMO_OUT)/corpus.parquet --split test --out $(DEMO_OUT)/recognition.md
	$(CK) evaluate $(DEMO_OUT)/runs/cvae --scorer $(DEMO_OUT)/runs/scorer --data $(DEMO_OUT)/corpus.parquet \
		--split test --out $(DEMO_OUT)/report

clean:
	rm -rf $(VENV) $(DEMO_OUT) build dist *.egg-info
