# The two commands of the README: `make demo` and `make test`. Both set up what they need.
.PHONY: demo demo-kafka test test-unit setup bench clean

demo: setup
	.venv/bin/clearsim run scenarios/demo.toml --out out/demo

demo-kafka: setup
	bash tools/kafka/assemble.sh >/dev/null
	.venv/bin/clearsim run scenarios/demo.toml --kafka local --out out/demo-kafka

setup:
	bash tools/venv.sh

# Everything: unit, integration on a real Kafka broker and a real PostgreSQL server, e2e;
# then the package as a user installs it (a wheel in a clean virtualenv runs the demo).
test: setup
	bash tools/setup-system.sh
	bash tools/kafka/assemble.sh >/dev/null
	.venv/bin/python -m pytest
	bash tools/wheel-check.sh

# Fast: no broker, no database server.
test-unit: setup
	.venv/bin/python -m pytest tests/unit tests/e2e -m "not kafka and not postgres"

# Every benchmark in one run (the floor, the engine, end to end on both buses and both
# databases, scaling, the crash soak, the national month), about two hours on 2 cores: rewrites
# benchmarks/RESULTS.md and results.json. Options: make bench BENCH="--quick" (see
# benchmarks/run --help).
bench: setup
	.venv/bin/python benchmarks/run $(BENCH)

clean:
	rm -rf out .cache .pytest_cache
