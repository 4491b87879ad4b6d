#!/usr/bin/python3
"""Example Python client of snapshot-agent, on stubs generated from
proto/snapshot/v1/snapshot.proto (never committed: generate them first).

    protoc --proto_path=proto --python_out=OUT --grpc_out=OUT \
        --plugin=protoc-gen-grpc=$(command -v grpc_python_plugin) \
        proto/snapshot/v1/snapshot.proto
    PYTHONPATH=OUT /usr/bin/python3 client/python/snapshot_client.py \
        --address 127.0.0.1:7150 save backup.snap

Commands: save FILE, verify FILE, restore FILE, status, put KEY VALUE,
get KEY. Uses Debian's python3-grpcio (run it with /usr/bin/python3).
"""

import argparse
import base64
import hashlib
import os
import sys

import grpc

from snapshot.v1 import snapshot_pb2
from snapshot.v1 import snapshot_pb2_grpc

CHUNK = 1 << 20


def checksum(data_hash):
    return "sha-256=" + base64.b64encode(data_hash.digest()).decode()


def save(stub, path, metadata):
    """Streams a snapshot into PATH.part, checks the trailer, renames."""
    part = path + ".part"
    digest = hashlib.sha256()
    size = 0
    trailer = None
    meta = None
    try:
        with open(part, "wb") as out:
            for msg in stub.TakeSnapshot(snapshot_pb2.TakeSnapshotRequest(),
                                         metadata=metadata):
                kind = msg.WhichOneof("message")
                if kind == "metadata":
                    meta = msg.metadata
                elif kind == "chunk":
                    digest.update(msg.chunk)
                    size += len(msg.chunk)
                    out.write(msg.chunk)
                elif kind == "trailer":
                    trailer = msg.trailer
            out.flush()
            os.fsync(out.fileno())
        if trailer is None:
            raise RuntimeError("stream ended without a trailer")
        if trailer.archive_size != size or trailer.checksum != checksum(digest):
            raise RuntimeError("received bytes do not match the trailer")
        os.rename(part, path)
    finally:
        if os.path.exists(part):
            os.unlink(part)
    print(f"saved {path}: index {meta.index}, term {meta.term}, "
          f"{meta.state_size} state bytes, {trailer.checksum}")


def file_chunks(path, first=None):
    if first is not None:
        yield first
    with open(path, "rb") as f:
        while True:
            data = f.read(CHUNK)
            if not data:
                return
            yield data


def verify(stub, path, metadata):
    resp = stub.VerifySnapshot(
        (snapshot_pb2.VerifySnapshotRequest(chunk=c) for c in file_chunks(path)),
        metadata=metadata)
    print(f"valid: index {resp.metadata.index}, term {resp.metadata.term}, "
          f"{resp.archive_size} bytes, {resp.checksum}")


def restore(stub, path, metadata):
    digest = hashlib.sha256()
    for c in file_chunks(path):
        digest.update(c)

    def requests():
        yield snapshot_pb2.RestoreSnapshotRequest(
            options=snapshot_pb2.RestoreOptions(expected_checksum=checksum(digest)))
        for c in file_chunks(path):
            yield snapshot_pb2.RestoreSnapshotRequest(chunk=c)

    resp = stub.RestoreSnapshot(requests(), metadata=metadata)
    print(f"restored index {resp.metadata.index}; in effect from log index "
          f"{resp.restored_index}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="127.0.0.1:7150")
    p.add_argument("--token", default="")
    p.add_argument("command", choices=["save", "verify", "restore", "status", "put", "get"])
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    metadata = [("authorization", "Bearer " + a.token)] if a.token else []
    channel = grpc.insecure_channel(a.address)
    snaps = snapshot_pb2_grpc.SnapshotServiceStub(channel)
    kv = snapshot_pb2_grpc.KeyValueServiceStub(channel)
    try:
        if a.command == "save":
            save(snaps, a.args[0], metadata)
        elif a.command == "verify":
            verify(snaps, a.args[0], metadata)
        elif a.command == "restore":
            restore(snaps, a.args[0], metadata)
        elif a.command == "status":
            st = snaps.GetStatus(snapshot_pb2.GetStatusRequest(), metadata=metadata)
            print(f"node {st.node_id} {st.role}, leader {st.leader_id}, "
                  f"term {st.term}, applied {st.applied_index}")
        elif a.command == "put":
            kv.Put(snapshot_pb2.PutRequest(key=a.args[0].encode(), value=a.args[1].encode()),
                   metadata=metadata)
        elif a.command == "get":
            r = kv.Get(snapshot_pb2.GetRequest(key=a.args[0].encode()), metadata=metadata)
            if not r.found:
                print(f"no key {a.args[0]}", file=sys.stderr)
                return 1
            print(r.value.decode())
    except grpc.RpcError as e:
        print(f"snapshot_client: {a.command}: {e.code().name}: {e.details()}", file=sys.stderr)
        return 3 if e.code() == grpc.StatusCode.DATA_LOSS else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
