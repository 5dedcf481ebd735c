# llmgate — the two commands of the README:
#   make run    install what is missing, build, start the gateway (embedded default)
#   make test   the same set-up, then every test suite
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= 2
ARGS ?=

.PHONY: all deps build run test unit unit-asan hostile-asan node-tests asan tsan bench-limits fuzz fuzz-deps clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/llmgate serve $(ARGS)

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLLMGATE_SANITIZE=ON

# Unit and network tests, and the gateway itself, under ASan+UBSan as well as the normal build.
asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD) -j$(JOBS) unit_tests net_tests llmgate

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

unit-asan: asan
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)

# The hostile-input corpus against the ASan+UBSan gateway (a sanitizer report fails it).
hostile-asan: asan node_modules/.package-lock.json
	LLMGATE_BIN=$(CURDIR)/$(ASAN_BUILD)/llmgate LLMGATE_SANITIZED=1 node --test tests/integration/hostile.test.mjs

node-tests: build node_modules/.package-lock.json
	LLMGATE_BIN=$(CURDIR)/$(BUILD)/llmgate node --test tests/integration/*.test.mjs tests/clients/*.test.mjs

test:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory unit unit-asan hostile-asan node-tests; status=$$?; \
	echo "make test: $$(( $$(date +%s) - start ))s (status $$status)"; exit $$status

# ns per decision of each limit algorithm, contended admission, bytes per key (not a test)
bench-limits: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j$(JOBS) limit_bench
	./$(BUILD)/limit_bench --benchmark_min_time=0.2

# libFuzzer targets (clang-14, libclang-rt-14-dev), each run FUZZ_SECONDS; not part of make test.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
$(FUZZ_BUILD)/build.ninja:
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 -DLLMGATE_FUZZ=ON

fuzz-deps:
	@scripts/install-deps.sh --fuzz

fuzz: deps fuzz-deps $(FUZZ_BUILD)/build.ninja node_modules/.package-lock.json
	ninja -C $(FUZZ_BUILD) -j$(JOBS) fuzz_targets
	scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
