# Sourced by the scripts: installs what is missing and builds.
# Debian packages the project needs to build, test and plot.
MINIRLHF_PACKAGES="gcc make cmake pkg-config libopenblas-openmp-dev libcmocka-dev \
libutf8proc-dev libcjson-dev zlib1g-dev gnuplot-nox bsdextrautils"

# Installs the packages that are not installed yet (needs root and apt-get).
ensure_packages() {
  local missing=""
  for p in $MINIRLHF_PACKAGES "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing Debian packages:$missing — install them (as root: apt-get install$missing)" >&2
    return 1
  fi
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# build_project DIR [cmake args...]: configure (once) and build into DIR.
build_project() {
  local dir="$1"; shift
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)" 2>&1 | grep -vE '^\[ *[0-9]+%\]|^Consolidate|^-- ' || true
  # grep above hides progress chatter; the build's own status decides.
  cmake --build "$dir" -j "$(nproc)" >/dev/null
}

# Prints the folder of the executables: $MINIRLHF_BIN when set (tests run the
# scripts against the build under test), otherwise build/bin after installing
# and building. Build output goes to stderr so that stdout is only the path.
use_or_build_binaries() {
  if [ -n "${MINIRLHF_BIN:-}" ]; then echo "$MINIRLHF_BIN"; return 0; fi
  ensure_packages >&2
  build_project "$ROOT/build" >&2
  echo "$ROOT/build/bin"
}

# plot KIND ARGS...: draws the PNGs of scripts/plot.gp (see there for KIND and
# ARGS). The arguments are data to gnuplot, never code: any path works.
plot() {
  gnuplot -c "$ROOT/scripts/plot.gp" "$@"
}
