package authtoken

import (
	"bytes"
	"context"
	"encoding/base64"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

type logBuffer = testlog.Buffer

func newLogger(tb testing.TB) (*slog.Logger, *logBuffer) {
	tb.Helper()
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

const goodToken = "k9Jv3xQ2mP8sR5tW7yZ1aB4cD6eF0gH2" // 32 visible characters

func TestLoad(t *testing.T) {
	tests := []struct {
		name          string
		content       *string // nil: no file
		wantGenerated bool
		wantToken     string // for loaded tokens
		wantWarn      string
		wantErr       string
	}{
		{name: "missing file generates", wantGenerated: true},
		{name: "empty file generates", content: ptr(""), wantGenerated: true},
		{name: "lone newline generates", content: ptr("\n"), wantGenerated: true},
		{name: "existing token is used", content: ptr(goodToken), wantToken: goodToken},
		{name: "trailing LF is dropped with a warning", content: ptr(goodToken + "\n"), wantToken: goodToken, wantWarn: "refuse tokens containing CR or LF"},
		{name: "trailing CRLF is dropped with a warning", content: ptr(goodToken + "\r\n"), wantToken: goodToken, wantWarn: "refuse tokens containing CR or LF"},
		{name: "short token refused", content: ptr("abc"), wantErr: "token is 3 characters, fewer than 32"},
		{name: "31 characters refused", content: ptr(goodToken[:31]), wantErr: "token is 31 characters, fewer than 32"},
		{name: "inner newline refused", content: ptr(goodToken + "\nmore"), wantErr: "byte 33 of the token is not visible ASCII"},
		{name: "space refused", content: ptr("abc " + goodToken), wantErr: "byte 4 of the token is not visible ASCII"},
		{name: "two trailing newlines refused", content: ptr(goodToken + "\n\n"), wantErr: "byte 33"},
		{name: "non-ASCII refused", content: ptr(goodToken + "é"), wantErr: "byte 33"},
		{name: "too long refused", content: ptr(strings.Repeat("a", maxLen+1)), wantErr: "4097 bytes, more than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth-token")
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			log, logs := newLogger(t)
			tok, err := Load(path, WithLogger(log))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), goodToken) {
					t.Fatalf("error reveals the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tok.Generated() != tt.wantGenerated {
				t.Fatalf("Generated() = %v, want %v", tok.Generated(), tt.wantGenerated)
			}
			want := tt.wantToken
			if tt.wantGenerated {
				want = checkGeneratedFile(t, path)
			}
			if !tok.Matches(want) {
				t.Fatalf("token does not match %q", want)
			}
			if tt.wantWarn != "" && !strings.Contains(logs.String(), tt.wantWarn) {
				t.Fatalf("logs lack %q:\n%s", tt.wantWarn, logs)
			}
			if tt.wantWarn == "" && strings.Contains(logs.String(), "level=WARN") {
				t.Fatalf("unexpected warning:\n%s", logs)
			}
			if strings.Contains(logs.String(), want) {
				t.Fatalf("logs reveal the token:\n%s", logs)
			}
		})
	}
}

// checkGeneratedFile checks the generated file's shape and returns the token in it.
func checkGeneratedFile(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode = %v, want 0640", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 43 || bytes.ContainsAny(raw, "\r\n=") {
		t.Fatalf("generated token %q: want 43 base64url characters, no padding, no newline", raw)
	}
	dec, err := base64.RawURLEncoding.DecodeString(string(raw))
	if err != nil || len(dec) != 32 {
		t.Fatalf("generated token does not decode to 32 bytes: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the token file (no temp files left)", len(entries))
	}
	return string(raw)
}

func ptr(s string) *string { return &s }

func TestLoadCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "auth-token")
	tok, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Matches(checkGeneratedFile(t, path)) {
		t.Fatal("generated token does not match the file")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		opts    []Option
		wantErr string
	}{
		{name: "parent is a file", path: filepath.Join(notDir, "auth-token"), wantErr: "auth token"},
		{name: "path is a directory", path: dir, wantErr: "load auth token"},
		{name: "zero poll interval", path: filepath.Join(dir, "t"), opts: []Option{WithPollInterval(0)}, wantErr: "poll interval 0s is not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestGeneratedTokensDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 8 {
		path := filepath.Join(t.TempDir(), "auth-token")
		if _, err := Load(path); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(raw)] {
			t.Fatalf("token %q generated twice", raw)
		}
		seen[string(raw)] = true
	}
}

