//go:build !linux

package lease

import "time"

// bootClock, off Linux: the monotonic clock, which may stop during a
// suspend (the margin is then the only defence; the bridge ships for
// Linux).
func bootClock() time.Duration { return time.Since(processStart) }
