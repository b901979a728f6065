# Grimnir Radio: the developer and CI entry points.
#
#   make test    everything CI checks (the default goal; .ci/run calls it)
#   make run     start the reference server with the demo station
#   make fuzz    run every fuzz target for FUZZ_SECONDS each
#   make bench   run the criterion benchmarks
#   make book    build the mdBook into book/book/

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

CARGO ?= cargo
MDBOOK ?= mdbook
# Seconds each fuzz target runs under `make fuzz`.
FUZZ_SECONDS ?= 60

.PHONY: deps test run fuzz bench book book-serve clean

deps:
	bash scripts/ensure-deps.sh

# The order is cheapest first, so a formatting slip fails in seconds, not minutes.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) test --workspace --all-features
	CARGO="$(CARGO)" bash scripts/api-fuzz.sh
	$(CARGO) bench --workspace --all-features --no-run
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --all-features --no-deps
	$(MDBOOK) build book
	@if [ -f fuzz/Cargo.toml ]; then \
		echo "$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check"; \
		$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check; \
		echo "$(CARGO) clippy --manifest-path fuzz/Cargo.toml --bins -- -D warnings"; \
		$(CARGO) clippy --manifest-path fuzz/Cargo.toml --bins -- -D warnings; \
		echo "$(CARGO) build --manifest-path fuzz/Cargo.toml --bins"; \
		$(CARGO) build --manifest-path fuzz/Cargo.toml --bins; \
	else \
		echo "fuzz/Cargo.toml not found: skipping the fuzz target build"; \
	fi

# The reference server on its embedded defaults with the demo station and an admin login.
run: deps
	CARGO="$(CARGO)" bash scripts/run-demo.sh

# cargo-fuzz passes -Z flags to rustc; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
fuzz:
	@if [ ! -f fuzz/Cargo.toml ]; then \
		echo "fuzz/Cargo.toml not found: no fuzz targets to run"; \
		exit 0; \
	fi; \
	if ! $(CARGO) fuzz --version >/dev/null 2>&1; then \
		echo "installing cargo-fuzz"; \
		$(CARGO) install --locked cargo-fuzz; \
	fi; \
	cd fuzz; \
	targets="$$($(CARGO) fuzz list)"; \
	for target in $$targets; do \
		echo "== fuzzing $$target for $(FUZZ_SECONDS)s"; \
		mkdir -p "corpus/$$target"; \
		dirs="corpus/$$target"; \
		if [ -d "seeds/$$target" ]; then dirs="$$dirs seeds/$$target"; fi; \
		dict=""; \
		if [ -f "$$target.dict" ]; then dict="-dict=$$target.dict"; fi; \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run "$$target" $$dirs -- \
			-max_total_time=$(FUZZ_SECONDS) -len_control=0 -max_len=4096 $$dict; \
	done

bench:
	$(CARGO) bench --workspace

book:
	$(MDBOOK) build book

# `mdbook serve` needs mdbook's `serve` feature, which scripts/ensure-deps.sh leaves out.
book-serve:
	@if ! $(MDBOOK) serve --help >/dev/null 2>&1; then \
		echo "this mdbook was built without the 'serve' feature;"; \
		echo "install one with: $(CARGO) install --locked mdbook@0.5.4"; \
		echo "or open book/book/index.html after 'make book'"; \
		exit 1; \
	fi
	$(MDBOOK) serve book

clean:
	$(CARGO) clean
	@if [ -f fuzz/Cargo.toml ]; then \
		echo "$(CARGO) clean --manifest-path fuzz/Cargo.toml"; \
		$(CARGO) clean --manifest-path fuzz/Cargo.toml; \
	fi
	rm -rf book/book
