package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads, checks and returns the configuration file at path. Relative
// paths in it are resolved against the file's directory; the secret files
// it names are read.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read the configuration: " + fileReason(err)}
	}
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return Parse(data, path, dir)
}

// Parse checks the YAML configuration data and returns it. name is the
// file name used in messages; baseDir is the directory relative file paths
// are resolved against (the config file's directory). The files the
// configuration names are checked and the secret ones read, as by Load.
//
// An empty document is the Default configuration.
func Parse(data []byte, name, baseDir string) (*Config, error) {
	r := &reporter{file: name, lines: map[string]int{}}
	root, err := parseYAML(data)
	if err != nil {
		r.add(yamlError(name, err))
		return nil, r.err()
	}
	cfg := Default()
	d := &decoder{r: r, budget: 10_000 + 50*len(data)}
	if root != nil {
		d.config(root, cfg)
	}
	if r.failed() {
		// Type errors leave fields unset: checking the values now would
		// only add confusing follow-up errors.
		return nil, r.err()
	}
	cfg.resolvePaths(baseDir)
	cfg.validate(r, false)
	cfg.loadFiles(r)
	if err := r.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseYAML returns the document's root node, nil for an empty document.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	// A parser bug must not take the process down with it.
	defer func() {
		if p := recover(); p != nil {
			root, err = nil, fmt.Errorf("yaml: cannot parse the document (%v)", p)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("yaml: line %d: a second YAML document starts here: the configuration is one document", max(next.Line, 1))
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError rephrases a YAML syntax error as "file: line N: invalid YAML: ...".
func yamlError(name string, err error) *Error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &Error{File: name, Line: line, Msg: "invalid YAML: " + msg}
}

// decoder walks the YAML node tree along the schema. It does what a strict
// yaml.Decoder does (unknown keys, duplicate keys, aliases and merge keys)
// and also knows each field's path and line for the messages.
type decoder struct {
	r         *reporter
	budget    int // nodes left to visit: aliases and merge keys can multiply work
	exhausted bool
}

type pair struct{ key, val *yaml.Node }

const maxMergeDepth = 8

// spend counts one visited node and reports false once the budget is gone.
func (d *decoder) spend() bool {
	if d.exhausted {
		return false
	}
	d.budget--
	if d.budget <= 0 {
		d.exhausted = true
		d.r.linef(0, "the document is too complex (too many aliases or merge keys)")
		return false
	}
	return true
}

// deref follows an alias to its anchored node.
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 4; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.AliasNode ||
		(n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// describe names what a node holds, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return quoteShort(n.Value)
	}
	return "nothing"
}

func quoteShort(s string) string {
	const maxLen = 60
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return strconv.Quote(s)
}

// pairs returns the key/value pairs of mapping n with merge keys (<<)
// applied: the mapping's own keys win over merged ones, earlier merged
// mappings over later ones. Duplicate keys are errors.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) []pair {
	var own []pair
	var merged [][]pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend() {
			return nil
		}
		k, v := d.deref(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.r.linef(n.Content[i].Line, "keys must be plain words%s", in(path))
			continue
		}
		if isMerge(k) {
			if depth >= maxMergeDepth {
				d.r.linef(k.Line, "merge keys (<<) nested too deeply%s", in(path))
				continue
			}
			merged = append(merged, d.mergeSources(v, path, depth)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.r.linef(k.Line, "duplicate key %q%s (first at line %d)", k.Value, in(path), first.Line)
			continue
		}
		seen[k.Value] = k
		own = append(own, pair{k, v})
	}
	for _, m := range merged {
		for _, p := range m {
			if _, ok := seen[p.key.Value]; !ok {
				seen[p.key.Value] = p.key
				own = append(own, p)
			}
		}
	}
	return own
}

