package xenha

import "testing"

// A split brain is announced when it appears and again when the controller
// changes under it: a pool first observed during one must reach the healer,
// which acts only on pools CloudStack controls.
func TestASplitBrainIsAnnouncedToWhoeverMayHealIt(t *testing.T) {
	two := []string{"10.0.0.1", "10.0.0.2"}
	splits := func(old, cur *PoolView) int {
		n := 0
		for _, e := range diff(old, cur, CauseUnknown) {
			if e.Type == EventSplitBrain {
				n++
			}
		}
		return n
	}
	unobserved := &PoolView{Name: "p", Controller: ControllerNone, Claimers: two}
	observed := &PoolView{Name: "p", Observed: true, Controller: ControllerCloudStack, Claimers: two}
	one := &PoolView{Name: "p", Observed: true, Controller: ControllerCloudStack, Claimers: two[:1]}
	cases := []struct {
		what     string
		old, cur *PoolView
		want     int
	}{
		{"appears", one, observed, 1},
		{"first observed during it", unobserved, observed, 1},
		{"goes on", observed, observed, 0},
		{"ends", observed, one, 0},
	}
	for _, c := range cases {
		if got := splits(c.old, c.cur); got != c.want {
			t.Errorf("%s: %d split_brain events, want %d", c.what, got, c.want)
		}
	}
}
