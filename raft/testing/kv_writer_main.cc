// kv_writer: a single-node EmbeddedNode that writes keys k/0, k/1, ... one at
// a time and prints "acked N" after each acknowledged write, until killed.
// Used by crash_test to kill -9 a real process mid-write.
//
//   kv_writer DATA_DIR RAFT_ADDRESS
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "raft/embedded_node.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: kv_writer DATA_DIR RAFT_ADDRESS\n";
    return 2;
  }
  snapshot::EmbeddedNodeConfig c;
  c.id = 1;
  c.data_dir = argv[1];
  c.raft_address = argv[2];
  c.snapshot_threshold = 128;
  c.snapshot_trailing = 64;
  auto node = snapshot::EmbeddedNode::Start(c);
  if (!node.ok()) {
    std::cerr << "kv_writer: " << node.status() << "\n";
    return 1;
  }
  if (!(*node)->WaitForLeader(absl::Now() + absl::Seconds(10)).ok()) {
    std::cerr << "kv_writer: no leader\n";
    return 1;
  }
  for (long i = 0;; ++i) {
    auto r = (*node)->Put(absl::StrCat("k/", i), absl::StrCat("v", i),
                          absl::Now() + absl::Seconds(10));
    if (!r.ok()) {
      std::cerr << "kv_writer: " << r.status() << "\n";
      return 1;
    }
    printf("acked %ld\n", i);
    fflush(stdout);
  }
}