func TestMatches(t *testing.T) {
	tok := loadToken(t, goodToken)
	tests := []struct {
		name string
		got  string
		want bool
	}{
		{name: "exact", got: goodToken, want: true},
		{name: "empty", got: "", want: false},
		{name: "prefix", got: goodToken[:len(goodToken)-1], want: false},
		{name: "longer", got: goodToken + "x", want: false},
		{name: "last byte differs", got: goodToken[:len(goodToken)-1] + "3", want: false},
		{name: "bearer prefix", got: "Bearer " + goodToken, want: false},
		{name: "with newline", got: goodToken + "\n", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tok.Matches(tt.got); got != tt.want {
				t.Fatalf("Matches(%q) = %v, want %v", tt.got, got, tt.want)
			}
		})
	}
	var zero Token
	if zero.Matches("") {
		t.Fatal("a Token with no token matched the empty string")
	}
}

func loadToken(t *testing.T, content string, opts ...Option) *Token {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth-token")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestMatchesIsConstantTime checks the source: Matches must compare through constantTimeEqual,
// which reads every byte and decides with subtle.ConstantTimeByteEq, and neither may compare
// strings or bytes with ==, bytes.Equal or strings.Compare, which return at the first differing
// byte and so leak how much of a guess was right. Comparing lengths, or with nil, is allowed.
func TestMatchesIsConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "authtoken.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string]*ast.BlockStmt{}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && (fn.Name.Name == "Matches" || fn.Name.Name == "constantTimeEqual") {
			bodies[fn.Name.Name] = fn.Body
		}
	}
	if len(bodies) != 2 {
		t.Fatalf("Matches or constantTimeEqual not found: %v", bodies)
	}
	isLen := func(e ast.Expr) bool {
		c, ok := e.(*ast.CallExpr)
		if !ok {
			return false
		}
		id, ok := c.Fun.(*ast.Ident)
		return ok && id.Name == "len"
	}
	found := map[string]bool{}
	variableTime := false
	for name, body := range bodies {
		ast.Inspect(body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok {
					switch id.Name + "." + n.Sel.Name {
					case "subtle.ConstantTimeByteEq", "subtle.ConstantTimeCompare":
						found[name+" decides in constant time"] = true
					case "bytes.Equal", "bytes.Compare", "strings.Compare", "strings.EqualFold":
						variableTime = true
					}
				}
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "constantTimeEqual" {
					found[name+" calls constantTimeEqual"] = true
				}
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					_, isNil := n.Y.(*ast.Ident)
					lit, isLit := n.Y.(*ast.BasicLit)
					if !isNil && !(isLit && lit.Kind == token.INT) && !(isLen(n.X) && isLen(n.Y)) {
						variableTime = true
					}
				}
			}
			return true
		})
	}
	if !found["Matches calls constantTimeEqual"] || !found["constantTimeEqual decides in constant time"] || variableTime {
		t.Fatalf("Matches: %v, uses a variable-time comparison = %v", found, variableTime)
	}
}

