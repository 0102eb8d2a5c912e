// Command xenha-bench measures the gRPC service over real loopback TCP
// against simulated pools: HAMode latency and throughput with 1, 100 and
// 1000 attached pools beside a no-op RPC (the health check) as this
// machine's ceiling, event latency from a simulator change to delivery on
// 1 and 1000 PoolEvents streams, and memory per attached pool. It prints
// Markdown for docs/bench.md. `make bench` runs it. With -fence, -failover
// or -e2e it times fences, elections or whole failovers instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/server"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

var (
	duration = flag.Duration("duration", 3*time.Second, "how long each load phase runs")
	workers  = flag.Int("workers", 4, "concurrent callers in the load phases")
	fence    = flag.Int("fence", 0, "instead: time N fences per level")
	failover = flag.Int("failover", 0, "instead: time N CloudStack-controlled failovers per pool size")
	sizes    = []int{1, 100, 1000}
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *fence > 0 {
		benchFence(*fence)
		return
	}
	if *failover > 0 {
		benchFailover(*failover)
		return
	}
	if *e2eRuns > 0 {
		benchE2E(*e2eRuns)
		return
	}
	fmt.Printf("| attached pools | RPC | calls/s | p50 | p99 | ratio to no-op (throughput) |\n|---|---|---|---|---|---|\n")
	var memRows []string
	for _, n := range sizes {
		b := newBench(n)
		noop := b.load(func(ctx context.Context, i int) error {
			_, err := b.health.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		})
		mode := b.load(func(ctx context.Context, i int) error {
			_, err := b.api.HAMode(ctx, &pb.HAModeRequest{Pool: b.names[i%len(b.names)]})
			return err
		})
		fmt.Printf("| %d | health Check (no-op) | %.0f | %v | %v | 1 |\n", n, noop.rate, noop.p50, noop.p99)
		fmt.Printf("| %d | HAMode | %.0f | %v | %v | %.2f |\n", n, mode.rate, mode.p50, mode.p99, mode.rate/noop.rate)
		memRows = append(memRows, fmt.Sprintf("| %d | %.1f KiB |", n, b.bytesPerPool/1024))
		if n == sizes[len(sizes)-1] {
			fmt.Println()
			fmt.Printf("| PoolEvents streams | deliveries | p50 | p99 | max |\n|---|---|---|---|---|\n")
			for _, streams := range []int{1, 1000} {
				r := b.eventLatency(streams, 20)
				fmt.Printf("| %d | %d | %v | %v | %v |\n", streams, r.n, r.p50, r.p99, r.max)
			}
		}
		b.close()
	}
	fmt.Printf("\n| attached pools | bridge heap per pool |\n|---|---|\n")
	for _, r := range memRows {
		fmt.Println(r)
	}
}

type bench struct {
	sims         []*xapisim.Sim
	names        []string
	m            *xenha.Manager
	srv          *server.Server
	conn         *grpc.ClientConn
	api          pb.XenHAServiceClient
	health       healthpb.HealthClient
	bytesPerPool float64
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func newBench(n int) *bench {
	b := &bench{}
	for i := range n {
		s, err := xapisim.New(xapisim.Config{Hosts: 3, VMsPerHost: 2, Seed: int64(i + 1), DisableHeartbeatSelfFence: true})
		if err != nil {
			log.Fatalf("sim %d: %v", i, err)
		}
		b.sims = append(b.sims, s)
	}
	b.m = xenha.NewManager(xenha.Options{
		XAPI:      xapi.Options{Timeout: 10 * time.Second, ProbeTimeout: 3 * time.Second},
		Retention: 100000, SubscriberBuffer: 4096,
	})
	before := heap()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, s := range b.sims {
		name := fmt.Sprintf("pool-%04d", i)
		b.names = append(b.names, name)
		info := s.Info()
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			v, _, err := b.m.Attach(context.Background(), xenha.PoolSpec{
				Name: name, Members: s.MemberURLs(),
				Credentials: xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
				TLS:         xapi.TLSOptions{AllowPlainHTTP: true},
			})
			if err != nil || !v.Observed {
				log.Fatalf("attach %s: observed=%v %v", name, v != nil && v.Observed, err)
			}
		}()
	}
	wg.Wait()
	b.bytesPerPool = float64(heap()-before) / float64(n)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	b.srv = server.New(server.NewService(b.m, nil), server.Options{})
	go b.srv.Serve(ln)
	b.conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	b.api, b.health = pb.NewXenHAServiceClient(b.conn), healthpb.NewHealthClient(b.conn)
	return b
}

func (b *bench) close() {
	b.conn.Close()
	b.srv.Stop(time.Second)
	b.m.Close()
	for _, s := range b.sims {
		s.Close()
	}
}

type result struct {
	n             int
	rate          float64
	p50, p99, max time.Duration
}

func summarize(lat []time.Duration, elapsed time.Duration) result {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Microsecond)
	}
	return result{n: len(lat), rate: float64(len(lat)) / elapsed.Seconds(), p50: q(0.50), p99: q(0.99), max: lat[len(lat)-1].Round(time.Microsecond)}
}

// load runs call from several workers for the configured duration.
func (b *bench) load(call func(ctx context.Context, i int) error) result {
	ctx := context.Background()
	for i := range 200 { // warm up
		call(ctx, i)
	}
	var mu sync.Mutex
	var all []time.Duration
	start := time.Now()
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			var lat []time.Duration
			for time.Since(start) < *duration {
				t := time.Now()
				if err := call(ctx, r.Int()); err != nil {
					log.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarize(all, time.Since(start))
}

// eventLatency toggles XenHA on the first pool's simulator and measures,
// on every stream, the time from the change to the delivery of the
// resulting HA_ENABLED / HA_DISABLED event.
func (b *bench) eventLatency(streams, toggles int) result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type delivery struct{ at time.Time }
	got := make(chan time.Time, streams*toggles*2)
	var ready sync.WaitGroup
	for range streams {
		mode, err := b.api.HAMode(ctx, &pb.HAModeRequest{Pool: b.names[0]})
		if err != nil {
			log.Fatal(err)
		}
		s, err := b.api.PoolEvents(ctx, &pb.PoolEventsRequest{Pool: b.names[0], AfterSequence: mode.GetEventSequence(), Incarnation: mode.GetEventIncarnation()})
		if err != nil {
			log.Fatal(err)
		}
		ready.Add(1)
		go func() {
			first := true
			for {
				r, err := s.Recv()
				if first {
					ready.Done()
					first = false
				}
				if err != nil {
					return
				}
				switch r.GetEvent().GetType() {
				case pb.EventType_EVENT_TYPE_HA_ENABLED, pb.EventType_EVENT_TYPE_HA_DISABLED:
					got <- time.Now()
				}
			}
		}()
	}
	// A first toggle proves every stream is receiving.
	sim := b.sims[0]
	must(sim.EnableHA(0, 60*time.Second))
	ready.Wait()
	drain(got, streams)
	var lat []time.Duration
	on := true
	for range toggles {
		start := time.Now()
		if on {
			must(sim.DisableHA(0))
		} else {
			must(sim.EnableHA(0, 60*time.Second))
		}
		on = !on
		for _, at := range drain(got, streams) {
			lat = append(lat, at.Sub(start))
		}
	}
	if on {
		must(sim.DisableHA(0))
	}
	return summarize(lat, time.Second)
}

func drain(c chan time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case t := <-c:
			out = append(out, t)
		case <-timeout:
			log.Fatalf("only %d of %d deliveries", len(out), n)
		}
	}
	return out
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
