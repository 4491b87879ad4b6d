// snapshot-go: a small command line over package snapshotclient, the Go
// example client of snapshot-agent.
//
//	snapshot-go -address 127.0.0.1:7150 save|verify|restore FILE
//	snapshot-go -address 127.0.0.1:7150 put KEY VALUE | get KEY | status
//
// Exit codes: 0 success, 2 usage, 3 DATA_LOSS (a corrupt archive), 1 other.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"snapshotagent/snapshotclient"
)

func main() {
	address := flag.String("address", "127.0.0.1:7150", "agent address")
	tokenFile := flag.String("token-file", "", "file whose first line is the bearer token")
	flag.Parse()
	args := flag.Args()
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: snapshot-go [-address A] save|verify|restore FILE | put K V | get K | status")
		os.Exit(2)
	}
	token := ""
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fail(err)
		}
		for i, ch := range b {
			if ch == '\n' {
				b = b[:i]
				break
			}
		}
		token = string(b)
	}
	c, err := snapshotclient.Dial(*address, token)
	if err != nil {
		fail(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	need := func(n int) {
		if len(args) != n+1 {
			fmt.Fprintf(os.Stderr, "snapshot-go: %s takes %d arguments\n", args[0], n)
			os.Exit(2)
		}
	}
	switch args[0] {
	case "save":
		need(1)
		m, err := c.Save(ctx, args[1])
		if err != nil {
			fail(err)
		}
		fmt.Printf("saved %s: index %d, term %d, %d bytes of state\n", args[1], m.Index, m.Term, m.StateSize)
	case "verify":
		need(1)
		r, err := c.Verify(ctx, args[1])
		if err != nil {
			fail(err)
		}
		fmt.Printf("%s is valid: %d bytes, %s\n", args[1], r.ArchiveSize, r.Checksum)
	case "restore":
		need(1)
		r, err := c.Restore(ctx, args[1])
		if err != nil {
			fail(err)
		}
		fmt.Printf("restored %s; in effect from log index %d\n", args[1], r.RestoredIndex)
	case "put":
		need(2)
		if err := c.Put(ctx, args[1], args[2]); err != nil {
			fail(err)
		}
	case "get":
		need(1)
		v, found, err := c.Get(ctx, args[1])
		if err != nil {
			fail(err)
		}
		if !found {
			fmt.Fprintf(os.Stderr, "snapshot-go: %s: not found\n", args[1])
			os.Exit(1)
		}
		fmt.Println(v)
	case "status":
		need(0)
		s, err := c.Status(ctx)
		if err != nil {
			fail(err)
		}
		fmt.Printf("%s, term %d, leader %d\n", s.Role, s.Term, s.LeaderId)
	default:
		fmt.Fprintf(os.Stderr, "snapshot-go: unknown command %s\n", args[0])
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "snapshot-go: %v\n", err)
	if status.Code(err) == codes.DataLoss {
		fmt.Fprintln(os.Stderr, "DATA_LOSS")
		os.Exit(3)
	}
	os.Exit(1)
}
