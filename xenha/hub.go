package xenha

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors a subscriber can get. The server maps them to OUT_OF_RANGE,
// INVALID_ARGUMENT and RESOURCE_EXHAUSTED.
var (
	ErrCompacted      = errors.New("the resume point is older than the events kept")
	ErrRestarted      = errors.New("the bridge restarted since that sequence was issued")
	ErrFutureSequence = errors.New("the resume point is ahead of the newest event")
	ErrSlowConsumer   = errors.New("the consumer fell too far behind")
)

// Hub numbers events, keeps the newest ones for resuming streams, and fans
// them out. Publishing never blocks: a subscriber whose queue is full is
// cut off (it can resume from its last sequence), so one slow consumer
// neither slows the others nor grows memory without bound.
type Hub struct {
	mu          sync.Mutex
	incarnation string
	retention   int
	buffer      int
	seq         uint64
	kept        []Event // oldest first, at most retention
	subs        map[*Subscription]struct{}
	now         func() time.Time
	published   map[EventType]uint64 // since start, by type
	cut         uint64               // subscriptions cut off as too slow
	closed      bool                 // Close ended every stream; no new one starts
}

// NewHub keeps retention events and gives each subscriber a queue of buffer.
func NewHub(retention, buffer int) *Hub {
	b := make([]byte, 8)
	rand.Read(b)
	return &Hub{
		incarnation: hex.EncodeToString(b),
		retention:   max(retention, 1),
		buffer:      max(buffer, 1),
		subs:        map[*Subscription]struct{}{},
		now:         time.Now,
		published:   map[EventType]uint64{},
	}
}

// Incarnation identifies this run; sequences restart with it.
func (h *Hub) Incarnation() string { return h.incarnation }

// Subscription is one stream's queue. Read C until Done is closed, then Err.
type Subscription struct {
	C    <-chan Event
	c    chan Event
	pool string
	done chan struct{}
	err  error
	hub  *Hub
}

// Done is closed when the subscription ends: the hub cut it off, the hub
// (its Manager) closed, or Close was called (see Err).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended: ErrSlowConsumer; ErrClosed when the
// hub closed (the bridge is shutting down); nil after the subscriber's own
// Close.
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.drop(s, nil)
}

func (h *Hub) drop(s *Subscription, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	s.err = err
	close(s.done)
	if errors.Is(err, ErrSlowConsumer) {
		h.cut++
	}
}

// Close ends every open subscription (Done closes, Err is ErrClosed: events
// queued before it stay readable from C) and refuses new ones with
// ErrClosed. Events published afterwards reach nobody and are not kept,
// and the events kept for resuming are released: no stream can resume
// from a closed hub. Manager.Close calls it once its watchers stopped, so
// that a stream ends instead of waiting for events that will never come
// (and its queue is freed once its reader lets go).
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.drop(s, ErrClosed)
	}
	h.kept = nil
}

// Publish numbers the events and delivers them.
func (h *Hub) Publish(evs ...Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range evs {
		h.seq++
		e.Seq, e.Incarnation = h.seq, h.incarnation
		if e.Time.IsZero() {
			e.Time = h.now()
		}
		h.published[e.Type]++
		if h.closed {
			continue
		}
		h.kept = append(h.kept, e)
		for s := range h.subs {
			if s.pool != "" && s.pool != e.Pool {
				continue
			}
			select {
			case s.c <- e:
			default:
				h.drop(s, ErrSlowConsumer)
			}
		}
	}
	if over := len(h.kept) - h.retention; over > 0 {
		h.kept = append([]Event(nil), h.kept[over:]...)
	}
}

// Subscribe starts a stream for one pool ("" for all) after the given
// sequence; events kept since then are queued first. Sequence 0 without an
// incarnation means "from the next event"; with one, "from the first".
// A closed hub refuses with ErrClosed.
func (h *Hub) Subscribe(pool string, after uint64, incarnation string) (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	var replay []Event
	if after > 0 || incarnation != "" {
		if incarnation != "" && incarnation != h.incarnation {
			return nil, ErrRestarted
		}
		if after > h.seq {
			return nil, fmt.Errorf("%w: %d > %d", ErrFutureSequence, after, h.seq)
		}
		oldest := h.seq + 1
		if len(h.kept) > 0 {
			oldest = h.kept[0].Seq
		}
		if after < oldest-1 {
			return nil, fmt.Errorf("%w: asked to resume after %d, oldest kept is %d", ErrCompacted, after, oldest)
		}
		for _, e := range h.kept {
			if e.Seq > after && (pool == "" || e.Pool == pool) {
				replay = append(replay, e)
			}
		}
	}
	c := make(chan Event, h.buffer+len(replay))
	for _, e := range replay {
		c <- e
	}
	s := &Subscription{C: c, c: c, pool: pool, done: make(chan struct{}), hub: h}
	h.subs[s] = struct{}{}
	return s, nil
}

// Newest returns the sequence of the last event published.
func (h *Hub) Newest() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// HubStats is what the hub has done since it started, for metrics.
type HubStats struct {
	Newest    uint64               // sequence of the last event published
	Published map[EventType]uint64 // events published, by type
	Streams   int                  // open subscriptions
	// MaxQueued is the lag of the slowest open stream: the events
	// published for it that it has not taken yet.
	MaxQueued int
	Cut       uint64 // subscriptions cut off as too slow (ErrSlowConsumer)
}

// Stats reads the hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := HubStats{Newest: h.seq, Published: make(map[EventType]uint64, len(h.published)), Streams: len(h.subs), Cut: h.cut}
	for t, n := range h.published {
		st.Published[t] = n
	}
	for s := range h.subs {
		st.MaxQueued = max(st.MaxQueued, len(s.c))
	}
	return st
}
