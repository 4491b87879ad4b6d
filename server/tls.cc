#include "server/tls.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <grpc/grpc.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/io.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// "subject /CN=..., issuer /CN=..., expires Nov 26 09:35:04 2027 GMT,
// sha256 abcd..."
std::string DescribeCert(X509* cert) {
  char subject[512], issuer[512];
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
  X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof(issuer));
  std::string expiry = "?";
  std::unique_ptr<BIO, BioFree> out(BIO_new(BIO_s_mem()));
  if (out && ASN1_TIME_print(out.get(), X509_get0_notAfter(cert)) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(out.get(), &data);
    expiry.assign(data, static_cast<size_t>(n));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  std::string fingerprint;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1) {
    fingerprint = absl::BytesToHexString(
        absl::string_view(reinterpret_cast<char*>(md), md_len));
  }
  return absl::StrCat("subject ", subject, ", issuer ", issuer, ", expires ",
                      expiry, ", sha256 ", fingerprint);
}

absl::StatusOr<ReloadableTls::Pem> LoadAndCheck(const TlsFiles& f) {
  ReloadableTls::Pem pem;
  SA_ASSIGN_OR_RETURN(pem.cert, ReadSmallFile(f.cert));
  SA_ASSIGN_OR_RETURN(pem.key, ReadSmallFile(f.key));
  if (!f.client_ca.empty()) {
    SA_ASSIGN_OR_RETURN(pem.client_ca, ReadSmallFile(f.client_ca));
    auto bio = MemBio(pem.client_ca);
    std::unique_ptr<X509, X509Free> ca(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!ca) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the client CA file ", f.client_ca, " holds no PEM certificate"));
    }
  }
  auto cert_bio = MemBio(pem.cert);
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the TLS certificate file ", f.cert, " holds no PEM certificate"));
  }
  auto key_bio = MemBio(pem.key);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the TLS key file ", f.key,
        " holds no PEM private key (or it is encrypted)"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the TLS key ", f.key, " does not belong to the certificate ", f.cert));
  }
  pem.description = DescribeCert(cert.get());
  return pem;
}

// ServerCredentials over a C-core credentials object whose certificates come
// from a fetcher. gRPC's own SecureServerCredentials is not a public class,
// so this wraps the public C API the same way.
class FetcherServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit FetcherServerCredentials(grpc_server_credentials* c) : c_(c) {}
  ~FetcherServerCredentials() override { grpc_server_credentials_release(c_); }
  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), c_);
  }
  grpc_server_credentials* c_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReloadableTls>> ReloadableTls::Load(
    TlsFiles files) {
  std::unique_ptr<ReloadableTls> tls(new ReloadableTls(std::move(files)));
  SA_ASSIGN_OR_RETURN(tls->current_, LoadAndCheck(tls->files_));
  grpc_ssl_server_credentials_options* options =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          tls->files_.client_ca.empty()
              ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
          &ReloadableTls::Fetch, tls.get());
  grpc_server_credentials* c =
      grpc_ssl_server_credentials_create_with_options(options);
  if (c == nullptr) {
    return absl::InternalError("gRPC could not create TLS server credentials");
  }
  tls->creds_ = std::make_shared<FetcherServerCredentials>(c);
  return tls;
}

ReloadableTls::~ReloadableTls() = default;

std::shared_ptr<grpc::ServerCredentials> ReloadableTls::Credentials() {
  return creds_;
}

grpc_ssl_certificate_config_reload_status ReloadableTls::Fetch(
    void* user_data, grpc_ssl_server_certificate_config** config) {
  auto* self = static_cast<ReloadableTls*>(user_data);
  std::lock_guard<std::mutex> l(self->mu_);
  if (!self->pending_) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  grpc_ssl_pem_key_cert_pair pair;
  pair.private_key = self->current_.key.c_str();
  pair.cert_chain = self->current_.cert.c_str();
  // gRPC 1.51 asserts that a fetched configuration has root certificates,
  // even when client certificates are not requested (and the roots are then
  // never used): give it the server's own chain in that case.
  const std::string& roots = self->current_.client_ca.empty()
                                 ? self->current_.cert
                                 : self->current_.client_ca;
  *config = grpc_ssl_server_certificate_config_create(roots.c_str(), &pair, 1);
  if (*config == nullptr) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
  self->pending_ = false;
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

absl::StatusOr<std::string> ReloadableTls::Reload() {
  SA_ASSIGN_OR_RETURN(Pem fresh, LoadAndCheck(files_));
  std::lock_guard<std::mutex> l(mu_);
  if (fresh.cert == current_.cert && fresh.key == current_.key &&
      fresh.client_ca == current_.client_ca) {
    return absl::StrCat("unchanged (", current_.description, ")");
  }
  std::string what;
  if (fresh.cert != current_.cert || fresh.key != current_.key) {
    absl::StrAppend(&what, "certificate ", current_.description, " -> ",
                    fresh.description);
  }
  if (fresh.client_ca != current_.client_ca) {
    absl::StrAppend(&what, what.empty() ? "" : "; ", "client CA replaced");
  }
  current_ = std::move(fresh);
  pending_ = true;
  return what;
}

std::string ReloadableTls::Describe() const {
  std::lock_guard<std::mutex> l(mu_);
  return current_.description;
}

}  // namespace snapshot
