# The project's two commands: `make demo` and `make test`.
# Both create .venv when missing and install the project with what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chroma-keras-installed
BACKENDS := jax tensorflow torch
PYTEST_ARGS ?=
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
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch is pinned to the CPU wheel (a looser spec pulls a multi-GB CUDA build).
	$(BIN)/python -m pip install -e ".[all,dev]"
	touch $(STAMP)

test: $(STAMP)
	@status=0; \
	for backend in $(BACKENDS); do \
		echo "=== pytest with KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -m pytest $(PYTEST_ARGS) || status=1; \
		echo "=== KERAS_BACKEND=$$backend finished ==="; \
	done; \
	if [ $$status -ne 0 ]; then echo "make test: at least one backend failed"; fi; \
	exit $$status

demo: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-torch} TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/chroma-keras demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) $(DEMO_OUT) build dist *.egg-info
