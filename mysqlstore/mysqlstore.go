// Package mysqlstore is the shared store of several bridges (one per
// CloudStack management server): the journal, request results and epochs
// of journal.Store, and the pool leases of lease.Backend, in tables of
// their own in MySQL or MariaDB — the database every CloudStack
// deployment already runs. The bridge creates and migrates its tables
// itself.
//
// Every statement runs under a deadline: a bridge cut off from the
// database gets an error, never a hang, and the lease keeper turns that
// into "stop acting" before the lease can expire elsewhere.
package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
)

// Config opens a Store.
type Config struct {
	// DSN in go-sql-driver/mysql's form, without the password:
	// user@tcp(host:3306)/dbname. Options in it are kept.
	DSN string
	// Password, read by the caller from a file only root can read.
	Password string
	// Timeout bounds every statement and the connection (default 5 s).
	Timeout time.Duration
	// Bridge is this bridge's id, written beside each journal entry.
	Bridge string
}

// Store is journal.Store and lease.Backend on MySQL.
type Store struct {
	db      *sql.DB
	timeout time.Duration
	bridge  string
}

var (
	_ journal.Store = (*Store)(nil)
	_ lease.Backend = (*Store)(nil)
)

// Open connects and brings the schema up to date.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		// The driver's message names what is wrong, never the password.
		return nil, fmt.Errorf("mysqlstore: dsn: %v", err)
	}
	if cfg.Password != "" {
		mc.Passwd = cfg.Password
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	mc.ParseTime = true
	mc.Loc = time.UTC
	mc.Timeout, mc.ReadTimeout, mc.WriteTimeout = cfg.Timeout, cfg.Timeout, cfg.Timeout
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["time_zone"] = "'+00:00'"
	// A statement waiting on a row lock gives up with the statement's own
	// deadline instead of InnoDB's 50 s.
	mc.Params["innodb_lock_wait_timeout"] = fmt.Sprint(max(1, int(cfg.Timeout.Seconds())))
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysqlstore: %v", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(16)
	db.SetConnMaxLifetime(5 * time.Minute)
	s := &Store{db: db, timeout: cfg.Timeout, bridge: cfg.Bridge}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// exec runs one statement, in autocommit. The store never spans a
// transaction over several round trips: a bridge cut off between two of
// them would hold row locks until the server noticed, and block every
// other bridge's journal and lease meanwhile. InnoDB may still pick a
// statement as a deadlock victim (1213) or time out its lock wait (1205):
// then it is run again, a few times, as MySQL's manual advises.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	var err error
	for range 5 {
		if res, err = s.db.ExecContext(ctx, query, args...); !retryable(err) || ctx.Err() != nil {
			return res, err
		}
	}
	return res, err
}

