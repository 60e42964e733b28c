package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Setting is one command-line setting: a flag, the environment variables read when the flag is
// absent (the first non-empty one wins), a default, and how its text is applied. Every command
// of the sidecar and the uploader declares its settings this way, on a Binder.
type Setting struct {
	// Flag is the flag's name without dashes.
	Flag string
	// Envs are the variables read, in order, when the flag is not given.
	Envs []string
	// Default is applied when neither the flag nor a variable gives a value.
	Default string
	// DefaultFrom, when set, computes the default from the environment instead.
	DefaultFrom func(getenv func(string) string) string
	// DefaultHelp is shown in the help instead of Default, for computed or absent defaults.
	DefaultHelp string
	// Kind is the value's type as the help shows it; Usage says what the setting does.
	Kind, Usage string
	// Bool marks a flag that takes no value.
	Bool bool
	// Set applies one value; its error says what is wrong with the value, without it.
	Set func(v string) error
	// SetList, instead of Set, takes a repeatable flag's values, or the variable's value split at
	// commas.
	SetList func(vs []string) error
}

// SetString is a Setting's Set that stores the value in dst.
func SetString(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }

// SetBool is a Setting's Set for a Bool flag or variable: true or false (as strconv.ParseBool
// reads them) into dst.
func SetBool(dst *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		*dst = b
		return nil
	}
}

// origin records the text a value was parsed from and the variable it came from, so that
// errors quote what the user wrote ("15m", not "15m0s") and where.
type origin struct {
	env    string // the variable that supplied the value; "" for a flag or a default
	raw    string
	byFlag bool
}

// Binder binds Settings to a FlagSet: the flags are registered by Add, parsed by the caller's
// FlagSet.Parse, and Resolve then applies flag, variable or default to each setting.
type Binder struct {
	fs       *flag.FlagSet
	settings []Setting
	raws     []*rawValue
	given    map[string]origin
}

// NewBinder returns a Binder registering its settings on fs.
func NewBinder(fs *flag.FlagSet) *Binder {
	return &Binder{fs: fs, given: map[string]origin{}}
}

// Add registers settings as flags.
func (b *Binder) Add(settings ...Setting) {
	for _, s := range settings {
		raw := &rawValue{isBool: s.Bool, isList: s.SetList != nil}
		b.fs.Var(raw, s.Flag, s.Usage)
		b.settings = append(b.settings, s)
		b.raws = append(b.raws, raw)
	}
}

// Parse parses args with the Binder's FlagSet: flag.ErrHelp as it is, any other problem as
// "parse arguments: ...", and a positional argument as one, since every setting is a flag.
func (b *Binder) Parse(args []string) error {
	if err := b.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("parse arguments: %w", err)
	}
	if b.fs.NArg() > 0 {
		return fmt.Errorf("parse arguments: unexpected argument %q", b.fs.Arg(0))
	}
	return nil
}

// Resolve applies to every setting the flag's value, else the first variable set, else the
// default, after the FlagSet was parsed. It returns every value that could not be applied.
func (b *Binder) Resolve(getenv func(string) string) []*FieldError {
	byFlag := map[string]bool{}
	b.fs.Visit(func(f *flag.Flag) { byFlag[f.Name] = true })
	var problems []*FieldError
	for i, s := range b.settings {
		o, ok := origin{raw: b.raws[i].s, byFlag: byFlag[s.Flag]}, byFlag[s.Flag]
		vals := b.raws[i].vals
		if !ok {
			for _, env := range s.Envs {
				if v := getenv(env); v != "" {
					o, ok = origin{env: env, raw: v}, true
					vals = strings.Split(v, ",")
					break
				}
			}
		}
		if !ok {
			o.raw = s.Default
			if s.DefaultFrom != nil {
				o.raw = s.DefaultFrom(getenv)
			}
		}
		b.given[s.Flag] = o
		if o.raw == "" && !ok {
			continue
		}
		var err error
		if s.SetList != nil {
			if !ok {
				vals = strings.Split(o.raw, ",")
			}
			err = s.SetList(vals)
		} else {
			err = s.Set(o.raw)
		}
		if err != nil {
			problems = append(problems, b.Problem(s.Flag, "", err.Error()))
		}
	}
	return problems
}

// ByFlag reports whether the flag name was given on the command line (not by a variable).
func (b *Binder) ByFlag(name string) bool { return b.given[name].byFlag }

// Env is the variable that gave the flag name its value, or "" (given as a flag, or defaulted).
func (b *Binder) Env(name string) string { return b.given[name].env }

// Problem builds the error for a setting, quoting its value as given when Resolve saw it and
// formatted otherwise, and naming the variable that gave it (or every variable it reads).
func (b *Binder) Problem(flagName, formatted, problem string) *FieldError {
	return problemFor(b.given, envsOf(b.settings, flagName), flagName, formatted, problem)
}

func problemFor(given map[string]origin, envs []string, flagName, formatted, problem string) *FieldError {
	e := &FieldError{Flag: flagName, Env: strings.Join(envs, " or "), Value: formatted, Problem: problem}
	if o, ok := given[flagName]; ok {
		e.Value = o.raw
		if o.env != "" {
			e.Env = o.env
		}
	}
	e.Value = redactURL(e.Value)
	return e
}

func envsOf(settings []Setting, flagName string) []string {
	for _, s := range settings {
		if s.Flag == flagName {
			return s.Envs
		}
	}
	return nil
}

// WriteUsage writes one help line per setting that keep accepts (all when keep is nil): the
// flag, what it does, its variables and its default.
func (b *Binder) WriteUsage(w io.Writer, keep func(Setting) bool) {
	writeUsage(w, b.settings, keep)
}

// writeUsage writes the help lines, then extra lines ("  --flag\twhat it does") aligned with them.
func writeUsage(w io.Writer, settings []Setting, keep func(Setting) bool, extra ...string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range settings {
		if keep != nil && !keep(s) {
			continue
		}
		arg := " " + s.Kind
		if s.Bool {
			arg = ""
		}
		def := s.DefaultHelp
		if def == "" {
			def = "default " + s.Default
		}
		envs := "$" + strings.Join(s.Envs, ", $")
		fmt.Fprintf(tw, "  --%s%s\t%s [%s] (%s)\n", s.Flag, arg, s.Usage, envs, def)
	}
	for _, line := range extra {
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
}

// rawValue is a flag.Value that keeps the text given, so conversion errors can quote it. A
// repeatable flag keeps every value given, in order.
type rawValue struct {
	s      string
	vals   []string
	isBool bool
	isList bool
}

func (v *rawValue) String() string { return v.s }
func (v *rawValue) Set(s string) error {
	if v.isList {
		v.vals = append(v.vals, s)
		s = strings.Join(v.vals, ",")
	}
	v.s = s
	return nil
}
func (v *rawValue) IsBoolFlag() bool { return v.isBool }

// redactURL hides the password of a value that is a URL with one: an error must not print it.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	if _, ok := u.User.Password(); !ok {
		return v
	}
	return u.Redacted()
}
