"""Wraps Debian's system libraries as cc_library targets in one repository.

Each target carries the link flags pkg-config reports for the library, so the
project's targets depend on names (@system//:grpc++), never on raw flags.
Headers come from /usr/include, which the compiler searches already.
"""

# target name -> (pkg-config modules, extra link flags put before theirs)
_LIBS = {
    "absl": (["absl_status", "absl_statusor", "absl_strings", "absl_str_format", "absl_synchronization", "absl_time", "absl_flags", "absl_flags_parse"], []),
    "zlib": (["zlib"], []),
    "libdeflate": (["libdeflate"], []),
    "isal": ([], ["-lisal"]),
    "crypto": (["libcrypto"], []),
    "ssl": (["libssl", "libcrypto"], []),
    "protobuf": (["protobuf"], []),
    "grpc++": (["grpc++", "protobuf", "absl_synchronization"], []),
    "grpc++_reflection": (["grpc++", "protobuf", "absl_synchronization"], ["-lgrpc++_reflection"]),
    # Debian's static libraft, with its internal CRC-32 routed to
    # //raft:libraft_crc32 (ISA-L); see raft/libraft_crc32.h. A binary that
    # links this target must also link that one.
    "raft": (["libuv", "liblz4"], ["-l:libraft.a", "-Wl,--wrap=byteCrc32"]),
    "systemd": (["libsystemd"], []),
    "prometheus": (["prometheus-cpp-pull", "prometheus-cpp-core"], []),
    "gtest": ([], ["-lgtest", "-lgmock", "-lpthread"]),
    "gtest_main": ([], ["-lgtest_main", "-lgtest", "-lgmock", "-lpthread"]),
    "benchmark": ([], ["-lbenchmark", "-lpthread"]),
    "nlohmann_json": ([], []),
    "curl": (["libcurl"], []),
    "expat": (["expat"], []),
}

def _system_libs_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, (modules, extra) in _LIBS.items():
        flags = []
        if modules:
            res = ctx.execute(["pkg-config", "--libs"] + modules)
            if res.return_code != 0:
                fail("pkg-config failed for %s (%s): %s\nRun tools/install-deps.sh first." % (name, " ".join(modules), res.stderr))
            flags = res.stdout.strip().split(" ")
        flags = [f for f in extra + flags if f]
        lines.append("cc_library(")
        lines.append("    name = %r," % name)
        lines.append("    linkopts = %r," % flags)
        lines.append(")")
        lines.append("")
    ctx.file("WORKSPACE", "")
    ctx.file("BUILD.bazel", "\n".join(lines))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    doc = "cc_library wrappers for Debian system libraries, flags from pkg-config.",
)