func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// Append stores e with the next sequence number of its pool: bridges
// appending at once get distinct, rising numbers (a bridge that dies
// between the two statements leaves one unused).
func (s *Store) Append(e journal.Entry) (journal.Entry, error) {
	if e.Pool == "" {
		return e, errors.New("journal: an entry needs a pool")
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Bridge = s.bridge
	ctx, cancel := s.ctx()
	defer cancel()
	err := func() error {
		// The pool's counter, raised in one statement that also reports
		// the new value (LAST_INSERT_ID(expr) comes back in the OK
		// packet): concurrent appends queue on the row, never deadlock.
		res, err := s.exec(ctx, `INSERT INTO xenha_pools (pool, last_seq) VALUES (?, LAST_INSERT_ID(1))
			ON DUPLICATE KEY UPDATE last_seq = LAST_INSERT_ID(last_seq + 1)`, e.Pool)
		if err != nil {
			return err
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return err
		}
		e.Seq = uint64(seq)
		_, err = s.exec(ctx, `INSERT INTO xenha_journal (pool, seq, at, request_id, kind, step, host, epoch, ok, detail, bridge)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Pool, e.Seq, e.Time, e.RequestID, e.Kind, e.Step, e.Host, e.Epoch, e.OK, e.Detail, e.Bridge)
		return err
	}()
	if err != nil {
		return e, fmt.Errorf("journal: append to %s: %w", e.Pool, err)
	}
	return e, nil
}

// Entries returns up to limit entries of a pool after a sequence number,
// whichever bridge wrote them.
func (s *Store) Entries(pool string, after uint64, limit int) ([]journal.Entry, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	q := `SELECT seq, at, request_id, kind, step, host, epoch, ok, detail, bridge FROM xenha_journal
		WHERE pool = ? AND seq > ? ORDER BY seq`
	args := []any{pool, after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("journal: entries of %s: %w", pool, err)
	}
	defer rows.Close()
	var out []journal.Entry
	for rows.Next() {
		e := journal.Entry{Pool: pool}
		if err := rows.Scan(&e.Seq, &e.Time, &e.RequestID, &e.Kind, &e.Step, &e.Host, &e.Epoch, &e.OK, &e.Detail, &e.Bridge); err != nil {
			return nil, fmt.Errorf("journal: entries of %s: %w", pool, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: entries of %s: %w", pool, err)
	}
	return out, nil
}

// Last returns a pool's newest entry of a kind and step, through the
// by_step index.
func (s *Store) Last(pool, kind, step string, okOnly bool) (journal.Entry, bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	e := journal.Entry{Pool: pool}
	q := `SELECT seq, at, request_id, kind, step, host, epoch, ok, detail, bridge FROM xenha_journal
		WHERE pool = ? AND kind = ? AND step = ?`
	if okOnly {
		q += ` AND ok`
	}
	err := s.db.QueryRowContext(ctx, q+` ORDER BY seq DESC LIMIT 1`, pool, kind, step).
		Scan(&e.Seq, &e.Time, &e.RequestID, &e.Kind, &e.Step, &e.Host, &e.Epoch, &e.OK, &e.Detail, &e.Bridge)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return e, false, nil
	case err != nil:
		return e, false, fmt.Errorf("journal: last %s %s of %s: %w", kind, step, pool, err)
	}
	return e, true, nil
}

// Result returns the stored result of a request, if any.
func (s *Store) Result(kind, pool, requestID string) ([]byte, bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT result FROM xenha_results WHERE kind = ? AND pool = ? AND request_id = ?`,
		kind, pool, requestID).Scan(&b)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("journal: result of %s: %w", requestID, err)
	}
	return b, true, nil
}

// SaveResult keeps the first result of a request; later ones are ignored.
func (s *Store) SaveResult(kind, pool, requestID string, result []byte) error {
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := s.exec(ctx, `INSERT IGNORE INTO xenha_results (kind, pool, request_id, result, saved_at)
		VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))`, kind, pool, requestID, result)
	if err != nil {
		return fmt.Errorf("journal: save result of %s: %w", requestID, err)
	}
	return nil
}

// Epoch returns a pool's epoch (0 if none).
func (s *Store) Epoch(pool string) (uint64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var n uint64
	err := s.db.QueryRowContext(ctx, `SELECT epoch FROM xenha_pools WHERE pool = ?`, pool).Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("journal: epoch of %s: %w", pool, err)
	}
	return n, nil
}

// AdvanceEpoch records a pool's controller and master (state) as a
// bridge at epoch current sees them; see journal.Store. One statement
// decides, under the row's lock: a state already recorded (by another
// bridge that saw the change first) keeps the epoch, a new one raises it.
// MySQL assigns left to right: epoch reads the old epoch_state.
func (s *Store) AdvanceEpoch(pool, state string, current uint64) (uint64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var n uint64
	_, err := s.exec(ctx, `INSERT INTO xenha_pools (pool, epoch, epoch_state) VALUES (?, ?, ?)
		ON DUPLICATE KEY UPDATE
			epoch = IF(epoch_state = VALUES(epoch_state), GREATEST(epoch, ?), GREATEST(epoch, ?) + 1),
			epoch_state = VALUES(epoch_state)`, pool, current+1, state, current, current)
	if err == nil {
		err = s.db.QueryRowContext(ctx, `SELECT epoch FROM xenha_pools WHERE pool = ?`, pool).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("journal: advance the epoch of %s: %w", pool, err)
	}
	return n, nil
}

