#!/usr/bin/env bash
# Assemble Apache Kafka's jars from Maven Central into a cache directory; prints that directory.
#   assemble.sh           the broker (pom.xml)                  into <cache>/kafka-<version>/libs
#   assemble.sh --tools   Kafka's own performance tools, ProducerPerformance and
#                         ConsumerPerformance (tools-pom.xml)    into <cache>/kafka-<version>/tools
# Idempotent: does nothing when the jars are already there. The tools' directory is stamped with
# the hash of tools-pom.xml, so a cache assembled before the tools (or from another tools-pom.xml)
# is noticed and the tools are assembled anew; the broker's directory is left as it is.
#   CLEARSIM_CACHE   where to put it (default: <repo>/.cache)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
what=broker
case "${1:-}" in
  "") ;;
  --tools) what=tools ;;
  *) echo "usage: $0 [--tools]" >&2; exit 2 ;;
esac
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache=${CLEARSIM_CACHE:-$here/../../.cache}
mkdir -p "$cache" && cache=$(cd "$cache" && pwd)
if [ "$what" = broker ]; then
  pom="$here/pom.xml" libs="$cache/kafka-$version/libs" stamp="" expect="kafka_2.13-$version.jar"
else
  pom="$here/tools-pom.xml" libs="$cache/kafka-$version/tools"
  stamp=$(sha256sum "$pom" | cut -d' ' -f1) expect="kafka-tools-$version.jar"
fi
if [ -f "$libs/.complete" ] && [ "$(cat "$libs/.complete")" = "$stamp" ]; then
  echo "kafka: $what $version assembled in $libs" >&2
  echo "$libs"
  exit 0
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "kafka: $tool is not installed (tools/setup-system.sh installs it)" >&2; exit 1; }
done
echo "kafka: assembling Apache Kafka $version ($what) from Maven Central into $libs" >&2
# Into a fresh directory first, moved into place when complete: a half-copied or stale set of
# jars is never on anyone's class path.
mkdir -p "$cache/kafka-$version"
work=$(mktemp -d "$libs.XXXXXX")
trap 'rm -rf "$work"' EXIT
log="$cache/kafka-$version/mvn-$what.log"
if ! mvn -B -q -f "$pom" dependency:copy-dependencies -Dkafka.version="$version" \
      -DoutputDirectory="$work" -DincludeScope=runtime >"$log" 2>&1; then
  echo "kafka: mvn failed; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
ls "$work/$expect" >/dev/null
printf '%s' "$stamp" >"$work/.complete"
rm -rf "$libs"
# Another assembler may have put its own copy in place meanwhile: that one is as good.
mv -T "$work" "$libs" 2>/dev/null || { [ -f "$libs/.complete" ] && [ "$(cat "$libs/.complete")" = "$stamp" ]; }
echo "kafka: $(ls "$libs" | wc -l) jars in $libs" >&2
echo "$libs"
