#!/usr/bin/env bash
# Installs librdkafka >= 2.1 (with its mock cluster) into /usr/local, built from Debian trixie's source
# package. Needed because Confluent.Kafka 2.x calls functions that Debian 12's librdkafka 2.0.2 lacks, and
# the NuGet package with the native library (librdkafka.redist) is not available on this build machine.
# On an ordinary machine you do not need this: Confluent.Kafka brings librdkafka.redist from nuget.org.
#
#   sudo bash scripts/install-librdkafka.sh        (idempotent; prints the installed version)
set -euo pipefail

PREFIX=/usr/local
LIB="$PREFIX/lib/librdkafka.so.1"
MIRROR="${DEBIAN_MIRROR:-}"

has_symbols() {
  # (grep -c, not -q: an early exit of grep would kill nm with SIGPIPE and fail the pipeline)
  [ -f "$LIB" ] || return 1
  local symbols
  symbols=$(nm -D "$LIB" 2>/dev/null | grep -cE ' T (rd_kafka_topic_partition_get_leader_epoch|rd_kafka_mock_cluster_new)$' || true)
  [ "$symbols" = 2 ]
}

if has_symbols; then
  echo "librdkafka already installed: $LIB"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

# The Debian mirror apt is already configured with (deb822 .sources or a classic sources.list).
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
fi
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" > "$WORK/sources.list"
APT_OPTS=(-o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache" -o APT::Sandbox::User=root)

echo "Fetching librdkafka source from $MIRROR (trixie)..."
apt-get "${APT_OPTS[@]}" update -qq
(cd "$WORK/src" && apt-get "${APT_OPTS[@]}" source --download-only librdkafka -qq)
ORIG=$(ls "$WORK"/src/librdkafka_*.orig.tar.* | head -n1)
tar -xf "$ORIG" -C "$WORK/src"
DIR=$(find "$WORK/src" -maxdepth 1 -mindepth 1 -type d -name 'librdkafka*' | head -n1)

echo "Building $(basename "$DIR")..."
(cd "$DIR" && ./configure --prefix="$PREFIX" --disable-ssl --disable-gssapi --disable-curl \
    --disable-zstd --disable-lz4-ext --disable-zlib >/dev/null \
  && make -j"$(nproc)" -C src librdkafka.so.1 >/dev/null)

$SUDO install -m 0755 "$DIR/src/librdkafka.so.1" "$LIB"
$SUDO ln -sf librdkafka.so.1 "$PREFIX/lib/librdkafka.so"
$SUDO install -d "$PREFIX/include/librdkafka"
$SUDO install -m 0644 "$DIR/src/rdkafka.h" "$DIR/src/rdkafka_mock.h" "$PREFIX/include/librdkafka/"
$SUDO ldconfig

has_symbols || { echo "librdkafka was built but lacks the expected symbols" >&2; exit 1; }
echo "Installed $LIB ($(basename "$DIR"))."
