package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
)

const (
	maxSecretFileSize = 64 << 10
	maxPEMFileSize    = 8 << 20
)

// loadFiles checks every file the configuration names and reads the
// secrets. Messages name the field and the path, never a file's content.
func (c *Config) loadFiles(r *reporter) {
	var certPEM, keyPEM []byte
	if c.TLS.CertFile != "" {
		certPEM, _ = readFile(r, "tls.cert_file", c.TLS.CertFile, false, maxPEMFileSize)
	}
	if c.TLS.KeyFile != "" {
		if key, ok := readSecret(r, "tls.key_file", c.TLS.KeyFile, "the private key", keepAll); ok {
			keyPEM = []byte(key)
		}
	}
	if certPEM != nil && keyPEM != nil {
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			// crypto/tls's messages describe the problem, not the key.
			r.fieldf("tls.cert_file", "%s and tls.key_file %s are not a usable certificate and private key: %s",
				c.TLS.CertFile, c.TLS.KeyFile, strings.TrimPrefix(err.Error(), "tls: "))
		}
	}
	if c.TLS.ClientCAFile != "" {
		checkCAFile(r, "tls.client_ca_file", c.TLS.ClientCAFile)
	}
	if c.Auth.TokenFile != "" {
		if tok, ok := readSecret(r, "auth.token_file", c.Auth.TokenFile, "the API token", strings.TrimSpace); ok {
			if !headerSafe(tok) {
				// Compared exactly, it must travel exactly: one word of a header.
				r.fieldf("auth.token_file", "%s holds characters a bearer token cannot carry in a header: want printable ASCII without spaces",
					c.Auth.TokenFile)
			} else {
				c.Auth.token = newSecret(tok)
			}
		}
	}
	if m := &c.Journal.MySQL; c.Journal.Store == StoreMySQL && m.PasswordFile != "" {
		if pw, ok := readSecret(r, "journal.mysql.password_file", m.PasswordFile, "the database password", trimNewline); ok {
			m.password = newSecret(pw)
		}
	}
	for i := range c.Pools {
		p := &c.Pools[i]
		path := index("pools", i)
		if p.PasswordFile == "" {
			r.fieldf(join(path, "password_file"), "is required: the file holding the password of username")
		} else if pw, ok := readSecret(r, join(path, "password_file"), p.PasswordFile, "the password", trimNewline); ok {
			p.password = newSecret(pw)
		}
		if p.TLS.CAFile != "" {
			checkCAFile(r, join(path, "tls.ca_file"), p.TLS.CAFile)
		}
		for j := range p.Fencing.BMCs {
			b := &p.Fencing.BMCs[j]
			field := join(index(join(path, "fencing.bmcs"), j), "password_file")
			if b.CAFile != "" {
				checkCAFile(r, join(index(join(path, "fencing.bmcs"), j), "ca_file"), b.CAFile)
			}
			if b.PasswordFile == "" {
				continue // reported by validate
			}
			if pw, ok := readSecret(r, field, b.PasswordFile, "the BMC password", trimNewline); ok {
				b.password = newSecret(pw)
			}
		}
	}
}

// headerSafe reports whether s is printable ASCII without spaces, as a
// bearer token sent in a header must be.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// How a secret's content is cut: a password keeps every character but the
// line ending (spaces may be part of it), a token loses surrounding
// whitespace, a private key (PEM) is kept whole.
func trimNewline(s string) string { return strings.TrimRight(s, "\r\n") }
func keepAll(s string) string     { return s }

// readSecret reads a secret file named by field, under the rules every
// secret file follows, in one place: a regular file (symbolic links are
// followed) of at most maxSecretFileSize bytes, readable only by its owner
// and group, writable only by its owner, and not blank. what names what
// it must hold, for the messages. The content is returned cut by trim.
func readSecret(r *reporter, field, path, what string, trim func(string) string) (string, bool) {
	b, ok := readFile(r, field, path, true, maxSecretFileSize)
	if !ok {
		return "", false
	}
	if strings.TrimSpace(string(b)) == "" {
		r.fieldf(field, "%s is blank (nothing but whitespace): it must hold %s", path, what)
		return "", false
	}
	return trim(string(b)), true
}

