package xenha

import "testing"

func TestHubStats(t *testing.T) {
	h := NewHub(10, 2)
	if st := h.Stats(); st.Newest != 0 || st.Streams != 0 || st.MaxQueued != 0 || len(st.Published) != 0 {
		t.Fatalf("empty hub: %+v", st)
	}
	slow, err := h.Subscribe("a", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.Subscribe("b", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	h.Publish(Event{Pool: "a", Type: EventHostDown}, Event{Pool: "a", Type: EventHostDown}, Event{Pool: "b", Type: EventHostUp})
	st := h.Stats()
	if st.Newest != 3 || st.Streams != 2 || st.MaxQueued != 2 || st.Cut != 0 ||
		st.Published[EventHostDown] != 2 || st.Published[EventHostUp] != 1 {
		t.Fatalf("after 3 events: %+v", st)
	}
	h.Publish(Event{Pool: "a", Type: EventMasterLost}) // the third for a: its queue of 2 is full
	<-slow.Done()
	st = h.Stats()
	if st.Streams != 1 || st.Cut != 1 || st.MaxQueued != 1 {
		t.Fatalf("after the slow stream was cut: %+v", st)
	}
	slow.Close()
	if h.Stats().Cut != 1 {
		t.Fatal("closing a cut stream counted it again")
	}
}
