//go:build unix

package journal

import (
	"os"
	"syscall"
)

// unlock releases bbolt's lock on a file it panicked with: closing the
// descriptor is not enough while bbolt's mapping of it remains.
func unlock(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
