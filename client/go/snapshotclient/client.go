// Package snapshotclient is a small Go client of snapshot-agent, on stubs
// generated from proto/snapshot/v1/snapshot.proto with Debian's protoc-gen-go
// and protoc-gen-go-grpc (never committed: client/go/go_client_test.sh shows
// how to generate them, imported as snapshotagent/gen/snapshotv1).
//
//	c, err := snapshotclient.Dial("127.0.0.1:7150", token)
//	meta, err := c.Save(ctx, "backup.snap")   // FILE.part, checked, fsynced, renamed
//	info, err := c.Verify(ctx, "backup.snap")
//	res, err := c.Restore(ctx, "backup.snap") // with the checksum computed here
//
// Errors are the agent's gRPC statuses (docs/api.md) or local file errors;
// Save leaves no FILE and no FILE.part unless it succeeded. A Client may be
// used from several goroutines.
package snapshotclient

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "snapshotagent/gen/snapshotv1"
)

const chunk = 1 << 20

// Client talks to one agent.
type Client struct {
	conn  *grpc.ClientConn
	snaps pb.SnapshotServiceClient
	kv    pb.KeyValueServiceClient
	token string
}

// Dial connects to the agent at address (plaintext: loopback or a trusted
// network); token is a bearer token, or "" without one.
func Dial(address, token string) (*Client, error) {
	// grpc-go 1.33 (Debian 12): WithInsecure is its plaintext option.
	conn, err := grpc.Dial(address, grpc.WithInsecure(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, snaps: pb.NewSnapshotServiceClient(conn),
		kv: pb.NewKeyValueServiceClient(conn), token: token}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) ctx(ctx context.Context) context.Context {
	if c.token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

func checksum(sum []byte) string { return "sha-256=" + base64.StdEncoding.EncodeToString(sum) }

// Save takes a snapshot from the agent's leader into path: written to
// path+".part", checked against the trailer (size and SHA-256), fsynced and
// renamed.
func (c *Client) Save(ctx context.Context, path string) (*pb.SnapshotMetadata, error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	meta, err := c.save(ctx, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, path)
	}
	if err != nil {
		os.Remove(part)
		return nil, err
	}
	return meta, nil
}

func (c *Client) save(ctx context.Context, f *os.File) (*pb.SnapshotMetadata, error) {
	stream, err := c.snaps.TakeSnapshot(c.ctx(ctx), &pb.TakeSnapshotRequest{})
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	var size uint64
	var meta *pb.SnapshotMetadata
	var trailer *pb.SnapshotTrailer
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch m := resp.Message.(type) {
		case *pb.TakeSnapshotResponse_Metadata:
			meta = m.Metadata
		case *pb.TakeSnapshotResponse_Chunk:
			h.Write(m.Chunk)
			size += uint64(len(m.Chunk))
			if _, err := f.Write(m.Chunk); err != nil {
				return nil, err
			}
		case *pb.TakeSnapshotResponse_Trailer:
			trailer = m.Trailer
		}
	}
	if meta == nil || trailer == nil {
		return nil, fmt.Errorf("the agent's stream ended without metadata or trailer")
	}
	if trailer.ArchiveSize != size || trailer.Checksum != checksum(h.Sum(nil)) {
		return nil, fmt.Errorf("the archive received (%d bytes, %s) does not match the trailer (%d bytes, %s)",
			size, checksum(h.Sum(nil)), trailer.ArchiveSize, trailer.Checksum)
	}
	return meta, f.Sync()
}

// Verify has the agent check the archive at path completely.
func (c *Client) Verify(ctx context.Context, path string) (*pb.VerifySnapshotResponse, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	stream, err := c.snaps.VerifySnapshot(c.ctx(ctx))
	if err != nil {
		return nil, err
	}
	buf := make([]byte, chunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if serr := stream.Send(&pb.VerifySnapshotRequest{Chunk: buf[:n]}); serr != nil {
				break // the agent ended the call: CloseAndRecv says why
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

// Restore replaces the whole cluster's state with the archive at path, sent
// with the checksum computed here (a mismatch is DATA_LOSS; nothing changes).
func (c *Client) Restore(ctx context.Context, path string) (*pb.RestoreSnapshotResponse, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	stream, err := c.snaps.RestoreSnapshot(c.ctx(ctx))
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	buf := make([]byte, chunk)
	sent := true
	for sent {
		n, err := f.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if serr := stream.Send(&pb.RestoreSnapshotRequest{
				Message: &pb.RestoreSnapshotRequest_Chunk{Chunk: buf[:n]}}); serr != nil {
				sent = false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if sent {
		stream.Send(&pb.RestoreSnapshotRequest{
			Message: &pb.RestoreSnapshotRequest_ExpectedChecksum{ExpectedChecksum: checksum(h.Sum(nil))}})
	}
	return stream.CloseAndRecv()
}

// Put writes a key of the embedded engine's key-value store.
func (c *Client) Put(ctx context.Context, key, value string) error {
	_, err := c.kv.Put(c.ctx(ctx), &pb.PutRequest{Key: []byte(key), Value: []byte(value)})
	return err
}

// Get reads a key; found is false when it is not there.
func (c *Client) Get(ctx context.Context, key string) (value string, found bool, err error) {
	resp, err := c.kv.Get(c.ctx(ctx), &pb.GetRequest{Key: []byte(key)})
	if err != nil {
		return "", false, err
	}
	return string(resp.Value), resp.Found, nil
}

// Status is the agent's view of its Raft node.
func (c *Client) Status(ctx context.Context) (*pb.GetStatusResponse, error) {
	return c.snaps.GetStatus(c.ctx(ctx), &pb.GetStatusRequest{})
}
