#!/usr/bin/env bash
# System packages edgelearn needs beyond Python: espeak-ng (synthesizes the default corpus).
set -euo pipefail
command -v espeak-ng >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing espeak-ng with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install espeak-ng
else
  echo "espeak-ng is required (it synthesizes the default corpus): install it with your" >&2
  echo "package manager (e.g. 'dnf install espeak-ng'), or use real data (see README)." >&2
  exit 1
fi
