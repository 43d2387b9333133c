// On-demand credentials (src/ondemand/credentials.h): a table of Authorization headers -> verdict.
#include "ondemand/credentials.h"

#include <gtest/gtest.h>

namespace netprobe::ondemand {
namespace {

TEST(ondemand_Credentials, Sha256) {
  EXPECT_EQ(sha256_hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

TEST(ondemand_Credentials, Table) {
  std::map<std::string, OnDemandCredential> creds;
  creds["runbook"] = {"runbook", sha256_hex("s3cret-token"), ""};
  creds["other"] = {"other", sha256_hex("another-token"), ""};
  creds["alice"] = {"alice", "", "$2b$04$9eTNK6dcbTNnSMy.nLnSjufUwzMnlLs7FWpf4cm27vv.DPbMxw.KC"};  // hunter2
  const CredentialTable table(creds);
  struct Row {
    std::optional<std::string> header;
    http::AuthVerdict verdict;
    const char* who_or_reason;
  };
  const std::vector<Row> rows = {
      {"Bearer s3cret-token", http::AuthVerdict::kAllow, "runbook"},
      {"Bearer another-token", http::AuthVerdict::kAllow, "other"},
      {"Bearer s3cret-token ", http::AuthVerdict::kDeny, "wrong"},
      {"Bearer S3CRET-TOKEN", http::AuthVerdict::kDeny, "wrong"},
      {"Bearer ", http::AuthVerdict::kDeny, "wrong"},
      // The stored hash itself is not a token.
      {"Bearer " + sha256_hex("s3cret-token"), http::AuthVerdict::kDeny, "wrong"},
      {"bearer s3cret-token", http::AuthVerdict::kDeny, "malformed"},
      {"Token s3cret-token", http::AuthVerdict::kDeny, "malformed"},
      {std::nullopt, http::AuthVerdict::kDeny, "missing"},
      {"", http::AuthVerdict::kDeny, "missing"},
      {"Basic YWxpY2U6aHVudGVyMg==", http::AuthVerdict::kAllow, "alice"},         // alice:hunter2
      {"Basic YWxpY2U6aHVudGVyMw==", http::AuthVerdict::kDeny, "wrong"},          // alice:hunter3
      {"Basic cnVuYm9vazpzM2NyZXQtdG9rZW4=", http::AuthVerdict::kDeny, "wrong"},  // runbook:s3cret-token
      {"Basic !!!", http::AuthVerdict::kDeny, "malformed"},
      {"Basic YWxpY2U=", http::AuthVerdict::kDeny, "malformed"},  // no colon
      {"Bearer " + std::string(5000, 'x'), http::AuthVerdict::kDeny, "malformed"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.header.value_or("(none)"));
    const AuthResult r =
        table.check(row.header ? std::optional<std::string_view>(*row.header) : std::nullopt);
    EXPECT_EQ(int(r.verdict), int(row.verdict));
    EXPECT_EQ(r.verdict == http::AuthVerdict::kAllow ? r.credential : r.reason, row.who_or_reason);
  }
}

TEST(ondemand_Credentials, NoCredentialsRefuseEverything) {
  const CredentialTable table({});
  EXPECT_EQ(int(table.check("Bearer x").verdict), int(http::AuthVerdict::kDeny));
  EXPECT_EQ(int(table.check("Basic YWxpY2U6aHVudGVyMg==").verdict), int(http::AuthVerdict::kDeny));
}

}  // namespace
}  // namespace netprobe::ondemand
