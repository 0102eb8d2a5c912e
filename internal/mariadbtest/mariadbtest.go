// Package mariadbtest runs a real MariaDB server (Debian's mariadbd) on
// loopback for the tests of the shared store: one server per test binary,
// started on first use, and one fresh database per test.
//
// A test package using it calls Main from its TestMain, so the server is
// stopped when the tests end. Without mariadbd the tests fail, unless
// XENHA_SKIP_MARIADB=1 asks to skip them.
package mariadbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// User and its password are what the tests connect as (root stays on the
// unix socket).
const User = "xenha"

type server struct {
	addr     string
	password string
	dir      string
	cmd      *exec.Cmd
	exited   chan error
	root     *sql.DB // over the socket, to create databases
}

var (
	once   sync.Once
	srv    *server
	srvErr error
)

// Main runs the tests, then stops the server if one was started.
func Main(m *testing.M) {
	code := m.Run()
	if srv != nil {
		srv.stop()
	}
	os.Exit(code)
}

// Database is one test's database on the shared server.
type Database struct {
	Addr     string // host:port on loopback
	Name     string
	Password string
}

// DSN is the go-sql-driver DSN without the password, as configured.
func (d Database) DSN() string { return fmt.Sprintf("%s@tcp(%s)/%s", User, d.Addr, d.Name) }

// DSNVia is the DSN through another address (a proxy in front of the server).
func (d Database) DSNVia(addr string) string { return fmt.Sprintf("%s@tcp(%s)/%s", User, addr, d.Name) }

// New creates a database for the test (dropped when it ends).
func New(t testing.TB) Database {
	t.Helper()
	require(t)
	once.Do(func() {
		// The port is chosen free, then given to mariadbd: another
		// process may take it in between, so try again a few times.
		for range 3 {
			if srv, srvErr = start(); srvErr == nil {
				return
			}
		}
	})
	if srvErr != nil {
		t.Fatalf("mariadb: %v", srvErr)
	}
	name := "t_" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.root.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("mariadb: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.root.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
	})
	return Database{Addr: srv.addr, Name: name, Password: srv.password}
}

func require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(daemon()); err == nil {
		return
	}
	if os.Getenv("XENHA_SKIP_MARIADB") == "1" {
		t.Skip("mariadbd not installed (XENHA_SKIP_MARIADB=1)")
	}
	t.Fatal("mariadbd not found: these tests need a real MariaDB; apt-get install mariadb-server-core mariadb-client-core (or set XENHA_SKIP_MARIADB=1 to skip them)")
}

// daemon is the server binary: Debian puts mariadbd in /usr/sbin, which
// a non-root PATH may lack.
func daemon() string {
	for _, p := range []string{"mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return "mariadbd"
}

func start() (*server, error) {
	dir, err := os.MkdirTemp("", "xenha-mariadb-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, password: randHex(12)}
	fail := func(err error) (*server, error) {
		s.stop()
		return nil, err
	}
	asRoot := os.Geteuid() == 0
	install := []string{"--no-defaults", "--datadir=" + filepath.Join(dir, "data"),
		"--auth-root-authentication-method=socket", "--skip-test-db"}
	if asRoot {
		install = append(install, "--user=root")
	}
	if out, err := exec.Command("mariadb-install-db", install...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("mariadb-install-db: %v\n%s", err, out))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	s.addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(s.addr)
	sock := filepath.Join(dir, "sock")
	args := []string{"--no-defaults", "--datadir=" + filepath.Join(dir, "data"), "--socket=" + sock,
		"--port=" + port, "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--log-error=" + filepath.Join(dir, "error.log"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--innodb-buffer-pool-size=64M", "--max-connections=1000"}
	if asRoot {
		args = append(args, "--user=root")
	}
	s.cmd = exec.Command(daemon(), args...)
	// Killed with the test binary, even when a test panics or times out.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fail(err)
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.cmd.Wait() }()
	rootCfg := mysql.NewConfig()
	rootCfg.User, rootCfg.Net, rootCfg.Addr = currentUser(asRoot), "unix", sock
	conn, err := mysql.NewConnector(rootCfg)
	if err != nil {
		return fail(err)
	}
	s.root = sql.OpenDB(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := s.root.Ping(); err == nil {
			break
		}
		select {
		case err := <-s.exited:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return fail(fmt.Errorf("mariadbd exited: %v\n%s", err, log))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("mariadbd did not accept connections within 60 s"))
		}
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		for _, q := range []string{
			fmt.Sprintf("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'", User, host, s.password),
			fmt.Sprintf("GRANT ALL ON *.* TO '%s'@'%s'", User, host),
		} {
			if _, err := s.root.Exec(q); err != nil {
				return fail(fmt.Errorf("mariadb: %v", err))
			}
		}
	}
	return s, nil
}

// currentUser is the account mariadb-install-db made for the socket:
// root, or the user running it.
func currentUser(asRoot bool) string {
	if asRoot {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	out, _ := exec.Command("id", "-un").Output()
	return strings.TrimSpace(string(out))
}

func (s *server) stop() {
	if s.root != nil {
		s.root.Close()
	}
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	os.RemoveAll(s.dir)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// User creates an account with only the given privileges on d (e.g.
// "SELECT, INSERT"), for tests of what the bridge needs; it returns the
// DSN (without the password) and the password.
func (d Database) User(t testing.TB, privileges string) (dsn, password string) {
	t.Helper()
	name, password := "u_"+randHex(4), randHex(12)
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", name, password),
		fmt.Sprintf("GRANT %s ON %s.* TO '%s'@'127.0.0.1'", privileges, d.Name, name),
	} {
		if _, err := srv.root.Exec(q); err != nil {
			t.Fatalf("mariadb: %v", err)
		}
	}
	t.Cleanup(func() { srv.root.Exec(fmt.Sprintf("DROP USER '%s'@'127.0.0.1'", name)) })
	return fmt.Sprintf("%s@tcp(%s)/%s", name, d.Addr, d.Name), password
}