// ReadSecretFile reads a secret file named outside a configuration (a
// command's --token-file, named by name in the messages) under the rules
// of the configuration's secret files, and returns its content without
// surrounding whitespace. what says what it must hold ("the API token").
func ReadSecretFile(name, path, what string) (string, error) {
	r := &reporter{}
	s, ok := readSecret(r, name, path, what, strings.TrimSpace)
	if !ok {
		return "", r.err()
	}
	return s, nil
}

func checkCAFile(r *reporter, field, path string) {
	b, ok := readFile(r, field, path, false, maxPEMFileSize)
	if ok && !x509.NewCertPool().AppendCertsFromPEM(b) {
		r.fieldf(field, "%s holds no PEM certificate", path)
	}
}

// readFile reads a regular file named by field. A secret file must be
// readable by no other user and writable by nobody but its owner.
func readFile(r *reporter, field, path string, secret bool, limit int64) ([]byte, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		r.fieldf(field, "cannot read %s: %s", path, fileReason(err))
		return nil, false
	}
	if !checkFileInfo(r, field, path, fi, secret, limit) {
		return nil, false
	}
	f, err := os.Open(path)
	if err != nil {
		r.fieldf(field, "cannot read %s: %s", path, fileReason(err))
		return nil, false
	}
	defer f.Close()
	// The path may have changed since the Stat: check what was opened.
	if fi, err = f.Stat(); err != nil {
		r.fieldf(field, "cannot read %s: %s", path, fileReason(err))
		return nil, false
	}
	if !checkFileInfo(r, field, path, fi, secret, limit) {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		r.fieldf(field, "cannot read %s: %s", path, fileReason(err))
		return nil, false
	}
	if int64(len(b)) > limit {
		r.fieldf(field, "%s is too large (more than %d bytes)", path, limit)
		return nil, false
	}
	return b, true
}

func checkFileInfo(r *reporter, field, path string, fi fs.FileInfo, secret bool, limit int64) bool {
	switch {
	case fi.IsDir():
		r.fieldf(field, "%s is a directory, not a file", path)
	case !fi.Mode().IsRegular():
		r.fieldf(field, "%s is not a regular file", path)
	case secret && fi.Mode().Perm()&looseBits != 0:
		r.fieldf(field, "%s is %s (mode %04o): a secret file may be read only by its owner and group, and written only by its owner (chmod 600 %s)",
			path, looseness(fi.Mode().Perm()), fi.Mode().Perm(), path)
	case fi.Size() == 0:
		// Also keeps pseudo-files (/proc, whose size is 0) from being read:
		// some block.
		r.fieldf(field, "%s is empty", path)
	case fi.Size() > limit:
		r.fieldf(field, "%s is too large (%d bytes, at most %d)", path, fi.Size(), limit)
	default:
		return true
	}
	return false
}

// looseBits are the permissions a secret file must not have: read by
// other users, write by its group or by other users.
const looseBits = 0o026

// looseness says which of looseBits perm has, as in "PATH is ...".
func looseness(perm fs.FileMode) string {
	var parts []string
	switch {
	case perm&0o006 == 0o006:
		parts = append(parts, "readable and writable by other users")
	case perm&0o004 != 0:
		parts = append(parts, "readable by other users")
	case perm&0o002 != 0:
		parts = append(parts, "writable by other users")
	}
	if perm&0o020 != 0 {
		parts = append(parts, "writable by its group")
	}
	if len(parts) == 2 && perm&0o004 == 0 {
		return parts[1] + " and by other users" // writable by its group and by other users
	}
	return strings.Join(parts, " and ")
}

// fileReason says why a file could not be read, without repeating the path.
func fileReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