// mergeSources returns the pairs of the mapping(s) a merge key refers to.
func (d *decoder) mergeSources(v *yaml.Node, path string, depth int) [][]pair {
	line := v.Line
	v = d.deref(v)
	switch {
	case v != nil && v.Kind == yaml.MappingNode:
		return [][]pair{d.pairs(v, path, depth+1)}
	case v != nil && v.Kind == yaml.SequenceNode:
		var out [][]pair
		for _, item := range v.Content {
			if !d.spend() {
				return out
			}
			m := d.deref(item)
			if m == nil || m.Kind != yaml.MappingNode {
				d.r.linef(item.Line, "a merge key (<<) takes a mapping or a list of mappings%s", in(path))
				continue
			}
			out = append(out, d.pairs(m, path, depth+1))
		}
		return out
	}
	d.r.linef(line, "a merge key (<<) takes a mapping or a list of mappings%s", in(path))
	return nil
}

func in(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

// keyHints are extra words for unknown keys that are likely mistakes.
var keyHints = map[string]string{
	"password": "passwords are not written in the configuration: put it in a file only its owner can read and set password_file",
	"token":    "tokens are not written in the configuration: put it in a file only its owner can read and set token_file",
}

// object decodes mapping n at path: the value of each known key goes to
// its handler, a null value keeps the default, any other key is an error.
func (d *decoder) object(n *yaml.Node, path, what string, handlers map[string]func(v *yaml.Node, path string)) {
	n = d.deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		if path == "" {
			d.r.linef(n.Line, "the configuration must be a mapping of keys such as listen: and pools:, got %s", describe(n))
		} else {
			d.r.fieldf(path, "expected %s (a mapping of keys), got %s", what, describe(n))
		}
		return
	}
	for _, p := range d.pairs(n, path, 0) {
		key := p.key.Value
		h, ok := handlers[key]
		if !ok {
			d.r.linef(p.key.Line, "unknown key %q%s%s", key, in(path), suggest(key, handlers))
			continue
		}
		fp := join(path, key)
		d.r.lines[fp] = p.key.Line
		if v := d.deref(p.val); !isNull(v) {
			h(v, fp)
		}
	}
}

// suggest returns a hint for an unknown key: the known key it is closest to.
func suggest(key string, handlers map[string]func(*yaml.Node, string)) string {
	if h, ok := keyHints[strings.ToLower(key)]; ok {
		return " (" + h + ")"
	}
	best, bestDist := "", 3
	for _, k := range slices.Sorted(maps.Keys(handlers)) {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// editDistance is the Levenshtein distance, for short keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Scalars. Each reports its own error and returns ok=false on bad input.

func (d *decoder) str(v *yaml.Node, path string) (string, bool) {
	if v.Kind != yaml.ScalarNode {
		d.r.fieldf(path, "expected a string, got %s", describe(v))
		return "", false
	}
	return v.Value, true
}

func (d *decoder) boolean(v *yaml.Node, path string) (bool, bool) {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		var b bool
		if err := v.Decode(&b); err == nil {
			return b, true
		}
	}
	d.r.fieldf(path, "expected true or false%s, got %s", unquoteHint(v), describe(v))
	return false, false
}

func (d *decoder) integer(v *yaml.Node, path string) (int, bool) {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
		var i int64
		if err := v.Decode(&i); err == nil && i >= -1<<31 && i <= 1<<31-1 {
			return int(i), true
		}
		d.r.fieldf(path, "%s is out of range", describe(v))
		return 0, false
	}
	d.r.fieldf(path, "expected a whole number%s, got %s", unquoteHint(v), describe(v))
	return 0, false
}

// unquoteHint is for a quoted "true" or "100": YAML makes it a string.
func unquoteHint(v *yaml.Node) string {
	if v.Kind == yaml.ScalarNode && v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		return " (without quotes)"
	}
	return ""
}

var bareNumberRE = regexp.MustCompile(`^[-+]?(?:[0-9][0-9_]*(?:\.[0-9]*)?|\.[0-9]+)$`)

