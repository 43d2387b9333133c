#include "dns/cares_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "core/sockaddr.h"

namespace netprobe {
namespace {

ares_channel as_channel(void* p) { return static_cast<ares_channel>(p); }

// ares_library_init is a no-op on Linux today, but the API requires it once per process before a channel.
bool library_ready() {
  static std::once_flag once;
  static int status = ARES_SUCCESS;
  std::call_once(once, [] { status = ares_library_init(ARES_LIB_INIT_ALL); });
  return status == ARES_SUCCESS;
}

Nanos steady_now() { return std::chrono::steady_clock::now().time_since_epoch(); }

timeval to_timeval(Nanos d) {
  if (d < Nanos(0)) d = Nanos(0);
  timeval tv{};
  tv.tv_sec = time_t(d.count() / 1'000'000'000);
  tv.tv_usec = suseconds_t((d.count() % 1'000'000'000) / 1000);
  return tv;
}

Nanos from_timeval(const timeval& tv) {
  return Nanos(int64_t(tv.tv_sec) * 1'000'000'000 + int64_t(tv.tv_usec) * 1000);
}

}  // namespace

struct CaresResolver::Query {
  CaresResolver* self;
  AddressFamily af;
  std::function<void(Resolution)> done;
  std::string host;
};

Result<void*> CaresResolver::make_channel(const CaresOptions& options) {
  if (!library_ready()) return Error{"c-ares: library initialisation failed"};
  ares_options opts{};
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  const auto system = system_options(options.resolv_conf.empty() ? "/etc/resolv.conf" : options.resolv_conf);
  const auto timeout = options.timeout    ? *options.timeout
                       : system.timeout_s ? std::chrono::milliseconds(*system.timeout_s * 1000)
                                          : CaresOptions::kDefaultTimeout;
  opts.timeout = int(std::max<int64_t>(1, timeout.count()));
  opts.tries =
      std::max(1, options.tries ? *options.tries : system.attempts.value_or(CaresOptions::kDefaultTries));
  // "fb" is getaddrinfo's order (files, then DNS); "b" talks to the DNS servers only.
  std::string lookups = options.use_hosts_file ? "fb" : "b";
  opts.lookups = lookups.data();
  mask |= ARES_OPT_LOOKUPS;
  std::vector<char*> domains;
  if (options.search_domains) {
    for (const auto& d : *options.search_domains) domains.push_back(const_cast<char*>(d.c_str()));
    opts.domains = domains.data();
    opts.ndomains = int(domains.size());
    mask |= ARES_OPT_DOMAINS;
  }
  if (!options.resolv_conf.empty()) {
    opts.resolvconf_path = const_cast<char*>(options.resolv_conf.c_str());
    mask |= ARES_OPT_RESOLVCONF;
  }
  ares_channel channel = nullptr;
  if (int rc = ares_init_options(&channel, &opts, mask); rc != ARES_SUCCESS)
    return Error{fmt::format("c-ares: cannot create a channel: {}", ares_strerror(rc))};
  if (!options.servers.empty()) {
    std::string csv;
    for (const auto& s : options.servers) csv += (csv.empty() ? "" : ",") + s;
    if (int rc = ares_set_servers_ports_csv(channel, csv.c_str()); rc != ARES_SUCCESS) {
      ares_destroy(channel);
      return Error{fmt::format("c-ares: invalid DNS servers '{}': {}", csv, ares_strerror(rc))};
    }
  }
  return static_cast<void*>(channel);
}

CaresResolver::FileStamp CaresResolver::stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {true, uint64_t(st.st_ino), uint64_t(st.st_size),
          int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

namespace {

// glibc's resolv.conf `options` words that c-ares 1.18 ignores; glibc's caps (RES_MAXRETRANS, RES_MAXRETRY).
void parse_resolver_options(std::istream& words, std::optional<int>& timeout_s,
                            std::optional<int>& attempts) {
  for (std::string word; words >> word;) {
    auto number = [&](size_t prefix, int cap) {
      return std::clamp(std::atoi(word.c_str() + prefix), 1, cap);
    };
    if (word.rfind("timeout:", 0) == 0) timeout_s = number(8, 30);
    if (word.rfind("attempts:", 0) == 0) attempts = number(9, 5);
  }
}

}  // namespace

CaresResolver::SystemOptions CaresResolver::system_options(const std::string& path) {
  SystemOptions out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string first;
    if (words >> first && first == "options") parse_resolver_options(words, out.timeout_s, out.attempts);
  }
  if (const char* env = std::getenv("RES_OPTIONS")) {  // overrides the file, as in glibc
    std::istringstream words(env);
    parse_resolver_options(words, out.timeout_s, out.attempts);
  }
  return out;
}

CaresResolver::CaresResolver(void* channel, CaresOptions options, FileStamp stamp)
    : channel_(channel),
      options_(std::move(options)),
      resolv_conf_(options_.resolv_conf.empty() ? "/etc/resolv.conf" : options_.resolv_conf),
      stamp_(stamp),
      last_check_(steady_now()) {}

Result<std::unique_ptr<CaresResolver>> CaresResolver::create(const CaresOptions& options) {
  // Stamped before reading: a change while the channel is built is seen at the next check.
  const FileStamp stamp = stamp_of(options.resolv_conf.empty() ? "/etc/resolv.conf" : options.resolv_conf);
  auto channel = make_channel(options);
  if (!channel.ok()) return channel.error();
  return std::unique_ptr<CaresResolver>(new CaresResolver(*channel, options, stamp));
}

void CaresResolver::maybe_reload_resolv_conf() {
  // Only between rounds of queries: destroying a channel with queries in flight would lose their answers.
  if (in_flight_ > 0) return;
  const Nanos now = steady_now();
  if (now - last_check_ < options_.recheck_resolv_conf) return;
  last_check_ = now;
  const FileStamp stamp = stamp_of(resolv_conf_);
  if (stamp == stamp_) return;
  auto channel = make_channel(options_);
  if (!channel.ok()) {
    spdlog::warn("{} changed but cannot be used ({}): keeping the previous DNS settings", resolv_conf_,
                 channel.error().message);
    stamp_ = stamp;  // not retried until it changes again
    return;
  }
  ares_destroy(as_channel(channel_));
  channel_ = *channel;
  stamp_ = stamp;
  auto list = servers();
  std::string joined;
  for (const auto& s : list) joined += (joined.empty() ? "" : ",") + s;
  spdlog::info("{} changed: DNS servers now {}", resolv_conf_, joined.empty() ? "none" : joined);
}

std::vector<std::string> CaresResolver::servers() const {
  std::vector<std::string> out;
  ares_addr_port_node* list = nullptr;
  if (ares_get_servers_ports(as_channel(channel_), &list) != ARES_SUCCESS) return out;
  for (auto* n = list; n; n = n->next) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(n->family, &n->addr, text, sizeof text);
    const int port = n->udp_port ? n->udp_port : 53;
    out.push_back(n->family == AF_INET6 ? fmt::format("[{}]:{}", text, port)
                                        : fmt::format("{}:{}", text, port));
  }
  ares_free_data(list);
  return out;
}

CaresResolver::~CaresResolver() {
  // Runs every outstanding callback with ARES_EDESTRUCTION; on_addrinfo frees the query without calling
  // its owner back, since the owner may already be gone.
  ares_destroy(as_channel(channel_));
}

std::string CaresResolver::error_text(int status, AddressFamily af) {
  switch (status) {
    case ARES_ENOTFOUND:
      return "NXDOMAIN";
    case ARES_ENODATA:
      return fmt::format("no {} address", to_string(af));
    case ARES_ETIMEOUT:
      return "timeout";
    case ARES_ESERVFAIL:
      return "SERVFAIL";
    case ARES_EREFUSED:
      return "REFUSED";
    case ARES_ECONNREFUSED:
      // c-ares 1.18 reports a SERVFAIL or REFUSED from every server, and unreachable servers, this way.
      return "no server answered (SERVFAIL, REFUSED or unreachable)";
    default:
      return ares_strerror(status);
  }
}

const char* unusable_answer(const IpAddress& ip) {
  const auto& b = ip.bytes;
  if (ip.af == AddressFamily::kV4) {
    if (b[0] == 0) return "an unspecified (0.0.0.0/8)";
    if (b[0] >= 224 && b[0] <= 239) return "a multicast";
    if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255) return "the broadcast";
    return nullptr;
  }
  if (b[0] == 0xff) return "a multicast";
  if (std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == 0; })) return "the unspecified (::)";
  return nullptr;
}

void CaresResolver::resolve(const std::string& host, AddressFamily af, std::function<void(Resolution)> done) {
  maybe_reload_resolv_conf();
  auto* q = new Query{this, af, std::move(done), host};
  ++in_flight_;
  ares_addrinfo_hints hints{};
  hints.ai_family = af == AddressFamily::kV4 ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_STREAM;  // one entry per address, as netprobify's getaddrinfo(proto=TCP)
  ares_getaddrinfo(as_channel(channel_), host.c_str(), nullptr, &hints, &CaresResolver::on_addrinfo, q);
}

void CaresResolver::on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  if (status == ARES_EDESTRUCTION) {
    if (result) ares_freeaddrinfo(result);
    return;
  }
  Resolution r;
  size_t unusable = 0;
  if (status == ARES_SUCCESS && result) {
    const int want = q->af == AddressFamily::kV4 ? AF_INET : AF_INET6;
    for (auto* n = result->nodes; n; n = n->ai_next) {
      if (n->ai_family != want) continue;
      const std::optional<IpAddress> address = from_sockaddr(n->ai_addr);
      if (!address) continue;
      const IpAddress& ip = *address;
      if (const char* why = unusable_answer(ip)) {
        // Probing it would send to ourselves or to a group: a wrong or hostile DNS answer.
        spdlog::warn("DNS: {} resolved to {}, {} address: ignored", q->host, ip.to_string(), why);
        ++unusable;
        continue;
      }
      if (std::find(r.addresses.begin(), r.addresses.end(), ip) == r.addresses.end())
        r.addresses.push_back(ip);
    }
    r.ok = !r.addresses.empty();
    if (!r.ok)
      r.error = unusable ? fmt::format("only unusable {} address(es) in the answer", to_string(q->af))
                         : error_text(ARES_ENODATA, q->af);
  } else {
    r.error = error_text(status, q->af);
  }
  if (result) ares_freeaddrinfo(result);
  CaresResolver* self = q->self;
  --self->in_flight_;
  self->ready_.emplace_back(std::move(q->done), std::move(r));
}

