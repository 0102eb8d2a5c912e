package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations bring the schema from version i to i+1. Append only: a
// released migration is never edited, so every bridge agrees on what
// version n means. Each is idempotent (IF NOT EXISTS).
var migrations = []string{
	// 1: one row per pool: its epoch, the controller and master the epoch
	// was raised for (so the bridges raise it once per change, not once
	// each), and the journal's last sequence number.
	`CREATE TABLE IF NOT EXISTS xenha_pools (
		pool        VARCHAR(191) NOT NULL PRIMARY KEY,
		epoch       BIGINT UNSIGNED NOT NULL DEFAULT 0,
		epoch_state VARCHAR(255) NOT NULL DEFAULT '',
		last_seq    BIGINT UNSIGNED NOT NULL DEFAULT 0
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	// 2: every journaled step, and the bridge that wrote it; by_step finds
	// an election's last promotion or result without reading the history.
	`CREATE TABLE IF NOT EXISTS xenha_journal (
		pool       VARCHAR(191) NOT NULL,
		seq        BIGINT UNSIGNED NOT NULL,
		at         DATETIME(6) NOT NULL,
		request_id VARCHAR(191) NOT NULL DEFAULT '',
		kind       VARCHAR(32) NOT NULL,
		step       VARCHAR(64) NOT NULL,
		host       VARCHAR(64) NOT NULL DEFAULT '',
		epoch      BIGINT UNSIGNED NOT NULL DEFAULT 0,
		ok         BOOLEAN NOT NULL,
		detail     TEXT NOT NULL,
		bridge     VARCHAR(191) NOT NULL DEFAULT '',
		PRIMARY KEY (pool, seq),
		KEY by_step (pool, kind, step, seq)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	// 3: the first result of each request id.
	`CREATE TABLE IF NOT EXISTS xenha_results (
		kind       VARCHAR(32) NOT NULL,
		pool       VARCHAR(191) NOT NULL,
		request_id VARCHAR(191) NOT NULL,
		result     MEDIUMBLOB NOT NULL,
		saved_at   DATETIME(6) NOT NULL,
		PRIMARY KEY (kind, pool, request_id)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	// 4: one lease per pool, keyed by the XenServer pool UUID so two
	// bridges that name a pool differently still contend for one lease.
	// instance tells two runs of one bridge id apart; both columns compare
	// bytes, as the bridge does.
	`CREATE TABLE IF NOT EXISTS xenha_leases (
		pool_uuid   VARCHAR(64) NOT NULL PRIMARY KEY,
		holder      VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
		instance    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		address     VARCHAR(255) NOT NULL DEFAULT '',
		term        BIGINT UNSIGNED NOT NULL,
		acquired_at DATETIME(6) NOT NULL,
		renewed_at  DATETIME(6) NOT NULL,
		expires_at  DATETIME(6) NOT NULL
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	// 5: the name each pool UUID is attached under, fixed by the first
	// bridge: the journal and the epoch are kept by name, so a bridge that
	// names the pool otherwise must not act on it.
	`CREATE TABLE IF NOT EXISTS xenha_pool_names (
		pool_uuid VARCHAR(64) NOT NULL PRIMARY KEY,
		pool_name VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
}

// SchemaVersion is the version this build writes.
var SchemaVersion = len(migrations)

// migrate applies the missing migrations under a named lock, so bridges
// starting together do not race, and refuses a schema from a newer build.
func (s *Store) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 6*s.timeout)
	defer cancel()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("mysqlstore: connect: %w", err)
	}
	defer conn.Close()
	// GET_LOCK without a wait, tried again: a wait inside the statement
	// would outlast the connection's read timeout.
	for got := int64(0); got != 1; {
		var n sql.NullInt64
		if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK('xenha_bridge_schema', 0)`).Scan(&n); err != nil {
			return fmt.Errorf("mysqlstore: schema lock: %w", err)
		}
		if got = n.Int64; got != 1 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("mysqlstore: another bridge held the schema lock for %s", 6*s.timeout)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	defer conn.ExecContext(context.Background(), `DO RELEASE_LOCK('xenha_bridge_schema')`)
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS xenha_schema (
		id TINYINT NOT NULL PRIMARY KEY, version INT NOT NULL) ENGINE=InnoDB`); err != nil {
		return fmt.Errorf("mysqlstore: schema table: %w", err)
	}
	var v int
	err = conn.QueryRowContext(ctx, `SELECT version FROM xenha_schema WHERE id = 1`).Scan(&v)
	switch {
	case err == sql.ErrNoRows:
		if _, err := conn.ExecContext(ctx, `INSERT INTO xenha_schema (id, version) VALUES (1, 0)`); err != nil {
			return fmt.Errorf("mysqlstore: schema version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("mysqlstore: schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("mysqlstore: the schema is at version %d, newer than this bridge's %d: upgrade the bridge", v, len(migrations))
	}
	// MySQL commits DDL implicitly: each step is recorded right after
	// it and is idempotent, so a bridge that dies midway resumes there.
	for ; v < len(migrations); v++ {
		if _, err := conn.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("mysqlstore: migration %d: %w", v+1, err)
		}
		if _, err := conn.ExecContext(ctx, `UPDATE xenha_schema SET version = ? WHERE id = 1`, v+1); err != nil {
			return fmt.Errorf("mysqlstore: migration %d: %w", v+1, err)
		}
	}
	return nil
}
