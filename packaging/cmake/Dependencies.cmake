# Finds every third-party dependency (all from Debian 12 packages, see packaging/install-deps.sh).
# Libraries that ship a CMake config are found with find_package; the pkg-config-only ones
# (libpcap, libtins, libcap, libseccomp, c-ares, libyaml, RE2, libmicrohttpd) are wrapped as imported targets
# netprobe::<name>.
find_package(PkgConfig REQUIRED)

function(netprobe_pkg_target name module)
  pkg_check_modules(${name} REQUIRED IMPORTED_TARGET GLOBAL ${module})
  add_library(netprobe::${name} ALIAS PkgConfig::${name})
endfunction()

netprobe_pkg_target(pcap libpcap)
netprobe_pkg_target(tins libtins)
netprobe_pkg_target(cap libcap)
netprobe_pkg_target(seccomp libseccomp)  # per-process system call deny lists (src/sandbox/confine.h)
netprobe_pkg_target(cares libcares)
netprobe_pkg_target(yaml yaml-0.1)  # libyaml: the only YAML parser of untrusted text
netprobe_pkg_target(re2 re2)        # RE2: schema patterns in linear time, without recursion
netprobe_pkg_target(microhttpd libmicrohttpd)  # the HTTP server of src/http (docs/http-server.md)
netprobe_pkg_target(gnutls gnutls)             # its TLS (src/http/tls.h)
netprobe_pkg_target(crypt libcrypt)            # bcrypt for basic_auth_users (src/web/users.h)

find_package(Threads REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)

if(NETPROBE_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
  find_package(valijson CONFIG REQUIRED)
endif()
if(NETPROBE_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()
