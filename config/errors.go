package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is one problem in a configuration. Parse and Load return either one
// *Error or several joined with errors.Join (use errors.As to get the
// first). Its message never holds a secret.
type Error struct {
	// File is the configuration's name as given to Parse or Load; "" for a
	// pool validated at run time.
	File string
	// Line is the 1-based line in File, 0 when unknown.
	Line int
	// Field is the path of the field concerned, e.g. pools[1].storage_timeout;
	// "" for errors about the document itself (syntax, unknown keys).
	Field string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	add := func(s string) {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(s)
	}
	if e.File != "" {
		add(e.File)
	}
	if e.Line > 0 {
		add("line " + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		add(e.Field)
	}
	add(e.Msg)
	return b.String()
}

// maxErrors caps how many problems one error reports.
const maxErrors = 20

// reporter collects errors, with the lines of the fields when they come
// from a file.
type reporter struct {
	file  string
	lines map[string]int // field path -> line; nil outside a file
	errs  []*Error
	more  int // errors dropped past maxErrors
}

// lineOf returns the line of path, or of its closest ancestor that has one
// (a defaulted field is reported at its pool's line).
func (r *reporter) lineOf(path string) int {
	for path != "" {
		if l, ok := r.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

// fieldf reports a problem with a field, at the field's line.
func (r *reporter) fieldf(path, format string, args ...any) {
	r.add(&Error{File: r.file, Line: r.lineOf(path), Field: path, Msg: fmt.Sprintf(format, args...)})
}

// linef reports a problem at a line, not tied to one field.
func (r *reporter) linef(line int, format string, args ...any) {
	r.add(&Error{File: r.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (r *reporter) add(e *Error) {
	if len(r.errs) >= maxErrors {
		r.more++
		return
	}
	r.errs = append(r.errs, e)
}

func (r *reporter) failed() bool { return len(r.errs) > 0 }

// err returns nil, the one error, or all of them joined.
func (r *reporter) err() error {
	switch {
	case len(r.errs) == 0:
		return nil
	case len(r.errs) == 1:
		return r.errs[0]
	}
	errs := make([]error, 0, len(r.errs)+1)
	for _, e := range r.errs {
		errs = append(errs, e)
	}
	if r.more > 0 {
		errs = append(errs, fmt.Errorf("(and %d more problems)", r.more))
	}
	return errors.Join(errs...)
}

// join builds a field path: join("pools[1]", "tls") = "pools[1].tls".
func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func index(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}