int CaresResolver::deliver_ready() {
  int ran = 0;
  // Swapped out first: a callback may start new queries, whose answers wait for the next round.
  auto batch = std::move(ready_);
  ready_.clear();
  for (auto& [done, resolution] : batch) {
    if (done) done(std::move(resolution));
    ++ran;
  }
  return ran;
}

int CaresResolver::poll(Nanos max_wait) {
  const Nanos deadline = steady_now() + std::max(max_wait, Nanos(0));
  int ran = deliver_ready();
  while (ran == 0 && in_flight_ > 0) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(as_channel(channel_), socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
      if (events) fds[n++] = pollfd{socks[i], events, 0};
    }
    // Wake for whichever comes first: our deadline or c-ares' next retry/timeout.
    timeval max_tv = to_timeval(deadline - steady_now());
    timeval tv{};
    const timeval* wait_tv = ares_timeout(as_channel(channel_), &max_tv, &tv);
    const Nanos wait = wait_tv ? from_timeval(*wait_tv) : from_timeval(max_tv);
    timespec ts{};
    ts.tv_sec = time_t(wait.count() / 1'000'000'000);
    ts.tv_nsec = long(wait.count() % 1'000'000'000);
    const int rc = ppoll(fds, n, &ts, nullptr);
    if (rc > 0) {
      for (nfds_t i = 0; i < n; ++i) {
        if (!fds[i].revents) continue;
        const bool readable = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
        const bool writable = fds[i].revents & POLLOUT;
        ares_process_fd(as_channel(channel_), readable ? fds[i].fd : ARES_SOCKET_BAD,
                        writable ? fds[i].fd : ARES_SOCKET_BAD);
      }
    } else if (rc == 0 || errno == EINTR) {
      ares_process_fd(as_channel(channel_), ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // retries and timeouts
    } else {
      break;  // a broken descriptor set would spin until the deadline; c-ares' timers still run next time
    }
    ran += deliver_ready();
    if (steady_now() >= deadline) break;
  }
  return ran;
}

}  // namespace netprobe
