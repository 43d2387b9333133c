// The sandbox (src/sandbox): which user netprobe runs as, and what each process kind's confinement lets
// it do. Confinement is irreversible, so every such test applies it in a forked child and reads the
// child's verdict from its exit status (0 = every check passed, else the number of the failed check)
// or its death signal (SIGSYS: killed by a seccomp rule). Tests that need root skip without it.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "sandbox/confine.h"
#include "sandbox/privileges.h"
#include "sandbox/user.h"

namespace netprobe {
namespace {

// ---------------------------------------------------------------------------------------------------
// choose_user: table-driven over a fake user database

const std::map<std::string, RunAs> kUsers = {
    {"root", {"root", 0, 0}},
    {"toor", {"toor", 0, 0}},
    {"netprobe", {"netprobe", 990, 990}},
    {"nobody", {"nobody", 65534, 65534}},
    {"alice", {"alice", 1000, 1000}},
    {"wheelie", {"wheelie", 1001, 0}},
};

UserLookup fake_lookup(std::set<std::string> present) {
  return [present](const std::string& name) -> std::optional<RunAs> {
    if (!present.count(name)) return std::nullopt;
    return kUsers.at(name);
  };
}

TEST(sandbox_ChooseUser, Table) {
  const std::set<std::string> all = {"root", "toor", "netprobe", "nobody", "alice", "wheelie"};
  const std::set<std::string> no_netprobe = {"root", "nobody", "alice"};
  struct Row {
    const char* what;
    std::optional<std::string> requested;
    uid_t euid;
    std::set<std::string> users;
    int exit_code;
    std::optional<std::string> switch_to;  // user name, when a switch is expected
    const char* message_part;
  };
  const Row rows[] = {
      {"root, default, netprobe exists", std::nullopt, 0, all, 0, "netprobe", "switching to user netprobe"},
      {"root, default, no netprobe user", std::nullopt, 0, no_netprobe, 0, "nobody", "user nobody"},
      {"root, default, neither", std::nullopt, 0, {"root"}, EX_USAGE, std::nullopt, "neither"},
      {"root, --user alice", "alice", 0, all, 0, "alice", "uid 1000"},
      {"--user root refused", "root", 0, all, EX_USAGE, std::nullopt, "refusing to run as root"},
      {"a uid 0 alias refused", "toor", 0, all, EX_USAGE, std::nullopt, "refusing to run as root"},
      {"primary group 0 refused", "wheelie", 0, all, EX_USAGE, std::nullopt, "gid 0"},
      {"unknown user", "nosuchuser", 0, all, EX_USAGE, std::nullopt, "no such user"},
      {"empty name", "", 0, all, EX_USAGE, std::nullopt, "needs a user name"},
      {"--user root refused when not root either", "root", 1000, all, EX_USAGE, std::nullopt, "root"},
      {"unknown refused when not root either", "nosuchuser", 1000, all, EX_USAGE, std::nullopt, "no such"},
      {"not root, default: stays", std::nullopt, 1000, all, 0, std::nullopt, "uid 1000"},
      {"not root, --user self: stays", "alice", 1000, all, 0, std::nullopt, "running as alice"},
      {"not root, another user", "nobody", 1000, all, EX_NOPERM, std::nullopt, "only root may switch"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.what);
    const UserChoice c = choose_user(r.requested, r.euid, fake_lookup(r.users));
    EXPECT_EQ(c.exit_code, r.exit_code) << c.message;
    EXPECT_EQ(c.user ? std::optional<std::string>(c.user->name) : std::nullopt, r.switch_to);
    EXPECT_NE(c.message.find(r.message_part), std::string::npos) << c.message;
  }
}

TEST(sandbox_ChooseUser, SystemLookup) {
  const auto root = lookup_system_user("root");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->uid, 0u);
  EXPECT_FALSE(lookup_system_user("no-such-user-netprobe-test"));
  EXPECT_FALSE(lookup_system_user(""));
  EXPECT_FALSE(lookup_system_user(std::string(100000, 'a')));
}

// ---------------------------------------------------------------------------------------------------
// Deny lists

std::map<std::string, DenyAction> rules_of(const std::vector<DeniedSyscall>& list) {
  std::map<std::string, DenyAction> out;
  for (const auto& r : list) out[r.name] = r.action;
  return out;
}

TEST(sandbox_DenyList, EveryNameIsASystemCallAndSaysWhy) {
  for (auto kind : {ProcessKind::kSupervisor, ProcessKind::kLauncher, ProcessKind::kWorker}) {
    for (const auto& r : seccomp_deny_list(kind)) {
      SCOPED_TRACE(r.name);
      EXPECT_NE(seccomp_syscall_resolve_name(r.name.c_str()), __NR_SCMP_ERROR);
      EXPECT_FALSE(r.why.empty());
    }
  }
}

TEST(sandbox_DenyList, WhatEachKindKeeps) {
  const auto sup = rules_of(seccomp_deny_list(ProcessKind::kSupervisor));
  const auto launcher = rules_of(effective_deny_list(ProcessKind::kLauncher));
  const auto worker = rules_of(effective_deny_list(ProcessKind::kWorker));
  // The supervisor runs inventory plug-ins (exec, fork) and serves HTTP (listen, accept4, threads).
  for (const char* kept : {"execve", "fork", "listen", "accept4", "openat", "keyctl", "kill"})
    EXPECT_FALSE(sup.count(kept)) << kept;
  // Nothing kills the supervisor: plug-ins inherit its filter and /metrics must stay up.
  for (const auto& [name, action] : sup) EXPECT_NE(action, DenyAction::kKill) << name;
  EXPECT_EQ(sup.at("clone3"), DenyAction::kNosys);  // glibc falls back to clone(), whose flags are checked
  for (const char* denied : {"ptrace", "mount", "unshare", "setns", "bpf", "init_module", "io_uring_setup"}) {
    EXPECT_EQ(sup.at(denied), DenyAction::kErrno) << denied;
    EXPECT_EQ(launcher.at(denied), DenyAction::kKill) << denied;
  }
  // The launcher forks workers; workers start no process, and neither runs a program or serves.
  EXPECT_FALSE(launcher.count("fork"));
  EXPECT_EQ(worker.at("fork"), DenyAction::kKill);
  for (const char* denied : {"execve", "execveat", "listen", "accept4", "setresuid"}) {
    EXPECT_EQ(launcher.at(denied), DenyAction::kKill) << denied;
    EXPECT_EQ(worker.at(denied), DenyAction::kKill) << denied;
  }
  EXPECT_EQ(launcher.at("openat"), DenyAction::kErrno);  // only for writing
  // The worker's own list adds to its launcher's (inherited) one.
  EXPECT_EQ(
      effective_deny_list(ProcessKind::kWorker).size(),
      effective_deny_list(ProcessKind::kLauncher).size() + seccomp_deny_list(ProcessKind::kWorker).size());
}

TEST(sandbox_DenyList, DocumentedInArchitecture) {
  std::ifstream in(std::string(NETPROBE_SOURCE_DIR) + "/docs/architecture.md");
  ASSERT_TRUE(in) << "docs/architecture.md";
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t begin = doc.find("### Confinement");
  ASSERT_NE(begin, std::string::npos);
  const std::string section = doc.substr(begin, doc.find("\n### ", begin + 1) - begin);
  for (auto kind : {ProcessKind::kSupervisor, ProcessKind::kLauncher, ProcessKind::kWorker})
    for (const auto& r : seccomp_deny_list(kind))
      EXPECT_NE(section.find("`" + r.name + "`"), std::string::npos) << r.name << " is not in the table";
}

// ---------------------------------------------------------------------------------------------------
// Forked children

// Runs `body` in a child; returns its wait status. The child never returns into gtest.
int in_child(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

std::string status_of(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
  return "?";
}

#define EXPECT_CHILD_OK(status) \
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status_of(status)
#define EXPECT_CHILD_SIGSYS(status) \
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) << status_of(status)

std::string proc_status_field(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) {
      std::string v = line.substr(std::strlen(field));
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return "";
}

bool thread_runs() {
  bool ran = false;
  std::thread t([&] { ran = true; });
  t.join();
  return ran;
}

TEST(sandbox_Seccomp, SupervisorRefusesKernelSurfaceButKeepsThreadsAndExec) {
  EXPECT_CHILD_OK(in_child([] {
    if (!install_seccomp(ProcessKind::kSupervisor).ok()) return 1;
    if (proc_status_field("Seccomp:") != "2" || proc_status_field("NoNewPrivs:") != "1") return 2;
    if (unshare(CLONE_NEWUSER) == 0 || errno != EPERM) return 3;
    if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == 0 || errno != EPERM) return 4;
    if (!thread_runs()) return 5;  // clone3 -> ENOSYS -> glibc's clone() fallback
    // Inventory plug-ins: fork + exec still work, and they inherit the filter.
    const int plugin = in_child([] {
      execl("/bin/sh", "sh", "-c", "grep -q '^Seccomp:.*2' /proc/self/status", nullptr);
      return 99;
    });
    if (!WIFEXITED(plugin) || WEXITSTATUS(plugin) != 0) return 6;
    // A refused call fails; it does not kill the supervisor.
    if (syscall(SYS_init_module, nullptr, 0, "") == 0 || errno != EPERM) return 7;
    return 0;
  }));
}

