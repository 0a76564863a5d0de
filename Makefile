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

# Sanitizer build, every CTest test, then a ~24 s smoke run of the fuzz targets (clang).
test:
	@scripts/deps.sh test
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSEALNET_SANITIZE=ON -DSEALNET_BUILD_TESTS=ON \
	      -DSEALNET_WERROR=$${SEALNET_WERROR:-ON} -DSEALNET_BUILD_BENCH=ON $(CMAKE_FLAGS)
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300
	@scripts/fuzz.sh --smoke

bench: all
	@scripts/bench.sh $(BUILD)

install: all
	cmake --install $(BUILD)

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
	rm -rf $(BUILD) $(TEST_BUILD) build-fuzz
