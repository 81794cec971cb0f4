# zinc -- a zinx-style TCP server framework in C, taught in ten stages.
#
#   make                          build common/, every stage, the client
#                                 library and build/zc (client/)
#   make demo [STAGE=v0.3]        run a stage's demo server and client
#   make test [STAGE=v0.3]        check the docs, then run the black-box
#                                 suite (all built stages)
#   make docs-check               the docs against the code: excerpts, names,
#                                 links, "as in" claims, chapter navigation
#                                 and length
#   make diff FROM=v0.2 TO=v0.3   show what a lesson changes
#   make bench [QUICK=1]          measure v0.5 on against a reference server
#                                 (BENCH_CONNS="1 100 1000", BENCH_MANY=5000
#                                 by default; BENCH_WORKERS="0 1 2 ncpu")
#   make SAN=address,undefined    build (and test) with ASan + UBSan
#   make SAN=thread               build (and test) with ThreadSanitizer
#   make test STAGE=v1.1 POLLER=poll   v1.1 with poll() instead of epoll
#   make test VALGRIND=1          run every server under valgrind
#   make compile_commands.json    for clangd and other editors' tooling
#   make clean

MAKEFLAGS += --no-print-directory

STAGES := $(shell ls -d v[0-9]*.[0-9]* 2>/dev/null | sort -V)
LATEST := $(lastword $(STAGES))
STAGE  ?=
SAN    ?=
BUILD  := $(or $(STAGE),$(STAGES))

# `make diff TO=v0.3` compares with the stage before it.
TO     ?= $(LATEST)
FROM   ?= $(shell printf '%s\n' $(STAGES) | sed -n '/^$(TO)$$/q;p' | tail -n 1)

all: common $(BUILD) bench-tools client

common:
	$(MAKE) -C common SAN=$(SAN)

$(STAGES):
	$(MAKE) -C $@ SAN=$(SAN)

# The load generator and the reference server (bench/), also used by the
# smoke tests.
bench-tools:
	$(MAKE) -C bench SAN=$(SAN)

# The client library and zc (client/), with zc copied to build/zc.
client:
	$(MAKE) -C client SAN=$(SAN)
	@mkdir -p build && cp client/build/zc build/zc

# A benchmark, not a test: it measures a plain build (no SAN=), and its
# numbers mean something only next to each other, from one run. QUICK=1,
# BENCH_CONNS="1 100 5000", BENCH_MANY="5000 10000", BENCH_WORKERS="0 1 2
# 10 ncpu" (v1.1's WorkerPoolSize sweep) and BENCH_EXTRA="name=path ..."
# become bench/run.py's options (python3 bench/run.py --help).
BENCH_OPTS = $(if $(filter-out 0,$(QUICK)),--quick) \
	$(if $(BENCH_CONNS),--conns $(BENCH_CONNS)) \
	$(if $(BENCH_MANY),--many $(BENCH_MANY)) \
	$(if $(BENCH_WORKERS),--workers $(BENCH_WORKERS)) \
	$(foreach e,$(BENCH_EXTRA),--extra '$(e)')

bench: common $(STAGES) bench-tools
	@test -z "$(SAN)" || { echo "make bench: measure a plain build"; exit 2; }
	python3 bench/run.py $(strip $(BENCH_OPTS))

# The documents against the code, in a second, before anything is built
# (tools/docs_check.py says what it checks); `make test` runs it first.
docs-check:
	python3 tools/docs_check.py

test: docs-check all
	@tools/need-pytest.sh
	ZN_VALGRIND=$(VALGRIND) pytest tests $(if $(STAGE),--stage $(STAGE))

demo: common $(or $(STAGE),$(LATEST))
	@tools/demo.sh $(or $(STAGE),$(LATEST))

diff:
	@test -d "$(FROM)" && test -d "$(TO)" || \
		{ echo "usage: make diff FROM=v0.2 TO=v0.3"; exit 2; }
	@diff -ruN -x build $(FROM) $(TO); test $$? -le 1

compile_commands.json:
	tools/compile_commands.sh $(STAGES) > $@

clean:
	$(MAKE) -C common clean
	$(MAKE) -C bench clean
	$(MAKE) -C client clean
	rm -rf build
	for s in $(STAGES); do $(MAKE) -C $$s clean; done
	rm -f compile_commands.json

.PHONY: all common $(STAGES) bench-tools client bench docs-check test demo \
	diff clean compile_commands.json
