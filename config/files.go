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
		keyPEM, _ = readFile(r, "tls.key_file", c.TLS.KeyFile, true, maxSecretFileSize)
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
		if b, ok := readFile(r, "auth.token_file", c.Auth.TokenFile, true, maxSecretFileSize); ok {
			if tok := strings.TrimSpace(string(b)); tok == "" {
				r.fieldf("auth.token_file", "%s is empty: it must hold the API token", c.Auth.TokenFile)
			} else {
				c.Auth.token = newSecret(tok)
			}
		}
	}
	if m := &c.Journal.MySQL; c.Journal.Store == StoreMySQL && m.PasswordFile != "" {
		if b, ok := readFile(r, "journal.mysql.password_file", m.PasswordFile, true, maxSecretFileSize); ok {
			if pw := strings.TrimRight(string(b), "\r\n"); pw == "" {
				r.fieldf("journal.mysql.password_file", "%s is empty: it must hold the database password", m.PasswordFile)
			} else {
				m.password = newSecret(pw)
			}
		}
	}
	for i := range c.Pools {
		p := &c.Pools[i]
		path := index("pools", i)
		if p.PasswordFile == "" {
			r.fieldf(join(path, "password_file"), "is required: the file holding the password of username")
		} else if b, ok := readFile(r, join(path, "password_file"), p.PasswordFile, true, maxSecretFileSize); ok {
			if pw := strings.TrimRight(string(b), "\r\n"); pw == "" {
				r.fieldf(join(path, "password_file"), "%s is empty: it must hold the password", p.PasswordFile)
			} else {
				p.password = newSecret(pw)
			}
		}
		if p.TLS.CAFile != "" {
			checkCAFile(r, join(path, "tls.ca_file"), p.TLS.CAFile)
		}
		for j := range p.Fencing.BMCs {
			b := &p.Fencing.BMCs[j]
			field := join(index(join(path, "fencing.bmcs"), j), "password_file")
			if b.PasswordFile == "" {
				continue // reported by validate
			}
			if raw, ok := readFile(r, field, b.PasswordFile, true, maxSecretFileSize); ok {
				if pw := strings.TrimRight(string(raw), "\r\n"); pw == "" {
					r.fieldf(field, "%s is empty: it must hold the BMC password", b.PasswordFile)
				} else {
					b.password = newSecret(pw)
				}
			}
		}
	}
}

func checkCAFile(r *reporter, field, path string) {
	b, ok := readFile(r, field, path, false, maxPEMFileSize)
	if ok && !x509.NewCertPool().AppendCertsFromPEM(b) {
		r.fieldf(field, "%s holds no PEM certificate", path)
	}
}

// readFile reads a regular file named by field. A secret file must not be
// readable by other users.
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
	case secret && fi.Mode().Perm()&0o004 != 0:
		r.fieldf(field, "%s is readable by other users (mode %04o): it must be readable only by its owner/group (chmod 600 %s)",
			path, fi.Mode().Perm(), path)
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
