"""The project's shared folder (Nomad interop fixtures, read-only test data).

By default ../shared beside the checkout; a checkout elsewhere names the folder
in the environment variable SNAPSHOT_AGENT_SHARED.
"""

def _shared_repository_impl(ctx):
    path = ctx.os.environ.get("SNAPSHOT_AGENT_SHARED", "")
    if not path:
        path = str(ctx.path(Label("//:WORKSPACE")).dirname.dirname) + "/shared"
    interop = ctx.path(path + "/interop")
    if not interop.exists:
        fail("%s is missing: the tests read Nomad's interop fixtures from the project's " % interop +
             "shared folder; clone next to it or set SNAPSHOT_AGENT_SHARED")
    ctx.symlink(interop, "interop")
    ctx.file("BUILD.bazel", """filegroup(
    name = "interop",
    srcs = glob(["interop/**"]),
    visibility = ["//visibility:public"],
)
""")

shared_repository = repository_rule(
    implementation = _shared_repository_impl,
    environ = ["SNAPSHOT_AGENT_SHARED"],
    local = True,
)
