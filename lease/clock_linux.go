package lease

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootClock is the time since boot, counting suspends: Go's monotonic
// clock (CLOCK_MONOTONIC) stops while the machine or VM is suspended, and
// a holder resumed from a long suspend must find its deadline passed.
func bootClock() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Since(processStart) // cannot happen on Linux ≥ 2.6.39
	}
	return time.Duration(ts.Nano())
}