func TestWatchPollPicksUpChanges(t *testing.T) {
	log, logs := newLogger(t)
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tok := loadToken(t, goodToken, WithLogger(log), WithClock(fake), WithPollInterval(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		tok.watch(ctx, true, nil) // poll only
		done <- nil
	}()

	poll := func() {
		t.Helper()
		await.Timers(t, 30*time.Second, fake, 1)
		fake.Advance(time.Minute)
		await.Timers(t, 30*time.Second, fake, 1) // re-armed only after the reload finished
	}
	const second = "second-token-value-0123456789abcdef"
	steps := []struct {
		name      string
		write     *string // nil: remove the file
		wantMatch string
		wantNot   string
	}{
		{name: "unchanged", write: ptr(goodToken), wantMatch: goodToken},
		{name: "rotated", write: ptr(second + "\n"), wantMatch: second, wantNot: goodToken},
		{name: "emptied keeps the old token", write: ptr(""), wantMatch: second},
		{name: "still empty", write: ptr(""), wantMatch: second},
		{name: "invalid keeps the old token", write: ptr("has space"), wantMatch: second, wantNot: "has space"},
		{name: "removed keeps the old token", write: nil, wantMatch: second},
		{name: "back", write: ptr(goodToken), wantMatch: goodToken, wantNot: second},
	}
	for _, s := range steps {
		if s.write == nil {
			if err := os.Remove(tok.Path()); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(tok.Path(), []byte(*s.write), 0o600); err != nil {
			t.Fatal(err)
		}
		poll()
		if !tok.Matches(s.wantMatch) {
			t.Fatalf("%s: token does not match %q", s.name, s.wantMatch)
		}
		if s.wantNot != "" && tok.Matches(s.wantNot) {
			t.Fatalf("%s: token still matches %q", s.name, s.wantNot)
		}
	}
	cancel()
	if err := await.Receive(t, 30*time.Second, done, "Watch's return after cancel"); err != nil {
		t.Fatalf("Watch returned %v, want nil", err)
	}
	out := logs.String()
	if n := strings.Count(out, "file is empty"); n != 1 {
		t.Fatalf("empty file warned %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "auth token changed"); n != 2 {
		t.Fatalf("logged %d changes, want 2:\n%s", n, out)
	}
	for _, secret := range []string{goodToken, second} {
		if strings.Contains(out, secret) {
			t.Fatalf("logs reveal a token:\n%s", out)
		}
	}
}

// TestWatchFollowsSymlinkSwap updates the file the way the kubelet updates a Secret volume: the
// token is a symlink into ..data, and ..data is replaced by renaming a new symlink over it. The
// change must be noticed from the notification alone, with the poll far in the future.
func TestWatchFollowsSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	writeVersion := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "auth-token"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..2026_01_01_00_00_00.1", goodToken)
	if err := os.Symlink(filepath.Join("..data", "auth-token"), filepath.Join(dir, "auth-token")); err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tok, err := Load(filepath.Join(dir, "auth-token"), WithClock(fake), WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Matches(goodToken) || tok.Generated() {
		t.Fatal("mounted token not loaded")
	}
	reloads := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		tok.watch(ctx, false, func() { reloads <- struct{}{} })
		done <- nil
	}()
	await.Timers(t, 30*time.Second, fake, 1) // the watcher is set up before the poll timer is armed

	const second = "rotated-secret-value-0123456789abcdef"
	writeVersion("..2026_01_01_01_00_00.2", second)
	timeout := time.After(10 * time.Second)
	for !tok.Matches(second) {
		select {
		case <-reloads:
		case <-timeout:
			t.Fatal("symlink swap not noticed within 10s")
		}
	}
	if tok.Matches(goodToken) {
		t.Fatal("old token still accepted")
	}
	cancel()
	if err := await.Receive(t, 30*time.Second, done, "Watch's return after cancel"); err != nil {
		t.Fatalf("Watch returned %v, want nil", err)
	}
}

func BenchmarkMatches(b *testing.B) {
	path := filepath.Join(b.TempDir(), "auth-token")
	tok, err := Load(path)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		got  string
	}{
		{name: "match", got: string(raw)},
		{name: "first byte differs", got: "#" + string(raw[1:])},
		{name: "last byte differs", got: string(raw[:len(raw)-1]) + "#"},
		{name: "short guess", got: "x"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tok.Matches(c.got)
			}
		})
	}
}

// TestLoadRefusesWhatIsNotARegularFile: a symlink to /dev/zero made the sidecar read until it
// ran out of memory, and a FIFO blocked its start-up past SIGTERM. Both are refused at once,
// naming the file, as the projected token is.
func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("a"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		zero: "is not a regular file (Dc---------)",
		fifo: "is not a regular file (p---------)",
		dir:  "is a directory",
		big:  "is larger than 4098 bytes",
	} {
		done := make(chan error, 1)
		go func() { _, err := Load(path); done <- err }()
		err := await.Receive(t, 10*time.Second, done, "Load of "+path+" returning (a FIFO must not block it)")
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want an error naming the file and saying %q", path, err, want)
		}
	}
}
