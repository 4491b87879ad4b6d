#include "base/sha256.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"
#include "base/thread_name.h"

namespace snapshot {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    abort();  // Only fails when out of memory.
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(absl::string_view data) {
  if (!data.empty()) EVP_DigestUpdate(ctx_, data.data(), data.size());
}

Digest Sha256::Finish() {
  Digest d;
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, d.data(), &len);
  EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
  return d;
}

Digest Sha256Of(absl::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

Digest HmacSha256(absl::string_view key, absl::string_view data) {
  Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

std::string HexLower(const Digest& d) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t i = 0; i < d.size(); ++i) {
    out[2 * i] = kHex[d[i] >> 4];
    out[2 * i + 1] = kHex[d[i] & 15];
  }
  return out;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseHexDigest(absl::string_view hex, Digest* out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::string ChecksumString(const Digest& d) {
  return "sha-256=" +
         absl::Base64Escape(absl::string_view(
             reinterpret_cast<const char*>(d.data()), d.size()));
}

AsyncSha256::~AsyncSha256() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void AsyncSha256::Update(absl::string_view data) {
  while (!data.empty()) {
    size_t room;
    char* p = Space(&room);
    const size_t n = std::min(data.size(), room);
    memcpy(p, data.data(), n);
    data.remove_prefix(n);
    Commit(n);
  }
}

char* AsyncSha256::Space(size_t* room) {
  if (block_.bytes == nullptr) block_.bytes.reset(new char[kBlock]);
  *room = kBlock - block_.size;
  return block_.bytes.get() + block_.size;
}

void AsyncSha256::Commit(size_t n) {
  block_.size += n;
  if (block_.size == kBlock) Submit();
}

void AsyncSha256::Submit() {
  std::unique_lock<std::mutex> l(mu_);
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  cv_.wait(l, [&] { return queue_.size() < kMaxQueued; });
  queue_.push_back(std::move(block_));
  block_ = Block();
  if (!free_.empty()) {
    block_ = std::move(free_.back());
    free_.pop_back();
    block_.size = 0;
  }
  cv_.notify_all();
}

void AsyncSha256::Run() {
  SetThreadName("sa-sha256");
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    Block b = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    l.unlock();
    hash_.Update(absl::string_view(b.bytes.get(), b.size));
    l.lock();
    busy_ = false;
    if (free_.empty()) free_.push_back(std::move(b));
    cv_.notify_all();
  }
}

Digest AsyncSha256::Finish() {
  {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return queue_.empty() && !busy_; });
  }
  // The hashing thread is idle: the rest is hashed here.
  if (block_.size > 0) hash_.Update(absl::string_view(block_.bytes.get(), block_.size));
  block_.size = 0;
  return hash_.Finish();
}

}  // namespace snapshot
