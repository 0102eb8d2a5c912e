// Package chaos runs randomized, seeded fault schedules against the
// simulator with the bridge's decision engines in the loop, and checks the
// safety promises after every schedule, and one liveness promise: once
// the faults stop, a CloudStack-controlled pool whose master loses power
// (its BMC working) is served by a new master within a bound. It holds
// only tests: `go test ./chaos` runs up to 200 schedules (those started
// within 45 s), then 200 short ones that must leave no memory or
// goroutine behind (TestChaosReleasesEverything, skipped with -short);
// `make chaos` runs thousands from a fresh seed base (-chaos.first,
// printed) and `make chaos SEED=n` replays one. The bridges of a schedule
// share a fresh database on a real MariaDB (internal/mariadbtest) for
// their journal and pool leases, dropped when the schedule ends, and a
// second bridge comes and goes as a fault.
package chaos
