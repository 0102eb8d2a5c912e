//go:build !unix

package journal

import "os"

func unlock(*os.File) {}
