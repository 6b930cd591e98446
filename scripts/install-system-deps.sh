#!/usr/bin/env bash
# System packages edgelearn needs beyond Python: the speech engines that synthesize the default
# corpus (components/data/engines.py): espeak-ng, flite, and Festival with three festvox voices.
# Idempotent: installs only what is missing, and nothing when everything is there.
set -euo pipefail
DEBIAN_PACKAGES=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)
FESTIVAL_VOICES=(kal_diphone ked_diphone cmu_us_slt_arctic_hts)

if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && exit 0
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing ${missing[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi

# Elsewhere: check the commands and Festival's voices, install what brew has, name the rest.
festival_voices_missing() {
  command -v festival >/dev/null 2>&1 || return 0
  local listed
  listed=$(echo '(print (voice.list))' | festival --pipe 2>/dev/null || true)
  for voice in "${FESTIVAL_VOICES[@]}"; do
    [[ " ${listed//[()]/ } " == *" $voice "* ]] || return 0
  done
  return 1
}
need=()
for exe in espeak-ng flite; do command -v "$exe" >/dev/null 2>&1 || need+=("$exe"); done
if [ "${#need[@]}" -gt 0 ] && command -v brew >/dev/null 2>&1; then
  brew install "${need[@]}"
  need=()
fi
festival_voices_missing && need+=("festival with the voices ${FESTIVAL_VOICES[*]}")
[ "${#need[@]}" -eq 0 ] && exit 0
{
  list=$(printf '%s, ' "${need[@]}")
  echo "missing: ${list%, }."
  echo "The default corpus is spoken by espeak-ng, flite and Festival; on Debian/Ubuntu they are"
  echo "the packages ${DEBIAN_PACKAGES[*]}."
  echo "Install them with your package manager (e.g. 'dnf install espeak-ng flite festival'"
  echo "plus Festival's kal_diphone, ked_diphone and cmu_us_slt_arctic_hts voices), or use real"
  echo "data only (see README)."
} >&2
exit 1
