# Thin wrapper around CMake. The real build lives in CMakeLists.txt.
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
CMAKE_FLAGS ?=

.PHONY: all deps demo test bench install clean fuzz soak valgrind docs format

all: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh build

# Builds only the demo program, quietly (the log is shown when something fails), and runs it:
# the output is the demo's transcript.
DEMO_LOG = $(BUILD)/demo-build.log
demo:
	@mkdir -p $(BUILD)
	@{ scripts/deps.sh build && \
	   cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) && \
	   cmake --build $(BUILD) -j $(JOBS) --target demo; } >$(DEMO_LOG) 2>&1 || \
	 { cat $(DEMO_LOG); echo "make demo: the build failed (log: $(DEMO_LOG))" >&2; exit 1; }
	@scripts/demo.sh $(BUILD)

# The whole suite once per TLS backend (sanitizer builds $(TEST_BUILD) for OpenSSL and
# $(TEST_BUILD)-mbedtls for mbed TLS; the mbed TLS build also runs the cross-backend test
# against the OpenSSL build's CLI), then a ~30 s smoke run of the fuzz targets (clang) on each
# backend. Everything runs even when something fails; the exit status says whether all passed.
test:
	@scripts/deps.sh test
	@status=0; \
	for b in openssl mbedtls; do \
	  dir=$(TEST_BUILD); peer=""; \
	  if [ $$b != openssl ]; then dir=$(TEST_BUILD)-$$b; peer="-DSEALNET_PEER_BUILD=$(CURDIR)/$(TEST_BUILD)"; fi; \
	  echo "== test suite on the $$b backend ($$dir)"; \
	  ( cmake -S . -B $$dir -DSEALNET_TLS_BACKEND=$$b -DCMAKE_BUILD_TYPE=Debug -DSEALNET_SANITIZE=ON -DSEALNET_BUILD_TESTS=ON \
	          -DSEALNET_WERROR=$${SEALNET_WERROR:-ON} -DSEALNET_BUILD_BENCH=ON $$peer $(CMAKE_FLAGS) && \
	    cmake --build $$dir -j $(JOBS) && \
	    cd $$dir && ctest --output-on-failure -j $(JOBS) --timeout 300 ) || status=1; \
	done; \
	scripts/fuzz.sh --smoke || status=1; \
	SEALNET_TLS_BACKEND=mbedtls scripts/fuzz.sh --smoke || status=1; \
	exit $$status

bench: all
	@scripts/bench.sh $(BUILD)

install: all
	cmake --install $(BUILD)

# Every fuzz target for FUZZ_SECONDS (default 60; 600 is the 10-minute run) or FUZZ_EXECS
# executions (default 10 M), whichever comes first, on every core (FUZZ_WORKERS), UBSan build,
# corpus replayed under ASan; FUZZ_SANITIZE=asan keeps ASan on.
fuzz:
	@scripts/deps.sh fuzz
	@scripts/fuzz.sh $${FUZZ_SECONDS:-60}

# Thousands of clients churning against a host server; SOAK_SECONDS (default 600) long.
soak: all
	@scripts/soak.sh $(BUILD)

valgrind: all
	@scripts/deps.sh valgrind
	@scripts/valgrind.sh $(BUILD)

docs:
	@scripts/deps.sh docs
	doxygen docs/Doxyfile

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(TEST_BUILD)-mbedtls build-fuzz build-fuzz-mbedtls build-fuzz-fast build-fuzz-fast-mbedtls build-bench-*
