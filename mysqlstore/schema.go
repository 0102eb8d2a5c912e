package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations bring the schema from version i to i+1. Append only: a
// released migration is never edited, so every bridge agrees on what
// version n means. Each is idempotent (IF NOT EXISTS).
var migrations = []string{
	// 1: one row per pool: its epoch and the journal's last sequence.
	`CREATE TABLE IF NOT EXISTS xenha_pools (
		pool     VARCHAR(191) NOT NULL PRIMARY KEY,
		epoch    BIGINT UNSIGNED NOT NULL DEFAULT 0,
		last_seq BIGINT UNSIGNED NOT NULL DEFAULT 0
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	// 2: every journaled step, and the bridge that wrote it.
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
		PRIMARY KEY (pool, seq)
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
	`CREATE TABLE IF NOT EXISTS xenha_leases (
		pool_uuid   VARCHAR(64) NOT NULL PRIMARY KEY,
		holder      VARCHAR(191) NOT NULL,
		address     VARCHAR(255) NOT NULL DEFAULT '',
		term        BIGINT UNSIGNED NOT NULL,
		acquired_at DATETIME(6) NOT NULL,
		renewed_at  DATETIME(6) NOT NULL,
		expires_at  DATETIME(6) NOT NULL
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
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK('xenha_bridge_schema', ?)`, int(s.timeout.Seconds())*4).Scan(&got); err != nil {
		return fmt.Errorf("mysqlstore: schema lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("mysqlstore: another bridge holds the schema lock")
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
