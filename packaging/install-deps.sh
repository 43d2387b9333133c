#!/usr/bin/env bash
# Installs every build, run and test dependency of netprobe from Debian 12 packages.
# Idempotent: does nothing (and needs no network) when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ccache
  # CI: the format check and the libFuzzer targets (clang with its sanitizer and fuzzer runtimes)
  clang-format clang libclang-rt-14-dev
  libpcap-dev libtins-dev prometheus-cpp-dev zlib1g-dev libyaml-dev libre2-dev libcap-dev libc-ares-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libvalijson-dev libmicrohttpd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libseccomp-dev  # per-process system call deny lists (src/sandbox/confine.h)
  libboost-dev    # Boost.Math (header-only): the binomial tail of the per-path loss test (src/paths)
  libgnutls28-dev libcrypt-dev  # HTTPS of /metrics (libmicrohttpd's GnuTLS) and bcrypt users (src/web)
  # run-time and test tools: namespaces, loss injection, a real Prometheus, DNS, curl, ping, capabilities;
  # iptables: integration.firewall checks convert-fw's output with iptables-restore --test
  iproute2 nftables iptables prometheus dnsmasq-base curl iputils-ping libcap2-bin python3 procps
  jsonnet  # mixin/: the dashboards are generated from jsonnet (their lint test checks they are up to date)
  openssl  # integration.web.*: certificates made by the tests
  python3-prometheus-client  # integration.web.formats: its OpenMetrics parser checks ours
  chromium  # integration.web.status_page: renders the status page headless (screenshot, text)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