TEST(sandbox_Seccomp, LauncherWritesNoFileAndRunsNoProgram) {
  char dir[] = "/tmp/netprobe-sandbox-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string file = std::string(dir) + "/f";
  EXPECT_CHILD_OK(in_child([&] {
    if (!install_seccomp(ProcessKind::kLauncher).ok()) return 1;
    if (open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600) >= 0 || errno != EPERM) return 2;
    if (open(file.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600) >= 0 || errno != EPERM) return 3;
    if (open("/proc/self/status", O_RDWR | O_CLOEXEC) >= 0 || errno != EPERM) return 4;
    const int ro = open("/proc/self/status", O_RDONLY | O_CLOEXEC);  // reading stays allowed
    if (ro < 0) return 5;
    close(ro);
    if (mkdir((std::string(dir) + "/d").c_str(), 0700) == 0 || errno != EPERM) return 6;
    if (!thread_runs()) return 7;
    // It forks workers...
    const int worker = in_child([] { return 0; });
    if (!WIFEXITED(worker) || WEXITSTATUS(worker) != 0) return 8;
    // ...which never exec: an exec kills.
    const int exec = in_child([] {
      execl("/bin/true", "true", nullptr);
      return 99;
    });
    if (!WIFSIGNALED(exec) || WTERMSIG(exec) != SIGSYS) return 9;
    return 0;
  }));
  EXPECT_NE(access(file.c_str(), F_OK), 0);
  rmdir(dir);
}

