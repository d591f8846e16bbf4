#!/usr/bin/env bash
# System packages the tests need, installed with apt-get only when missing:
# PostgreSQL's server (real PostgreSQL tests), Java 17 and Maven (the Kafka broker),
# Prometheus for its promtool (the metrics exposition is checked with it) and Chromium (the
# run report is opened in a headless browser).
set -euo pipefail
missing=()
if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "setup: PostgreSQL server found: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
else
  echo "setup: PostgreSQL server missing"
  missing+=(postgresql)
fi
if command -v java >/dev/null; then
  echo "setup: java found: $(java -version 2>&1 | head -n 1)"
else
  echo "setup: java missing"
  missing+=(openjdk-17-jre-headless)
fi
if command -v mvn >/dev/null; then
  echo "setup: maven found: $(mvn -v 2>/dev/null | head -n 1)"
else
  echo "setup: maven missing"
  missing+=(maven)
fi
if command -v promtool >/dev/null; then
  echo "setup: promtool found: $(promtool --version 2>&1 | head -n 1)"
else
  echo "setup: promtool missing"
  missing+=(prometheus)
fi
if command -v chromium >/dev/null; then
  echo "setup: chromium found: $(chromium --version 2>/dev/null | head -n 1)"
else
  echo "setup: chromium missing"
  missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The test servers run as an unprivileged user: PostgreSQL refuses to run as root.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "setup: creating the postgres system user"
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
