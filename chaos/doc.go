// Package chaos runs randomized, seeded fault schedules against the
// simulator with the bridge's decision engines in the loop, and checks the
// safety promises after every schedule. It holds only tests: `go test
// ./chaos` runs a few hundred schedules; `make chaos` runs thousands and
// `make chaos SEED=n` replays one.
package chaos
