#include "web/users.h"

#include <crypt.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <thread>

#include "http/auth.h"

namespace netprobe::web {
namespace {

// exporter-toolkit's dummy: bcrypt("fakepassword") at cost 10.
constexpr const char* kDummyHash = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

bool bcrypt_base64(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '/';
}

int cost_of(std::string_view hash) { return (hash[4] - '0') * 10 + (hash[5] - '0'); }

bool bcrypt_equal(const std::string& hash, const std::string& password) {
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on a thread's stack
  const char* out = crypt_rn(password.c_str(), hash.c_str(), data.get(), sizeof *data);
  return out && out[0] == '$' && constant_time_equal(out, hash);
}

// The process-wide bcrypt pool: threads started at the first check (never before a fork), never stopped (the
// supervisor leaves with _exit; a test process with exit, which does not join them).
class BcryptPool {
 public:
  static BcryptPool& instance() {
    static BcryptPool* pool = new BcryptPool();  // leaked on purpose: no destructor to join at exit
    return *pool;
  }
  // False when kBcryptQueue checks already wait.
  bool submit(std::function<void()> task) {
    const std::lock_guard lock(mutex_);
    if (queue_.size() >= kBcryptQueue) return false;
    if (threads_ == 0) {
      for (unsigned i = 0; i < kBcryptThreads; ++i) std::thread([this] { work(); }).detach();
      threads_ = kBcryptThreads;
    }
    queue_.push_back(std::move(task));
    wake_.notify_one();
    return true;
  }
  size_t load() {
    const std::lock_guard lock(mutex_);
    return queue_.size() + running_;
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      auto task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
      lock.unlock();
      try {
        task();
      } catch (...) {
        // A task only throws on allocation failure; its `done` is then never called and the Responder
        // behind it answers 500 when dropped.
      }
      task = nullptr;  // releases the table here, not under the lock
      lock.lock();
      --running_;
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  unsigned threads_ = 0;
  size_t running_ = 0;
};

}  // namespace

bool valid_bcrypt_hash(std::string_view hash, std::string* why) {
  auto fail = [&](const char* reason) {
    if (why) *why = reason;
    return false;
  };
  if (hash.size() < 7 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' ||
      (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y'))
    return fail(
        "not a bcrypt hash (it must start with $2a$, $2b$ or $2y$; make one with htpasswd -nBC 10 USER)");
  if (hash.size() != 60) return fail("a bcrypt hash is 60 characters long");
  if (hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9' || hash[6] != '$')
    return fail("the bcrypt cost must be two digits");
  const int cost = cost_of(hash);
  if (cost < 4 || cost > 31) return fail("the bcrypt cost must be between 04 and 31");
  if (!std::all_of(hash.begin() + 7, hash.end(), bcrypt_base64))
    return fail("the salt and hash of a bcrypt hash are 53 characters of [./A-Za-z0-9]");
  return true;
}

UserTable::UserTable(std::map<std::string, std::string> users) : dummy_hash_(kDummyHash) {
  int max_cost = 0;
  for (auto& [user, hash] : users) {
    max_cost = std::max(max_cost, cost_of(hash));
    hashes_.emplace(user, std::move(hash));
  }
  if (max_cost > cost_of(kDummyHash)) {
    // As slow as the slowest user: a hash of a random password at that cost.
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    auto data = std::make_unique<crypt_data>();
    if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(max_cost), nullptr, 0, salt, sizeof salt)) {
      const char* out = crypt_rn("unknown-user", salt, data.get(), sizeof *data);
      if (out && out[0] == '$') dummy_hash_ = out;
    }
  }
}

std::optional<bool> UserTable::bcrypt_matches(const std::string& hash, std::string_view password) {
  const std::string phrase(password);
  std::unique_lock lock(bcrypt_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return std::nullopt;
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on a server thread's stack
  const char* out = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), sizeof *data);
  return out && out[0] == '$' && constant_time_equal(out, hash);
}

std::optional<http::AuthVerdict> UserTable::quick_check(std::string_view user, std::string_view password) {
  const auto found = hashes_.find(user);
  if (found == hashes_.end() || password.find('\0') != std::string_view::npos) return std::nullopt;
  const std::lock_guard lock(cache_mutex_);
  const auto cached = verified_.find(user);
  if (cached != verified_.end() && constant_time_equal(cached->second, password))
    return http::AuthVerdict::kAllow;
  return std::nullopt;
}

http::AuthVerdict UserTable::slow_check(const std::string& user, const std::string& password) {
  // Always one bcrypt, whatever is wrong: the dummy for an unknown user or a password crypt cannot take.
  const auto found = hashes_.find(user);
  const bool has_nul = password.find('\0') != std::string::npos;
  const bool known = found != hashes_.end() && !has_nul;
  const bool ok = bcrypt_equal(known ? found->second : dummy_hash_, has_nul ? std::string() : password);
  if (!known || !ok) return http::AuthVerdict::kDeny;
  const std::lock_guard lock(cache_mutex_);
  verified_[found->first] = password;
  return http::AuthVerdict::kAllow;
}

std::optional<http::AuthVerdict> UserTable::check_async(std::shared_ptr<UserTable> table,
                                                        std::string_view user, std::string_view password,
                                                        std::function<void(http::AuthVerdict)> done) {
  if (auto quick = table->quick_check(user, password)) return quick;
  auto task = [table, user = std::string(user), password = std::string(password), done = std::move(done)] {
    done(table->slow_check(user, password));
  };
  if (!BcryptPool::instance().submit(std::move(task))) return http::AuthVerdict::kBusy;
  return std::nullopt;
}

size_t UserTable::bcrypt_pool_load() { return BcryptPool::instance().load(); }

http::AuthVerdict UserTable::check(std::string_view user, std::string_view password) {
  const auto found = hashes_.find(user);
  const bool has_nul = password.find('\0') != std::string_view::npos;
  if (found != hashes_.end() && !has_nul) {
    const std::lock_guard lock(cache_mutex_);
    const auto cached = verified_.find(user);
    if (cached != verified_.end() && constant_time_equal(cached->second, password))
      return http::AuthVerdict::kAllow;
  }
  // Always one bcrypt, whatever is wrong: the dummy for an unknown user or a password crypt cannot take.
  const bool known = found != hashes_.end() && !has_nul;
  const auto ok =
      bcrypt_matches(known ? found->second : dummy_hash_, has_nul ? std::string_view() : password);
  if (!ok) return http::AuthVerdict::kBusy;
  if (!known || !*ok) return http::AuthVerdict::kDeny;
  const std::lock_guard lock(cache_mutex_);
  verified_[found->first] = std::string(password);
  return http::AuthVerdict::kAllow;
}

}  // namespace netprobe::web
