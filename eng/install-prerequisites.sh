#!/usr/bin/env bash
# Installs the native prerequisite of TorchSharp 0.107 on this machine, idempotently.
#
# TorchSharp 0.107's libLibTorchSharp.so is linked against the C++ runtime of GCC 13+ (symbol version
# GLIBCXX_3.4.32). Ubuntu 24.04, Debian 13 and Fedora 39+ ship it; Debian 12 (bookworm) ships GCC 12's
# libstdc++6, so TorchSharp fails there with "Unable to load ... libLibTorchSharp.so".
# The fix on Debian 12: take libstdc++6 alone from Debian 13 (trixie), with apt pinning so that nothing else
# is upgraded from trixie. The trixie suite uses the same mirror URI the machine's apt sources already use.
#
# Does nothing when GLIBCXX_3.4.32 is already present. Exits non-zero with an explanation on other systems.
set -euo pipefail

need="GLIBCXX_3.4.32"

have_symbol() {
  local lib
  for lib in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /usr/lib/libstdc++.so.6; do
    [ -e "$lib" ] || continue
    # grep -a scans the binary's version strings without needing binutils.
    if grep -aq "$need" "$lib"; then return 0; fi
  done
  return 1
}

if have_symbol; then
  echo "prerequisites: $need present, nothing to do."
  exit 0
fi

. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != "debian" ] || [ "${VERSION_ID:-}" != "12" ]; then
  cat >&2 <<MSG
prerequisites: this system's libstdc++ lacks $need, which TorchSharp 0.107 needs (the C++ runtime of GCC 13+).
This script only knows how to fix Debian 12. On ${PRETTY_NAME:-this system}, install a libstdc++6 from GCC 13 or
newer with your package manager (Ubuntu 24.04, Debian 13 and Fedora 39 already have it), then run again.
MSG
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Read the mirror URI the machine already uses for the main Debian archive (deb822 or one-line format).
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  mirror=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -e /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file|ftp):/) { print $i; exit } }' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
  echo "prerequisites: could not read a Debian mirror URI from /etc/apt/sources.list(.d); add trixie by hand." >&2
  exit 1
fi

echo "prerequisites: installing libstdc++6 from Debian 13 (trixie) via $mirror, pinned at priority 100."
$SUDO tee /etc/apt/sources.list.d/peft-trixie.sources >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
$SUDO tee /etc/apt/preferences.d/peft-trixie.pref >/dev/null <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t trixie libstdc++6 >/dev/null

if have_symbol; then
  echo "prerequisites: $need now present."
else
  echo "prerequisites: libstdc++6 from trixie installed but $need is still missing." >&2
  exit 1
fi
