#include "session/session.h"

#include <sysexits.h>
#include <unistd.h>

#include <climits>
#include <random>

#include "sandbox/confine.h"
#include "sandbox/privileges.h"

namespace netprobe {
namespace {

std::string self_path() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string("netprobe");
}

uint64_t random_secret() {
  std::random_device rd;
  return uint64_t(rd()) << 32 | rd();
}

}  // namespace

std::unique_ptr<Session> Session::open(const SessionOptions& options, ProbeIoError& error) {
  if (!ensure_net_raw()) {
    error = {EX_NOPERM, missing_net_raw_message(self_path())};
    return nullptr;
  }
  auto io = open_probe_io({options.types, KeySlice{}, options.capture_buffer_mib}, error);
  if (!io) return nullptr;
  // The worker's order: nothing has been read from the network yet, and from here on nothing needs a
  // capability (the open handles keep working).
  if (auto s = drop_all_capabilities(); !s.ok()) {
    error = {EX_NOPERM, "cannot drop capabilities: " + s.error().message};
    return nullptr;
  }
  // The supervisor's deny list (EPERM, never a kill): this process also resolves names and prints, as the
  // supervisor does. Installed before the engine's capture thread exists, so that every thread has it.
  Status confined = set_non_dumpable();
  if (confined.ok()) confined = install_seccomp(ProcessKind::kSupervisor);
  if (!confined.ok()) {
    error = {EX_NOPERM, confined.error().message};
    return nullptr;
  }
  return std::unique_ptr<Session>(new Session(std::move(io), random_secret()));
}

Session::Session(std::unique_ptr<ProbeIo> io, uint64_t secret)
    : own_clock_(std::make_unique<SystemClock>()),
      io_(std::move(io)),
      clock_(*own_clock_),
      source_(*io_->capture),
      warnings_(io_->warnings),
      engine_(clock_, *io_->sink, source_, secret, EngineOptions{}) {}

Session::Session(Clock& clock, PacketSink& sink, PacketSource& source, uint64_t secret, EngineOptions options)
    : clock_(clock), source_(source), engine_(clock_, sink, source_, secret, options) {}

Session::~Session() = default;

std::vector<IterationReport> Session::run(const Plan& plan, const IterationSettings& settings, int count,
                                          const ReportHandler& on_report,
                                          const ProbeEventHandler& on_probes) {
  std::vector<IterationReport> reports;
  std::vector<ProbeEvent> events;
  for (int i = 0; i < count && !engine_.stopped(); ++i) {
    const Nanos start = clock_.monotonic();
    IterationReport report = engine_.run_iteration(plan, settings, on_probes ? &events : nullptr);
    if (source_.failed()) break;
    if (engine_.stopped()) {
      if (on_probes) on_probes(i, events);  // what was sent before the stop still counts
      break;
    }
    report.duration_s = std::chrono::duration<double>(clock_.monotonic() - start).count();
    if (on_probes) on_probes(i, events);
    if (on_report) on_report(i, report);
    reports.push_back(std::move(report));
    if (i + 1 < count) clock_.sleep_until(start + Nanos(int64_t(settings.interval_s * 1e9)));
  }
  return reports;
}

void Session::stop() {
  engine_.stop();
  clock_.wake();
}

}  // namespace netprobe
