package xenha

import (
	"errors"
	"testing"
	"time"
)

func recv(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case e := <-s.C:
		return e
	case <-time.After(2 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func TestHubResume(t *testing.T) {
	h := NewHub(5, 16)
	for range 3 {
		h.Publish(Event{Pool: "a", Type: EventHostDown})
	}
	h.Publish(Event{Pool: "b", Type: EventHostUp})
	s, err := h.Subscribe("a", 1, h.Incarnation())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e := recv(t, s); e.Seq != 2 || e.Incarnation != h.Incarnation() {
		t.Fatalf("first replayed %+v", e)
	}
	if e := recv(t, s); e.Seq != 3 {
		t.Fatalf("second replayed %+v", e)
	}
	h.Publish(Event{Pool: "b"}, Event{Pool: "a", Type: EventMasterLost})
	if e := recv(t, s); e.Seq != 6 || e.Type != EventMasterLost {
		t.Fatalf("live event %+v (pool b must be filtered out)", e)
	}
}

func TestHubOutOfRange(t *testing.T) {
	h := NewHub(3, 16)
	for range 10 {
		h.Publish(Event{Pool: "a"})
	}
	if _, err := h.Subscribe("", 6, ""); !errors.Is(err, ErrCompacted) {
		t.Fatalf("after 6 with 8..10 kept: %v", err)
	}
	if s, err := h.Subscribe("", 7, ""); err != nil {
		t.Fatalf("after 7 is the oldest resumable point: %v", err)
	} else {
		s.Close()
	}
	if _, err := h.Subscribe("", 11, ""); !errors.Is(err, ErrFutureSequence) {
		t.Fatalf("future: %v", err)
	}
	if _, err := h.Subscribe("", 9, "another-run"); !errors.Is(err, ErrRestarted) {
		t.Fatalf("other incarnation: %v", err)
	}
}

func TestHubCutsOffASlowConsumerOnly(t *testing.T) {
	h := NewHub(100, 4)
	slow, _ := h.Subscribe("", 0, "")
	fast, _ := h.Subscribe("", 0, "")
	for i := range 10 {
		h.Publish(Event{Pool: "a"})
		if e := recv(t, fast); e.Seq != uint64(i+1) {
			t.Fatalf("fast consumer got %d", e.Seq)
		}
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("the slow consumer was not cut off")
	}
	if !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Fatalf("slow err %v", slow.Err())
	}
	if n := len(slow.C); n != 4 {
		t.Fatalf("the slow consumer keeps what it was given: %d", n)
	}
	select {
	case <-fast.Done():
		t.Fatal("the fast consumer was cut off too")
	default:
	}
}

func TestHubResumeFromZeroWithIncarnation(t *testing.T) {
	h := NewHub(10, 16)
	h.Publish(Event{Pool: "a"})
	s, err := h.Subscribe("", 0, h.Incarnation())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e := recv(t, s); e.Seq != 1 {
		t.Fatalf("from 0 with an incarnation: %+v", e)
	}
	live, _ := h.Subscribe("", 0, "")
	defer live.Close()
	if len(live.C) != 0 {
		t.Fatal("from 0 without an incarnation replays nothing")
	}
}

// Close ends every open subscription (what was queued stays readable) and
// refuses new ones: a stream never waits for events that will not come
// (issue 14: the chaos harness leaked every subscription a closed manager
// left open).
func TestHubCloseEndsEverySubscription(t *testing.T) {
	h := NewHub(10, 16)
	a, err := h.Subscribe("a", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	all, err := h.Subscribe("", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	h.Publish(Event{Pool: "a", Type: EventMasterLost})
	h.Close()
	for _, s := range []*Subscription{a, all} {
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a subscription outlived the hub")
		}
		if !errors.Is(s.Err(), ErrClosed) {
			t.Fatalf("Err = %v, want ErrClosed", s.Err())
		}
		if e := recv(t, s); e.Type != EventMasterLost {
			t.Fatalf("the queued event was lost: %+v", e)
		}
	}
	if _, err := h.Subscribe("a", 0, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("a subscription after Close: %v", err)
	}
	h.Publish(Event{Pool: "a"}) // reaches nobody, panics nowhere
}
