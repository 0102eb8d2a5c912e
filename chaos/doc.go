// Package chaos runs randomized, seeded fault schedules against the
// simulator with the bridge's decision engines in the loop, and checks the
// safety promises after every schedule. It holds only tests: `go test
// ./chaos` runs up to 200 schedules (those started within 90 s); `make
// chaos` runs thousands and `make chaos SEED=n` replays one. The bridges
// of a schedule share a fresh database on a real MariaDB
// (internal/mariadbtest) for their journal and pool leases, and a second
// bridge comes and goes as a fault.
package chaos
