#!/usr/bin/env bash
# Assemble the Apache Kafka broker's jars from Maven Central into a cache directory.
# Idempotent: does nothing when the jars are already there. Prints the libs directory.
#   CLEARSIM_CACHE   where to put it (default: <repo>/.cache)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache=${CLEARSIM_CACHE:-$here/../../.cache}
mkdir -p "$cache" && cache=$(cd "$cache" && pwd)
libs="$cache/kafka-$version/libs"
if [ -f "$libs/.complete" ]; then
  echo "kafka: $version assembled in $libs" >&2
  echo "$libs"
  exit 0
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "kafka: $tool is not installed (tools/setup-system.sh installs it)" >&2; exit 1; }
done
echo "kafka: assembling Apache Kafka $version from Maven Central into $libs" >&2
mkdir -p "$libs"
log="$cache/kafka-$version/mvn.log"
if ! mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime >"$log" 2>&1; then
  echo "kafka: mvn failed; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
ls "$libs"/kafka_2.13-"$version".jar >/dev/null
touch "$libs/.complete"
echo "kafka: $(ls "$libs" | wc -l) jars in $libs" >&2
echo "$libs"