TEST(sandbox_Seccomp, LauncherIsKilledByAForbiddenCall) {
  EXPECT_CHILD_SIGSYS(in_child([] {
    if (!install_seccomp(ProcessKind::kLauncher).ok()) return 1;
    ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    return 2;
  }));
}

// A worker: its launcher's filter, then its own.
bool worker_filters() {
  return install_seccomp(ProcessKind::kLauncher).ok() && install_seccomp(ProcessKind::kWorker).ok();
}

TEST(sandbox_Seccomp, WorkerKeepsThreadsAndSignalsToItself) {
  EXPECT_CHILD_OK(in_child([] {
    if (!worker_filters()) return 1;
    if (!thread_runs()) return 2;
    signal(SIGUSR1, [](int) {});
    if (raise(SIGUSR1) != 0) return 3;  // tgkill(own pid, own tid): abort() does the same
    if (pthread_kill(pthread_self(), SIGUSR1) != 0) return 3;
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);  // kernel_source_for()'s route lookup
    if (s < 0) return 4;
    close(s);
    return 0;
  }));
}

TEST(sandbox_Seccomp, WorkerStartsNoProcess) {
  EXPECT_CHILD_SIGSYS(in_child([] {
    if (!worker_filters()) return 1;
    const pid_t p = fork();
    if (p == 0) _exit(0);
    return 2;
  }));
}

