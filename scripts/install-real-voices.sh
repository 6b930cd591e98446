#!/usr/bin/env bash
# The Debian packages whose recordings of real human speech make the real-voice test set
# (components/data/real_voices.py): alsa-utils (the channel names), neverball-common (the game's
# announcer), pocketsphinx-testdata (CMU Sphinx's test recordings and five LibriVox sentences),
# and vorbis-tools (oggdec, which decodes Neverball's Ogg Vorbis clips). About 20 MB to download.
# Idempotent: installs only what is missing, and nothing when everything is there.
set -euo pipefail
DEBIAN_PACKAGES=(alsa-utils neverball-common pocketsphinx-testdata vorbis-tools)

if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && exit 0
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing ${missing[*]} with apt-get (real voices for the real-voice test set)"
  log="$(mktemp)"
  { $SUDO apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >"$log" 2>&1 \
    || { cat "$log"; echo "installing ${missing[*]} failed (above)" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
  exit 0
fi

{
  echo "the real-voice test set reads recordings that the Debian/Ubuntu packages"
  echo "${DEBIAN_PACKAGES[*]} install under /usr/share; without apt-get, install them (or copy"
  echo "their files to the same paths) yourself: components/data/real_voices.py lists each file."
} >&2
exit 1
