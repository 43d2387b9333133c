#pragma once
// The production Resolver: c-ares, driven by poll(2) on its sockets from the caller's loop, so that a
// slow or dead DNS server never blocks anything but the answer it owes.
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "dns/resolver.h"

struct ares_addrinfo;  // c-ares' own, global

namespace netprobe {

// Why a DNS answer cannot be a probing destination ("an unspecified (0.0.0.0/8)", "a multicast", "the
// broadcast", "the unspecified (::)"), or nullptr if it can. Such answers are dropped with a log line.
const char* unusable_answer(const IpAddress& ip);

struct CaresOptions {
  // Per try, and tries. c-ares doubles the timeout at each new round over the servers, so with one server
  // and 2 tries a dead server is reported after timeout + 2 * timeout (6 s with the defaults).
  // nullopt: resolv.conf's (then RES_OPTIONS') `options timeout:N attempts:N` when present, as glibc reads
  // them (c-ares 1.18 does not), else kDefaultTimeout / kDefaultTries (c-ares' own 5 s and 4 tries would
  // take 75 s to give up on a dead server).
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<int> tries;
  static constexpr std::chrono::milliseconds kDefaultTimeout{2000};
  static constexpr int kDefaultTries = 2;
  // "ip", "ip:port" or "[ipv6]:port" entries replacing resolv.conf's nameservers (tests: a server on
  // 127.0.0.1:<port>). Empty: the system's nameservers, as users expect.
  std::vector<std::string> servers;
  // Search list replacing resolv.conf's `search`/`domain` (empty vector = no search). nullopt: the system's.
  std::optional<std::vector<std::string>> search_domains;
  // Consult /etc/hosts before DNS, as getaddrinfo does. Tests turn it off to talk to their server only.
  bool use_hosts_file = true;
  // Another resolv.conf (empty: /etc/resolv.conf).
  std::string resolv_conf;
  // How often resolve() may look whether resolv.conf changed (stat: inode, size, mtime); on a change the
  // channel is rebuilt once no query is in flight, as glibc's resolver does: a prober runs for months
  // while DHCP or configuration management rewrite the file.
  std::chrono::milliseconds recheck_resolv_conf{1000};
};

class CaresResolver final : public Resolver {
 public:
  // Never throws: a channel that cannot be created (bad server string, no memory) is an Error.
  static Result<std::unique_ptr<CaresResolver>> create(const CaresOptions& options = {});
  ~CaresResolver() override;
  CaresResolver(const CaresResolver&) = delete;
  CaresResolver& operator=(const CaresResolver&) = delete;

  void resolve(const std::string& host, AddressFamily af, std::function<void(Resolution)> done) override;
  // Returns as soon as at least one callback ran, when nothing is in flight, or after max_wait.
  int poll(Nanos max_wait) override;
  size_t pending() const override { return in_flight_ + ready_.size(); }

  // The servers in use, "ip:port" ("[ip]:port" for IPv6), for logs.
  std::vector<std::string> servers() const;

  // The error text of a c-ares status, as Resolution::error spells it ("NXDOMAIN", "timeout", ...).
  static std::string error_text(int ares_status, AddressFamily af);

 private:
  struct Query;
  struct FileStamp {
    bool exists = false;
    uint64_t inode = 0, size = 0;
    int64_t mtime_ns = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  CaresResolver(void* channel, CaresOptions options, FileStamp stamp);
  static Result<void*> make_channel(const CaresOptions& options);
  static FileStamp stamp_of(const std::string& path);
  struct SystemOptions {
    std::optional<int> timeout_s, attempts;
  };
  static SystemOptions system_options(const std::string& path);
  static void on_addrinfo(void* arg, int status, int timeouts, ::ares_addrinfo* result);
  void maybe_reload_resolv_conf();
  int deliver_ready();

  void* channel_;  // ares_channel; kept opaque so that ares.h stays out of every includer
  CaresOptions options_;
  std::string resolv_conf_;
  FileStamp stamp_;
  Nanos last_check_{0};
  size_t in_flight_ = 0;
  // Answers wait here until poll(): c-ares may complete a query inside ares_getaddrinfo (an /etc/hosts
  // hit, a literal, a channel error) and the interface promises no callback from inside resolve().
  std::deque<std::pair<std::function<void(Resolution)>, Resolution>> ready_;
};

}  // namespace netprobe
