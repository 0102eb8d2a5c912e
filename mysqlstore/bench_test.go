package mysqlstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/internal/mariadbtest"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
)

// The cost of the shared store on a local MariaDB: one journal step, one
// lease renewal, one epoch read (make bench).

func BenchmarkAppend(b *testing.B) {
	s := open(b, mariadbtest.New(b), "a")
	e := journal.Entry{Pool: "p", Kind: "fence", Step: "witness:xapi", Host: "2b0c9d3e-0000-4000-8000-000000000001", Detail: "the host's XAPI did not answer 3 probes"}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Append(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFromFourBridges(b *testing.B) {
	db := mariadbtest.New(b)
	stores := []*Store{open(b, db, "a"), open(b, db, "b"), open(b, db, "c"), open(b, db, "d")}
	b.SetParallelism(2) // four goroutines on two cores, one per store
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := stores[int(n.Add(1))%len(stores)]
		for pb.Next() {
			if _, err := s.Append(journal.Entry{Pool: "p", Kind: "elect", Step: "probe"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkLeaseRenewal(b *testing.B) {
	s := open(b, mariadbtest.New(b), "a")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := lease.Pool{UUID: fmt.Sprint("pool-", i%10), Name: fmt.Sprint("p", i%10)}
		if _, err := s.Acquire(ctx, lease.Claim{Pool: p, ID: "a", Instance: "1", Address: "a:50051"}, 15*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEpoch(b *testing.B) {
	s := open(b, mariadbtest.New(b), "a")
	s.AdvanceEpoch("p", "s", 3)
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Epoch("p"); err != nil {
			b.Fatal(err)
		}
	}
}
