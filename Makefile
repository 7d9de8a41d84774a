# Thin wrapper over CMake: the two README commands and the developer targets.
# `make run` and `make test` install the Debian packages first, so a fresh machine needs nothing else.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CONFIG     ?= examples/quickstart/sluice.yaml
FUZZ_SECONDS ?= 300

.PHONY: all deps build run test unit sanitize fuzz fuzz-smoke bench docs models format clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@echo "Starting Sluice (all components, $(CONFIG)); logs are JSON lines on stderr."
	@KEY=$$(scripts/quickstart-key $(BUILD)/sluice) && \
	echo "Demo API key (tenant demo, scopes predict,admin; kept in examples/quickstart/demo-key.txt):" && \
	echo "  $$KEY" && \
	echo "In another terminal, score a card transaction through the gateway:" && \
	echo "  curl -s -H 'Authorization: Bearer $$KEY' -d @examples/quickstart/transaction.json http://127.0.0.1:8080/v1/predict/fraud" && \
	echo "or call a model with the Open Inference Protocol:" && \
	echo "  curl -s -H 'Authorization: Bearer $$KEY' http://127.0.0.1:8080/v2/models/fraud_xgboost" && \
	echo "More: curl -s http://127.0.0.1:8080/metrics | grep sluice_gateway; $(BUILD)/sluice keys list --file examples/quickstart/keys.json" && \
	echo "Stop with Ctrl-C (graceful drain)."
	@exec $(BUILD)/sluice serve --config $(CONFIG) --target all

# Whole suite: release build, then the sanitizer build, then each fuzzer briefly.
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory sanitize
	@$(MAKE) --no-print-directory fuzz-smoke

sanitize: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS) -E '^fuzz\.'

$(FUZZ_BUILD)/build.ninja: CMakeLists.txt
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSL_FUZZ=ON >/dev/null

fuzz-smoke: deps $(FUZZ_BUILD)/build.ninja
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@cd $(FUZZ_BUILD) && ctest --output-on-failure -j $(JOBS) -R '^fuzz\.'

fuzz: deps $(FUZZ_BUILD)/build.ninja
	@cmake -S . -B $(FUZZ_BUILD) -DSL_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@cd $(FUZZ_BUILD) && ctest --output-on-failure -j 1 -R '^fuzz\.'

bench: build
	@scripts/install-deps --bench
	@bench/run
	@bench/engine/run --write
	@bench/inference/run --write
	@bench/gateway/run --write

# Retrains the example models (needs python3-torch and python3-sklearn; tests never do).
models:
	@scripts/install-deps --bench
	@cd examples/models && for s in mlp_digits lenet_digits logistic_breast_cancer transformer_sentiment; do \
		/usr/bin/python3 $$s.py || exit 1; done
	@/usr/bin/python3 examples/models/fraud_xgboost/train.py
	@/usr/bin/python3 examples/models/simple/make_simple.py
	@scripts/model-manifest examples/quickstart/models/*/[0-9]*

docs: build
	@$(BUILD)/sluice config docs > docs/configuration.md

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# Regenerates docs/onnx-conformance.md and the committed list of passing ONNX tests, on purpose:
# review the diff of tests/conformance/onnx/passing.txt before committing it.
ONNX_TESTDATA ?= /usr/share/libonnx-testdata/data
.PHONY: conformance-report
conformance-report: build
	@$(BUILD)/onnx_conformance --data $(ONNX_TESTDATA) --report docs/onnx-conformance.md \
		--write-passing tests/conformance/onnx/passing.txt
