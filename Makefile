# llmgate — the two commands of the README:
#   make run    install what is missing, build, start the gateway (embedded default)
#   make test   the same set-up, then every test suite
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= 2
ARGS ?=

.PHONY: all deps build build-pgo run test unit unit-asan node-tests-asan node-tests asan tsan soak bench-limits fuzz fuzz-deps clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j$(JOBS)

# A profile-guided build (GCC's PGO: built instrumented, trained on loopback,
# built again): $(PGO_BUILD)/llmgate. Not part of make test; see scripts/pgo-build.sh.
PGO_BUILD ?= build-pgo
build-pgo: deps
	JOBS=$(JOBS) scripts/pgo-build.sh $(PGO_BUILD)

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

# The hostile-input corpus and the faults under load against the ASan+UBSan
# gateway (a sanitizer report makes it exit non-zero, which fails the test).
node-tests-asan: asan node_modules/.package-lock.json
	LLMGATE_BIN=$(CURDIR)/$(ASAN_BUILD)/llmgate LLMGATE_SANITIZED=1 node --test tests/integration/hostile.test.mjs tests/integration/faults.test.mjs tests/integration/tls.test.mjs

# The 10-minute soak (memory flat after warm-up, nothing leaked); SOAK_ARGS="--seconds 1800" for longer.
SOAK_ARGS ?=
soak: build node_modules/.package-lock.json
	LLMGATE_BIN=$(CURDIR)/$(BUILD)/llmgate node bench/soak.mjs $(SOAK_ARGS)

node-tests: build node_modules/.package-lock.json
	LLMGATE_BIN=$(CURDIR)/$(BUILD)/llmgate node --test tests/integration/*.test.mjs tests/clients/*.test.mjs

test:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory unit unit-asan node-tests-asan node-tests; status=$$?; \
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

# The suite under ThreadSanitizer (clang-14): unit and network tests, then the
# gateway's JavaScript tests against the TSan build; the first race report
# aborts the process, which fails its test. Not part of make test (slow).
TSAN_BUILD ?= build-tsan
TSAN_TESTS ?= tests/integration/proxy.test.mjs tests/integration/limits.test.mjs tests/integration/redis_limits.test.mjs tests/integration/resilience.test.mjs tests/integration/degrade.test.mjs tests/integration/faults.test.mjs tests/integration/hostile.test.mjs tests/integration/tls.test.mjs
$(TSAN_BUILD)/build.ninja:
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 -DLLMGATE_TSAN=ON

tsan: deps fuzz-deps $(TSAN_BUILD)/build.ninja node_modules/.package-lock.json
	ninja -C $(TSAN_BUILD) -j$(JOBS) unit_tests net_tests llmgate
	TSAN_OPTIONS="halt_on_error=1 abort_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/scripts/tsan.supp" ctest --test-dir $(TSAN_BUILD) --output-on-failure -j$(JOBS)
	TSAN_OPTIONS="halt_on_error=1 abort_on_error=1 suppressions=$(CURDIR)/scripts/tsan.supp" LLMGATE_BIN=$(CURDIR)/$(TSAN_BUILD)/llmgate LLMGATE_SANITIZED=1 LLMGATE_READY_TIMEOUT_MS=60000 \
	  node --test $(TSAN_TESTS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(TSAN_BUILD)