func (d *decoder) duration(v *yaml.Node, path string) (time.Duration, bool) {
	if v.Kind != yaml.ScalarNode {
		d.r.fieldf(path, "expected a duration such as \"120s\" or \"2m\", got %s", describe(v))
		return 0, false
	}
	s := strings.TrimSpace(v.Value)
	if tag := v.ShortTag(); tag == "!!int" || tag == "!!float" || (bareNumberRE.MatchString(s) && s != "0") {
		d.r.fieldf(path, "%s has no unit: add one, e.g. \"%ss\" for seconds (units: ms, s, m, h)", describe(v), strings.TrimLeft(s, "+"))
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.r.fieldf(path, "%s is not a duration: write a number with a unit, e.g. \"120s\" or \"2m\"", describe(v))
		return 0, false
	}
	return dur, true
}

func (d *decoder) strings(v *yaml.Node, path string) ([]string, bool) {
	if v.Kind != yaml.SequenceNode {
		d.r.fieldf(path, "expected a list, e.g. [https://10.0.0.11, https://10.0.0.12], got %s", describe(v))
		return nil, false
	}
	out := make([]string, 0, len(v.Content))
	ok := true
	for i, item := range v.Content {
		if !d.spend() {
			return nil, false
		}
		ip := index(path, i)
		d.r.lines[ip] = item.Line
		item = d.deref(item)
		if isNull(item) {
			d.r.fieldf(ip, "empty entry")
			ok = false
			continue
		}
		s, good := d.str(item, ip)
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

// The schema.

func (d *decoder) config(root *yaml.Node, c *Config) {
	d.object(root, "", "", map[string]func(*yaml.Node, string){
		"listen": func(v *yaml.Node, p string) { d.setStr(&c.Listen, v, p) },
		"log": func(v *yaml.Node, p string) {
			d.object(v, p, "the log settings", map[string]func(*yaml.Node, string){
				"level": func(v *yaml.Node, p string) {
					if s, ok := d.str(v, p); ok {
						c.Log.Level = strings.ToLower(s)
					}
				},
				"json": func(v *yaml.Node, p string) { d.setBool(&c.Log.JSON, v, p) },
			})
		},
		"tls": func(v *yaml.Node, p string) {
			d.object(v, p, "the server TLS settings", map[string]func(*yaml.Node, string){
				"cert_file":      func(v *yaml.Node, p string) { d.setStr(&c.TLS.CertFile, v, p) },
				"key_file":       func(v *yaml.Node, p string) { d.setStr(&c.TLS.KeyFile, v, p) },
				"client_ca_file": func(v *yaml.Node, p string) { d.setStr(&c.TLS.ClientCAFile, v, p) },
			})
		},
		"auth": func(v *yaml.Node, p string) {
			d.object(v, p, "the API authentication settings", map[string]func(*yaml.Node, string){
				"token_file": func(v *yaml.Node, p string) { d.setStr(&c.Auth.TokenFile, v, p) },
			})
		},
		"events": func(v *yaml.Node, p string) {
			d.object(v, p, "the event settings", map[string]func(*yaml.Node, string){
				"retention":         func(v *yaml.Node, p string) { d.setInt(&c.Events.Retention, v, p) },
				"subscriber_buffer": func(v *yaml.Node, p string) { d.setInt(&c.Events.SubscriberBuffer, v, p) },
			})
		},
		"journal": func(v *yaml.Node, p string) {
			d.object(v, p, "the journal settings", map[string]func(*yaml.Node, string){
				"store": func(v *yaml.Node, p string) { d.setStr(&c.Journal.Store, v, p) },
				"path":  func(v *yaml.Node, p string) { d.setStr(&c.Journal.Path, v, p) },
				"mysql": func(v *yaml.Node, p string) {
					d.object(v, p, "the MySQL settings", map[string]func(*yaml.Node, string){
						"dsn":           func(v *yaml.Node, p string) { d.setStr(&c.Journal.MySQL.DSN, v, p) },
						"password_file": func(v *yaml.Node, p string) { d.setStr(&c.Journal.MySQL.PasswordFile, v, p) },
						"timeout":       func(v *yaml.Node, p string) { d.setDuration(&c.Journal.MySQL.Timeout, v, p) },
					})
				},
			})
		},
		"lease": func(v *yaml.Node, p string) {
			d.object(v, p, "the lease settings", map[string]func(*yaml.Node, string){
				"id":        func(v *yaml.Node, p string) { d.setStr(&c.Lease.ID, v, p) },
				"advertise": func(v *yaml.Node, p string) { d.setStr(&c.Lease.Advertise, v, p) },
				"duration":  func(v *yaml.Node, p string) { d.setDuration(&c.Lease.Duration, v, p) },
				"renew":     func(v *yaml.Node, p string) { d.setDuration(&c.Lease.Renew, v, p) },
				"margin":    func(v *yaml.Node, p string) { d.setDuration(&c.Lease.Margin, v, p) },
			})
		},
		"metrics": func(v *yaml.Node, p string) {
			d.object(v, p, "the metrics settings", map[string]func(*yaml.Node, string){
				"listen":       func(v *yaml.Node, p string) { d.setStr(&c.Metrics.Listen, v, p) },
				"allow_remote": func(v *yaml.Node, p string) { d.setBool(&c.Metrics.AllowRemote, v, p) },
			})
		},
		"pools": func(v *yaml.Node, p string) { c.Pools = d.pools(v, p) },
	})
}

func (d *decoder) fencing(v *yaml.Node, path string, f *Fencing) {
	d.object(v, path, "the pool's fencing settings", map[string]func(*yaml.Node, string){
		"levels": func(v *yaml.Node, fp string) {
			if l, ok := d.strings(v, fp); ok {
				f.Levels = l
			}
		},
		"delay":             func(v *yaml.Node, fp string) { d.setDuration(&f.Delay, v, fp) },
		"storm_percent":     func(v *yaml.Node, fp string) { d.setInt(&f.StormPercent, v, fp) },
		"heartbeat_timeout": func(v *yaml.Node, fp string) { d.setDuration(&f.HeartbeatTimeout, v, fp) },
		"bmcs": func(v *yaml.Node, fp string) {
			if v.Kind != yaml.SequenceNode {
				d.r.fieldf(fp, "expected a list of BMCs (each starting with \"- host: ...\"), got %s", describe(v))
				return
			}
			for i, item := range v.Content {
				if !d.spend() {
					return
				}
				ip := index(fp, i)
				d.r.lines[ip] = item.Line
				var b BMC
				d.object(item, ip, "a BMC", map[string]func(*yaml.Node, string){
					"host":          func(v *yaml.Node, p string) { d.setStr(&b.Host, v, p) },
					"driver":        func(v *yaml.Node, p string) { d.setStr(&b.Driver, v, p) },
					"address":       func(v *yaml.Node, p string) { d.setStr(&b.Address, v, p) },
					"username":      func(v *yaml.Node, p string) { d.setStr(&b.Username, v, p) },
					"password_file": func(v *yaml.Node, p string) { d.setStr(&b.PasswordFile, v, p) },
					"ca_file":       func(v *yaml.Node, p string) { d.setStr(&b.CAFile, v, p) },
					"pin_sha256":    func(v *yaml.Node, p string) { d.setStr(&b.PinSHA256, v, p) },
				})
				f.BMCs = append(f.BMCs, b)
			}
		},
	})
}

func (d *decoder) pools(v *yaml.Node, path string) []Pool {
	if v.Kind != yaml.SequenceNode {
		d.r.fieldf(path, "expected a list of pools (each starting with \"- name: ...\"), got %s", describe(v))
		return nil
	}
	pools := make([]Pool, 0, len(v.Content))
	for i, item := range v.Content {
		if !d.spend() {
			return nil
		}
		ip := index(path, i)
		d.r.lines[ip] = item.Line
		if isNull(d.deref(item)) {
			d.r.fieldf(ip, "empty pool entry")
			continue
		}
		pools = append(pools, d.pool(item, ip))
	}
	if len(pools) == 0 {
		return nil
	}
	return pools
}

func (d *decoder) pool(n *yaml.Node, path string) Pool {
	p := defaultPool()
	d.object(n, path, "a pool", map[string]func(*yaml.Node, string){
		"name": func(v *yaml.Node, fp string) { d.setStr(&p.Name, v, fp) },
		"members": func(v *yaml.Node, fp string) {
			if m, ok := d.strings(v, fp); ok {
				p.Members = m
			}
		},
		"username":              func(v *yaml.Node, fp string) { d.setStr(&p.Username, v, fp) },
		"password_file":         func(v *yaml.Node, fp string) { d.setStr(&p.PasswordFile, v, fp) },
		"policy":                func(v *yaml.Node, fp string) { d.setStr(&p.Policy, v, fp) },
		"storage_timeout":       func(v *yaml.Node, fp string) { d.setDuration(&p.StorageTimeout, v, fp) },
		"probe_interval":        func(v *yaml.Node, fp string) { d.setDuration(&p.ProbeInterval, v, fp) },
		"master_probe_interval": func(v *yaml.Node, fp string) { d.setDuration(&p.MasterProbeInterval, v, fp) },
		"unreachable_master":    func(v *yaml.Node, fp string) { d.setStr(&p.UnreachableMaster, v, fp) },
		"fencing":               func(v *yaml.Node, fp string) { d.fencing(v, fp, &p.Fencing) },
		"autopilot":             func(v *yaml.Node, fp string) { d.setBool(&p.Autopilot, v, fp) },
		"autopilot_delay":       func(v *yaml.Node, fp string) { d.setDuration(&p.AutopilotDelay, v, fp) },
		"preferred_masters": func(v *yaml.Node, fp string) {
			if m, ok := d.strings(v, fp); ok {
				p.PreferredMasters = m
			}
		},
		"tls": func(v *yaml.Node, fp string) {
			d.object(v, fp, "the pool's TLS settings", map[string]func(*yaml.Node, string){
				"ca_file":          func(v *yaml.Node, fp string) { d.setStr(&p.TLS.CAFile, v, fp) },
				"pin_sha256":       func(v *yaml.Node, fp string) { d.setStr(&p.TLS.PinSHA256, v, fp) },
				"allow_plain_http": func(v *yaml.Node, fp string) { d.setBool(&p.TLS.AllowPlainHTTP, v, fp) },
			})
		},
	})
	return p
}

func (d *decoder) setStr(dst *string, v *yaml.Node, path string) {
	if s, ok := d.str(v, path); ok {
		*dst = s
	}
}

func (d *decoder) setBool(dst *bool, v *yaml.Node, path string) {
	if b, ok := d.boolean(v, path); ok {
		*dst = b
	}
}

func (d *decoder) setInt(dst *int, v *yaml.Node, path string) {
	if i, ok := d.integer(v, path); ok {
		*dst = i
	}
}

func (d *decoder) setDuration(dst *time.Duration, v *yaml.Node, path string) {
	if t, ok := d.duration(v, path); ok {
		*dst = t
	}
}

// resolvePaths makes relative file paths relative to baseDir.
func (c *Config) resolvePaths(baseDir string) {
	res := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(baseDir, *p)
		}
	}
	res(&c.TLS.CertFile)
	res(&c.TLS.KeyFile)
	res(&c.TLS.ClientCAFile)
	res(&c.Auth.TokenFile)
	res(&c.Journal.Path)
	res(&c.Journal.MySQL.PasswordFile)
	for i := range c.Pools {
		res(&c.Pools[i].PasswordFile)
		res(&c.Pools[i].TLS.CAFile)
		for j := range c.Pools[i].Fencing.BMCs {
			res(&c.Pools[i].Fencing.BMCs[j].PasswordFile)
			res(&c.Pools[i].Fencing.BMCs[j].CAFile)
		}
	}
}