// Acquire takes or renews a pool's lease; see lease.Backend. Expiry is
// the database's clock (UTC_TIMESTAMP(6)) plus d, never a bridge's.
func (s *Store) Acquire(ctx context.Context, c lease.Claim, d time.Duration) (lease.Record, error) {
	pool := c.Pool.UUID
	rec := lease.Record{Pool: pool}
	us := d.Microseconds()
	err := func() error {
		// The first bridge fixes the pool's name; one naming it otherwise
		// would keep a journal and an epoch of its own: it gets no lease.
		if _, err := s.exec(ctx, `INSERT IGNORE INTO xenha_pool_names (pool_uuid, pool_name) VALUES (?, ?)`, pool, c.Pool.Name); err != nil {
			return err
		}
		var name string
		if err := s.db.QueryRowContext(ctx, `SELECT pool_name FROM xenha_pool_names WHERE pool_uuid = ?`, pool).Scan(&name); err != nil {
			return err
		}
		if name != c.Pool.Name {
			return fmt.Errorf("%w: %q there, %q here; attach it under one name on every bridge", lease.ErrNameConflict, name, c.Pool.Name)
		}
		// Renew (this bridge's run holds it), or take over an expired
		// lease, in one conditional statement. MySQL assigns left to
		// right: term and acquired_at read the old holder and instance
		// before they are overwritten.
		res, err := s.exec(ctx, `UPDATE xenha_leases SET
			term = IF(holder = ? AND instance = ?, term, term + 1),
			acquired_at = IF(holder = ? AND instance = ?, acquired_at, UTC_TIMESTAMP(6)),
			holder = ?, instance = ?, address = ?, renewed_at = UTC_TIMESTAMP(6),
			expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
			WHERE pool_uuid = ? AND ((holder = ? AND instance = ?) OR expires_at <= UTC_TIMESTAMP(6))`,
			c.ID, c.Instance, c.ID, c.Instance, c.ID, c.Instance, c.Address, us, pool, c.ID, c.Instance)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// No row yet, or another's live lease, which INSERT IGNORE
			// leaves alone.
			if _, err := s.exec(ctx, `INSERT IGNORE INTO xenha_leases (pool_uuid, holder, instance, address, term, acquired_at, renewed_at, expires_at)
				VALUES (?, ?, ?, ?, 1, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)`,
				pool, c.ID, c.Instance, c.Address, us); err != nil {
				return err
			}
		}
		// Whoever the row names now holds the lease: this bridge's run,
		// if it renewed above, for at least d from before it asked.
		var remaining int64
		err = s.db.QueryRowContext(ctx, `SELECT holder, instance, address, term, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at)
			FROM xenha_leases WHERE pool_uuid = ?`, pool).Scan(&rec.Holder, &rec.Instance, &rec.Address, &rec.Term, &remaining)
		rec.Remaining = time.Duration(remaining) * time.Microsecond
		return err
	}()
	if err != nil {
		return rec, fmt.Errorf("lease of %s: %w", pool, err)
	}
	return rec, nil
}

// Release ends the claim's lease now, so another bridge can take it at
// once; another run's lease, even under the same id, is left alone.
func (s *Store) Release(ctx context.Context, c lease.Claim) error {
	_, err := s.exec(ctx, `UPDATE xenha_leases SET expires_at = UTC_TIMESTAMP(6)
		WHERE pool_uuid = ? AND holder = ? AND instance = ? AND expires_at > UTC_TIMESTAMP(6)`, c.Pool.UUID, c.ID, c.Instance)
	if err != nil {
		return fmt.Errorf("release the lease of %s: %w", c.Pool.UUID, err)
	}
	return nil
}

// Stats reads the journal's size for the metrics: the entries of each
// pool (counted on the primary key) and the bytes InnoDB reports for the
// bridge's tables.
func (s *Store) Stats() (journal.Stats, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	st := journal.Stats{Entries: map[string]uint64{}}
	rows, err := s.db.QueryContext(ctx, `SELECT pool, COUNT(*) FROM xenha_journal GROUP BY pool`)
	if err != nil {
		return st, fmt.Errorf("journal stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pool string
		var n uint64
		if err := rows.Scan(&pool, &n); err != nil {
			return st, fmt.Errorf("journal stats: %w", err)
		}
		st.Entries[pool] = n
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("journal stats: %w", err)
	}
	err = s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES
		WHERE table_schema = DATABASE() AND table_name LIKE 'xenha\_%'`).Scan(&st.Bytes)
	if err != nil {
		return st, fmt.Errorf("journal stats: %w", err)
	}
	return st, nil
}