TEST(sandbox_Seccomp, WorkerSignalsNoOtherProcess) {
  const pid_t parent = getpid();
  EXPECT_CHILD_SIGSYS(in_child([parent] {
    if (!worker_filters()) return 1;
    kill(parent, 0);
    return 2;
  }));
  EXPECT_CHILD_SIGSYS(in_child([parent] {
    if (!worker_filters()) return 1;
    syscall(SYS_tgkill, parent, parent, 0);
    return 2;
  }));
}

TEST(sandbox_Confine, NonDumpable) {
  EXPECT_CHILD_OK(in_child([] {
    if (!set_non_dumpable().ok()) return 1;
    return prctl(PR_GET_DUMPABLE) == 0 ? 0 : 2;
  }));
}

// ---------------------------------------------------------------------------------------------------
// As root

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root (user switch, mount namespace)"

TEST(sandbox_Root, SwitchUserDropsRootForGood) {
  REQUIRE_ROOT();
  const auto nobody = lookup_system_user("nobody");
  if (!nobody) GTEST_SKIP() << "no nobody user";
  EXPECT_CHILD_OK(in_child([&] {
    if (!switch_user(*nobody, false).ok()) return 1;
    if (getuid() != nobody->uid || geteuid() != nobody->uid || getegid() != nobody->gid) return 2;
    if (getgroups(0, nullptr) != 0) return 3;
    if (setuid(0) == 0) return 4;
    if (open("/etc/shadow", O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES) return 5;
    if (proc_status_field("CapEff:") != "0000000000000000") return 6;
    if (socket(AF_INET, SOCK_RAW, IPPROTO_RAW) >= 0) return 7;  // no CAP_NET_RAW kept
    return 0;
  }));
}

TEST(sandbox_Root, LauncherKeepsNetRawAcrossTheSwitchAndForksWorkersThatCanOpenRawSockets) {
  REQUIRE_ROOT();
  const auto nobody = lookup_system_user("nobody");
  if (!nobody) GTEST_SKIP() << "no nobody user";
  EXPECT_CHILD_OK(in_child([&] {
    if (!switch_user(*nobody, true).ok()) return 1;
    if (!restrict_to_net_raw().ok()) return 2;
    if (geteuid() != nobody->uid) return 3;
    if (proc_status_field("CapEff:") != "0000000000002000") return 4;  // CAP_NET_RAW only
    if (!install_seccomp(ProcessKind::kLauncher).ok()) return 5;
    const int worker = in_child([] {
      const int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
      if (fd < 0) return 1;
      if (!drop_all_capabilities().ok() || !install_seccomp(ProcessKind::kWorker).ok()) return 2;
      if (socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW) >= 0) return 3;  // dropped for good
      close(fd);
      return 0;
    });
    return WIFEXITED(worker) && WEXITSTATUS(worker) == 0 ? 0 : 10 + WEXITSTATUS(worker);
  }));
}

TEST(sandbox_Root, EmptyReadOnlyRoot) {
  REQUIRE_ROOT();
  EXPECT_CHILD_OK(in_child([] {
    if (auto s = enter_empty_root(); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.error().message.c_str());
      return 1;
    }
    DIR* d = opendir("/");
    if (!d) return 2;
    int entries = 0;
    while (const dirent* e = readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++entries;
    closedir(d);
    if (entries != 0) return 3;
    if (access("/etc/shadow", F_OK) == 0 || errno != ENOENT) return 4;
    if (chdir("..") != 0) return 5;  // ".." of the root is the root: nothing leads back to the host
    if (access("etc", F_OK) == 0) return 6;
    if (mkdir("/x", 0700) == 0 || errno != EROFS) return 7;
    // Inherited by children (workers are forked by the launcher).
    const int child = in_child([] { return access("/etc/passwd", F_OK) == 0 ? 1 : 0; });
    return WIFEXITED(child) && WEXITSTATUS(child) == 0 ? 0 : 8;
  }));
  EXPECT_EQ(access("/etc/passwd", F_OK), 0);  // the host's view is untouched
}

}  // namespace
}  // namespace netprobe
