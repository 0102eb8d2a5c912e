package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretFields are every secret file a configuration names, each with a
// document naming the file "secret" and the content it must hold.
var secretFields = []struct {
	field, doc string
	content    func(t testing.TB) []byte
}{
	{"pools[0].password_file", "pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: secret\n",
		func(testing.TB) []byte { return []byte(testPassword + "\n") }},
	{"pools[0].fencing.bmcs[0].password_file", "pools:\n  - name: a\n    members: [https://h]\n    username: root\n    password_file: pw\n" +
		"    fencing:\n      bmcs:\n        - {host: h, driver: ipmi, address: '10.0.1.1:623', username: admin, password_file: secret}\n",
		func(testing.TB) []byte { return []byte(testPassword + "\n") }},
	{"auth.token_file", "auth:\n  token_file: secret\n",
		func(testing.TB) []byte { return []byte(testToken + "\n") }},
	{"tls.key_file", "tls:\n  cert_file: tls.crt\n  key_file: secret\n",
		func(t testing.TB) []byte { _, key := testCert(t); return key }},
	{"journal.mysql.password_file", "journal:\n  store: mysql\n  mysql:\n    dsn: 'xenha@tcp(10.0.0.5:3306)/cloud_xenha'\n    password_file: secret\n",
		func(testing.TB) []byte { return []byte(testPassword + "\n") }},
}

// TestEverySecretFileFollowsTheSameRules: readable by its owner (and
// group) only, writable by its owner only, and not blank; one message
// style for every field.
func TestEverySecretFileFollowsTheSameRules(t *testing.T) {
	modes := []struct {
		mode  os.FileMode
		loose string // "" when the mode is fine
	}{
		{0o600, ""}, {0o400, ""}, {0o640, ""}, {0o440, ""}, {0o700, ""},
		{0o644, "readable by other users"},
		{0o604, "readable by other users"},
		{0o602, "writable by other users"},
		{0o660, "writable by its group"},
		{0o620, "writable by its group"},
		{0o622, "writable by its group and by other users"},
		{0o606, "readable and writable by other users"},
		{0o666, "readable and writable by other users and writable by its group"},
	}
	for _, sf := range secretFields {
		for _, m := range modes {
			t.Run(fmt.Sprintf("%s/%04o", sf.field, m.mode), func(t *testing.T) {
				dir := fixtureDir(t)
				path := writeFile(t, dir, "secret", sf.content(t), m.mode)
				_, err := Parse([]byte(sf.doc), "cfg.yaml", dir)
				if m.loose == "" {
					if err != nil {
						t.Fatalf("mode %04o refused: %v", m.mode, err)
					}
					return
				}
				want := fmt.Sprintf("%s: %s is %s (mode %04o): a secret file may be read only by its owner and group, "+
					"and written only by its owner (chmod 600 %s)", sf.field, path, m.loose, m.mode, path)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v\nwant it to contain %q", err, want)
				}
				_, key := testCert(t)
				assertNoSecret(t, err.Error(), key)
			})
		}
		for name, content := range map[string]string{"spaces": "        ", "newline": "\r\n", "tabs and newlines": " \t\n\t\n"} {
			t.Run(sf.field+"/"+name, func(t *testing.T) {
				dir := fixtureDir(t)
				path := writeFile(t, dir, "secret", []byte(content), 0o600)
				_, err := Parse([]byte(sf.doc), "cfg.yaml", dir)
				want := fmt.Sprintf("%s: %s is blank (nothing but whitespace): it must hold ", sf.field, path)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v\nwant it to contain %q", err, want)
				}
			})
		}
	}
}

// TestReadSecretFile: a command's secret file (--token-file) follows the
// configuration's rules and messages.
func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "token", []byte("  "+testToken+"\n"), 0o600)
	if tok, err := ReadSecretFile("--token-file", good, "the API token"); err != nil || tok != testToken {
		t.Fatalf("ReadSecretFile: %q %v", tok, err)
	}
	for name, f := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"group-writable": {testToken, 0o660, "--token-file: DIR/f is writable by its group (mode 0660)"},
		"world-readable": {testToken, 0o644, "--token-file: DIR/f is readable by other users (mode 0644)"},
		"blank":          {"   \n", 0o600, "--token-file: DIR/f is blank (nothing but whitespace): it must hold the API token"},
	} {
		path := writeFile(t, dir, "f", []byte(f.content), f.mode)
		_, err := ReadSecretFile("--token-file", path, "the API token")
		if want := strings.ReplaceAll(f.want, "DIR", dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
		if err != nil && strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: the token is in the error", name)
		}
	}
	if _, err := ReadSecretFile("--token-file", filepath.Join(dir, "none"), "the API token"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing: %v", err)
	}
}

// The API token is compared exactly by the bridge: it must be one word of
// printable ASCII, as a header carries it.
func TestTheTokenIsOneWordOfPrintableASCII(t *testing.T) {
	for name, content := range map[string]string{"a space inside": "tok en", "a tab inside": "tok\ten", "not ASCII": "tök-1", "a control character": "tok\x01"} {
		dir := fixtureDir(t)
		writeFile(t, dir, "secret", []byte(content+"\n"), 0o600)
		_, err := Parse([]byte("auth:\n  token_file: secret\n"), "cfg.yaml", dir)
		if err == nil || !strings.Contains(err.Error(), "auth.token_file: "+filepath.Join(dir, "secret")+" holds characters a bearer token cannot carry") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
