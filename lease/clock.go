package lease

import "time"

// processStart anchors the monotonic fallback of bootClock.
var processStart = time.Now()
