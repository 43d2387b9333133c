#include "web/surface.h"

#include <set>

#include <fmt/format.h>

#include "web/web_config.h"

namespace netprobe::web {

Result<std::vector<http::Options>> server_options(const WebSettings& settings, const std::string& address,
                                                  int port) {
  std::vector<http::Options> out;
  auto add = [&](const std::string& host, int p) {
    http::Options o;
    o.address = host;
    o.port = p;
    if (settings.users) {
      o.authenticate = [users = settings.users](std::string_view user, std::string_view password) {
        return users->check(user, password);
      };
      o.authenticate_async = [users = settings.users](std::string_view user, std::string_view password,
                                                      std::function<void(http::AuthVerdict)> later) {
        return UserTable::check_async(users, user, password, std::move(later));
      };
    } else {
      o.auth = settings.env_auth;
    }
    o.tls = settings.tls;
    o.headers = settings.headers;
    if (const auto& live = settings.live) {
      o.auth.reset();
      o.authenticate = [live](std::string_view user, std::string_view password) {
        return live->authenticate(user, password);
      };
      o.authenticate_async = [live](std::string_view user, std::string_view password,
                                    std::function<void(http::AuthVerdict)> later) {
        return live->authenticate_async(user, password, std::move(later));
      };
      o.auth_active = [live] { return live->auth_active(); };
      o.headers_now = [live] { return live->headers(); };
    }
    out.push_back(std::move(o));
  };
  if (settings.listen_addresses.empty()) {
    add(address, port);
    return out;
  }
  std::set<std::string> seen;
  for (const auto& text : settings.listen_addresses) {
    const auto hp = http::parse_host_port(text);
    if (!hp)
      return Error{fmt::format(
          "--web.listen-address '{}': expected HOST:PORT with an IPv4 or IPv6 address (IPv6 in brackets: "
          "[::1]:9377) or :PORT for every address",
          text)};
    const auto listen = http::parse_listen_address(hp->address, hp->port);
    if (!seen.insert(listen->text).second)
      return Error{fmt::format("--web.listen-address {} is given twice", listen->text)};
    add(hp->address, hp->port);
  }
  return out;
}

Status load_web_config(const std::string& path, WebSettings& settings, std::string* warning) {
  auto config = read_web_config(path);
  if (!config.ok()) return Error{fmt::format("--web.config.file {}: {}", path, config.error().message)};
  if (config->tls) {
    auto tls = http::TlsContext::create(*config->tls);
    if (!tls.ok()) return Error{fmt::format("--web.config.file {}: {}", path, tls.error().message)};
    settings.tls = std::move(tls).value();
  }
  if (!config->users.empty()) {
    if (settings.env_auth && warning)
      *warning = fmt::format(
          "--web.config.file {} has basic_auth_users: they decide who may read /metrics, and "
          "PROM_USER/PROM_PASSWORD are ignored",
          path);
    settings.users = std::make_shared<UserTable>(std::move(config->users));
  }
  settings.headers = std::move(config->headers);
  settings.live = std::make_shared<LiveWebConfig>(path, settings.users, settings.headers, settings.tls,
                                                  settings.env_auth);
  return {};
}

std::string describe_listeners(const std::vector<http::Options>& options) {
  std::string out;
  for (const auto& o : options) {
    const auto listen = http::parse_listen_address(o.address, o.port);
    if (!out.empty()) out += ", ";
    out += listen ? listen->text : o.address;
  }
  return out;
}

}  // namespace netprobe::web
