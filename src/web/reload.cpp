#include "web/reload.h"

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <ctime>

#include <fmt/format.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include "web/web_config.h"

namespace netprobe::web {

LiveWebConfig::LiveWebConfig(std::string path, std::shared_ptr<UserTable> users,
                             std::vector<std::pair<std::string, std::string>> headers,
                             std::shared_ptr<http::TlsContext> tls, std::optional<BasicAuth> env_auth)
    : path_(std::move(path)), env_auth_(std::move(env_auth)), tls_(std::move(tls)) {
  state_ = std::make_shared<const State>(State{std::move(users), std::move(headers)});
  if (tls_) client_ca_ = tls_->settings().client_ca_file;
  seen_ = fingerprint();
}

std::string LiveWebConfig::fingerprint() const {
  std::string out;
  for (const std::string* file : {&path_, &client_ca_}) {
    struct stat st {};
    if (file->empty()) continue;
    if (::stat(file->c_str(), &st) != 0) {
      out += "missing;";
      continue;
    }
    out += fmt::format("{}.{}/{}/{}/{};", st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size, st.st_ino,
                       st.st_dev);
  }
  return out;
}

LiveWebConfig::Outcome LiveWebConfig::check(std::string* message) {
  const std::string now = fingerprint();
  if (now == seen_) return Outcome::kUnchanged;
  seen_ = now;
  auto fail = [&](const std::string& why) {
    const std::lock_guard lock(mutex_);
    ok_ = false;
    if (message)
      *message = fmt::format(
          "--web.config.file {} changed but cannot be used: {}; the previous web "
          "configuration stays in force",
          path_, why);
    return Outcome::kFailed;
  };
  auto config = read_web_config(path_);
  if (!config.ok()) return fail(config.error().message);
  if (config->tls.has_value() != static_cast<bool>(tls_))
    return fail(tls_ ? "it turns TLS off, which needs a restart (the listening sockets serve HTTPS)"
                     : "it turns TLS on, which needs a restart (the listening sockets serve plain HTTP)");
  // Everything that can fail first (the users cannot): the TLS context takes all of its files or none.
  if (config->tls) {
    const std::string ca = config->tls->client_ca_file;
    if (Status s = tls_->reload(*config->tls); !s.ok()) return fail(s.error().message);
    client_ca_ = ca;
    seen_ = fingerprint();  // now watching the new client CA bundle
  }
  auto users = config->users.empty() ? nullptr : std::make_shared<UserTable>(std::move(config->users));
  if (message) {
    message->clear();
    if (users && env_auth_)
      *message = fmt::format(
          "--web.config.file {} has basic_auth_users: they decide who may read /metrics, and "
          "PROM_USER/PROM_PASSWORD are ignored",
          path_);
  }
  const std::lock_guard lock(mutex_);
  state_ = std::make_shared<const State>(State{std::move(users), std::move(config->headers)});
  ok_ = true;
  return Outcome::kReloaded;
}

bool LiveWebConfig::last_ok() const {
  const std::lock_guard lock(mutex_);
  return ok_;
}

std::shared_ptr<const LiveWebConfig::State> LiveWebConfig::state() const {
  const std::lock_guard lock(mutex_);
  return state_;
}

bool LiveWebConfig::auth_active() const { return state()->users || env_auth_; }

http::AuthVerdict LiveWebConfig::authenticate(std::string_view user, std::string_view password) const {
  const auto current = state();
  if (current->users) return current->users->check(user, password);
  if (!env_auth_) return http::AuthVerdict::kAllow;
  // Both comparisons always run (bitwise &), so timing does not tell which of the two was wrong.
  const bool user_ok = constant_time_equal(user, env_auth_->user);
  const bool password_ok = constant_time_equal(password, env_auth_->password);
  return (user_ok & password_ok) ? http::AuthVerdict::kAllow : http::AuthVerdict::kDeny;
}

std::optional<http::AuthVerdict> LiveWebConfig::authenticate_async(
    std::string_view user, std::string_view password, std::function<void(http::AuthVerdict)> later) const {
  const auto current = state();
  if (current->users) return UserTable::check_async(current->users, user, password, std::move(later));
  return authenticate(user, password);  // PROM_USER/PROM_PASSWORD or none: no bcrypt
}

std::vector<std::pair<std::string, std::string>> LiveWebConfig::headers() const { return state()->headers; }

struct WebConfigWatcher::Shared {
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
};

WebConfigWatcher::WebConfigWatcher(std::shared_ptr<LiveWebConfig> live, prometheus::Registry& registry,
                                   const std::string& probe_name, unsigned period_ms)
    : shared_(std::make_shared<Shared>()) {
  const prometheus::Labels labels{{"probe_name", probe_name}};
  auto& ok = prometheus::BuildGauge()
                 .Name("netprobe_web_config_last_reload_successful")
                 .Help(
                     "Whether the last change of --web.config.file was put in force (0: the previous "
                     "web configuration is still used)")
                 .Register(registry)
                 .Add(labels);
  auto& when = prometheus::BuildGauge()
                   .Name("netprobe_web_config_last_reload_success_timestamp_seconds")
                   .Help("When --web.config.file was last read successfully (Unix time)")
                   .Register(registry)
                   .Add(labels);
  ok.Set(1);
  when.Set(static_cast<double>(std::time(nullptr)));
  thread_ = std::thread([shared = shared_, live = std::move(live), &ok, &when, period_ms] {
    std::unique_lock lock(shared->mutex);
    while (!shared->wake.wait_for(lock, std::chrono::milliseconds(period_ms), [&] { return shared->stop; })) {
      lock.unlock();
      std::string message;
      switch (live->check(&message)) {
        case LiveWebConfig::Outcome::kUnchanged:
          break;
        case LiveWebConfig::Outcome::kReloaded:
          spdlog::info("--web.config.file changed: users, headers and TLS settings reloaded");
          if (!message.empty()) spdlog::warn("{}", message);
          ok.Set(1);
          when.Set(static_cast<double>(std::time(nullptr)));
          break;
        case LiveWebConfig::Outcome::kFailed:
          spdlog::error("{}", message);
          ok.Set(0);
          break;
      }
      lock.lock();
    }
  });
}

WebConfigWatcher::~WebConfigWatcher() {
  {
    const std::lock_guard lock(shared_->mutex);
    shared_->stop = true;
  }
  shared_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace netprobe::web
