package deploy

import (
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// The binaries the image ships, each built from ./cmd/<name> into /<name>.
func binaries() []string { return []string{"sidecar", "uploader", "webhook"} }

// repoRoot is two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// dockerfile is the parsed Dockerfile.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	warnings []string
}

func parseDockerfile(t *testing.T, root string) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	var d dockerfile
	for _, w := range res.Warnings {
		d.warnings = append(d.warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		d.warnings = append(d.warnings, rule+": "+msg)
	}})
	d.stages, d.metaArgs, err = instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	return d
}

func commandsOf[T any](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// buildCommands returns the go build invocations of a RUN line, split at &&.
func buildCommands(run *instructions.RunCommand) []string {
	var out []string
	for _, part := range strings.Split(strings.Join(run.CmdLine, " "), "&&") {
		if strings.Contains(part, "go build") {
			out = append(out, strings.TrimSpace(part))
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	d := parseDockerfile(t, root)
	if len(d.warnings) > 0 {
		t.Errorf("BuildKit warns about the Dockerfile: %q", d.warnings)
	}
	if len(d.stages) != 2 {
		t.Fatalf("%d stages, want a builder and a runtime stage", len(d.stages))
	}
	build, final := d.stages[0], d.stages[1]

	t.Run("builder", func(t *testing.T) {
		if build.Name != "build" {
			t.Errorf("builder stage is named %q, want build (the runtime stage copies --from=build)", build.Name)
		}
		if build.Platform != "$BUILDPLATFORM" {
			t.Errorf("builder platform %q, want $BUILDPLATFORM: it must cross-compile, not run under emulation", build.Platform)
		}
		m := regexp.MustCompile(`^golang:(\d+\.\d+\.\d+)-bookworm@sha256:[0-9a-f]{64}$`).FindStringSubmatch(build.BaseName)
		if m == nil {
			t.Fatalf("builder image %q, want golang:<x.y.z>-bookworm@sha256:<digest>", build.BaseName)
		}
		// The toolchain must satisfy go.mod: same minor, not older.
		raw, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		goVersion, toolchain := goDirectives(string(raw))
		if goVersion == "" {
			t.Fatal("go.mod has no go directive")
		}
		need := goVersion
		if toolchain != "" {
			need = toolchain
		}
		if minor(m[1]) != minor(goVersion) || versionLess(m[1], need) {
			t.Errorf("builder Go %s does not satisfy go.mod (go %s, needs >= %s of the same minor)", m[1], goVersion, need)
		}
		var args []string
		for _, a := range commandsOf[*instructions.ArgCommand](build) {
			for _, kv := range a.Args {
				args = append(args, kv.Key)
			}
		}
		for _, want := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
			if !slices.Contains(args, want) {
				t.Errorf("builder declares ARG %v, missing %s", args, want)
			}
		}
		runs := commandsOf[*instructions.RunCommand](build)
		var cmds []string
		for _, r := range runs {
			cmds = append(cmds, buildCommands(r)...)
		}
		if len(cmds) != len(binaries()) {
			t.Fatalf("found go build lines %q, want one per binary %v", cmds, binaries())
		}
		for i, name := range binaries() {
			words, err := shell.NewLex('\\').ProcessWords(cmds[i], shell.EnvsFromSlice(nil))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"CGO_ENABLED=0", "GOOS=", "GOARCH=", "go", "build", "-trimpath", "-o", "/out/" + name, "./cmd/" + name} {
				if !slices.Contains(words, want) {
					t.Errorf("%s build %q lacks %q", name, words, want)
				}
			}
			i := slices.Index(words, "-ldflags")
			if i < 0 || i+1 >= len(words) {
				t.Errorf("%s build has no -ldflags", name)
				continue
			}
			ld := strings.Fields(words[i+1])
			for _, want := range []string{"-s", "-w", "-X", "main.version="} {
				if !slices.Contains(ld, want) {
					t.Errorf("%s -ldflags %q lacks %q (stripped and version-stamped)", name, ld, want)
				}
			}
		}
		// The raw lines must take GOOS/GOARCH/VERSION from the build args.
		for _, c := range cmds {
			for _, want := range []string{"GOOS=$TARGETOS", "GOARCH=$TARGETARCH", "main.version=${VERSION}"} {
				if !strings.Contains(c, want) {
					t.Errorf("build line %q lacks %q", c, want)
				}
			}
		}
	})

	t.Run("runtime", func(t *testing.T) {
		if !regexp.MustCompile(`^gcr\.io/distroless/static-debian12:nonroot@sha256:[0-9a-f]{64}$`).MatchString(final.BaseName) {
			t.Errorf("runtime image %q, want gcr.io/distroless/static-debian12:nonroot@sha256:<digest>", final.BaseName)
		}
		if runs := commandsOf[*instructions.RunCommand](final); len(runs) > 0 {
			t.Errorf("runtime stage has %d RUN instructions; it has no shell", len(runs))
		}
		users := commandsOf[*instructions.UserCommand](final)
		if len(users) != 1 || users[0].User != "65532:65532" {
			t.Errorf("USER %v, want exactly 65532:65532 (numeric, so runAsNonRoot can verify it)", users)
		}
		eps := commandsOf[*instructions.EntrypointCommand](final)
		if len(eps) != 1 || eps[0].PrependShell || !slices.Equal(eps[0].CmdLine, []string{"/sidecar"}) {
			t.Errorf("ENTRYPOINT %+v, want exec form [\"/sidecar\"]", eps)
		}
		copied := map[string]string{}
		for _, c := range commandsOf[*instructions.CopyCommand](final) {
			if c.From != build.Name {
				t.Errorf("COPY from %q: the runtime stage takes only the builder's output", c.From)
			}
			for _, src := range c.SourcePaths {
				copied[src] = c.DestPath
			}
		}
		for _, name := range binaries() {
			if copied["/out/"+name] != "/"+name {
				t.Errorf("runtime stage copies %v, want /out/%s to /%s", copied, name, name)
			}
		}
		// Label values as BuildKit expands them, for a build with VERSION=1.2.3.
		labels := map[string]string{}
		env := shell.EnvsFromSlice([]string{"VERSION=1.2.3"})
		for _, l := range commandsOf[*instructions.LabelCommand](final) {
			for _, kv := range l.Labels {
				v, _, err := shell.NewLex('\\').ProcessWord(kv.Value, env)
				if err != nil {
					t.Fatalf("LABEL %s: %v", kv.Key, err)
				}
				labels[kv.Key] = v
			}
		}
		wantLabels := map[string]string{
			"org.opencontainers.image.source":   "https://github.com/credsidecar/credsidecar",
			"org.opencontainers.image.licenses": "Apache-2.0",
			"org.opencontainers.image.title":    "credsidecar",
			"org.opencontainers.image.version":  "1.2.3",
		}
		for k, v := range wantLabels {
			if labels[k] != v {
				t.Errorf("LABEL %s = %q, want %q", k, labels[k], v)
			}
		}
		var args []string
		for _, a := range commandsOf[*instructions.ArgCommand](final) {
			for _, kv := range a.Args {
				args = append(args, kv.Key)
			}
		}
		if !slices.Contains(args, "VERSION") {
			t.Error("runtime stage does not declare ARG VERSION: the version label would be empty")
		}
	})
}

// contextFiles lists the files .dockerignore lets into the build context, relative to root.
func contextFiles(t *testing.T, root string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if e.IsDir() {
			// Descend into an excluded directory only if an exception pattern reaches inside it.
			if excluded && !slices.ContainsFunc(pm.Patterns(), func(p *patternmatcher.Pattern) bool {
				return p.Exclusion() && strings.HasPrefix(p.String(), rel+"/")
			}) {
				return filepath.SkipDir
			}
			return nil
		}
		if !excluded && e.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDockerignore(t *testing.T) {
	files := contextFiles(t, repoRoot(t))
	for _, want := range []string{"go.mod", "go.sum", "cmd/uploader/main.go", "cmd/sidecar/main.go", "internal/upload/uploader.go"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is not in the build context", want)
		}
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.Contains(f, "/testdata/") ||
			!(f == "go.mod" || f == "go.sum" || strings.HasPrefix(f, "cmd/") || strings.HasPrefix(f, "internal/")) {
			t.Errorf("%s is in the build context; only go.mod, go.sum, cmd/ and internal/ sources belong there", f)
		}
	}
}

// TestDockerfileBuildLines runs the Dockerfile's own RUN line, for this machine's GOOS/GOARCH,
// in a copy of exactly the build context, and checks the binaries it produces.
func TestDockerfileBuildLines(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles both binaries")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the RUN line with")
	}
	root := repoRoot(t)
	d := parseDockerfile(t, root)
	var run *instructions.RunCommand
	for _, r := range commandsOf[*instructions.RunCommand](d.stages[0]) {
		if len(buildCommands(r)) > 0 {
			run = r
		}
	}
	if run == nil || !run.PrependShell {
		t.Fatal("no shell-form RUN with the go build lines")
	}

	// The context, as `docker build` would send it.
	src := t.TempDir()
	for _, f := range contextFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(src, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	const version = "v9.8.7-dockerfile-test"
	line := strings.ReplaceAll(strings.Join(run.CmdLine, " "), "/out/", out+"/")
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = src
	// The build args the Dockerfile declares; the Go caches are the machine's, so a warm cache
	// keeps this fast.
	cmd.Env = append(os.Environ(), "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH, "VERSION="+version)
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Run(); err != nil {
		t.Fatalf("RUN %s\nfailed: %v\n%s", line, err, outBuf.String())
	}

	for _, name := range binaries() {
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(out, name)
			st, err := os.Stat(bin)
			if err != nil || st.Mode()&0o111 == 0 {
				t.Fatalf("%s: %v, mode %v; want an executable", bin, err, st.Mode())
			}
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(version)) {
				t.Errorf("%s does not carry the version %s: -X main.version did not take", name, version)
			}
			if runtime.GOOS != "linux" {
				return
			}
			ef, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			for _, p := range ef.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s is dynamically linked; distroless static has no libc", name)
				}
			}
			if ef.Section(".symtab") != nil {
				t.Errorf("%s has a symbol table: -s did not take", name)
			}
		})
	}
	t.Run("uploader reports the version", func(t *testing.T) {
		var stdout bytes.Buffer
		c := exec.Command(filepath.Join(out, "uploader"), "--version")
		c.Stdout, c.Stderr = &stdout, io.Discard
		if err := c.Run(); err != nil || strings.TrimSpace(stdout.String()) != version {
			t.Errorf("uploader --version = %q, %v; want %s", stdout.String(), err, version)
		}
	})
}

// goDirectives reads the go and toolchain lines of a go.mod.
func goDirectives(gomod string) (goVersion, toolchain string) {
	for _, line := range strings.Split(gomod, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "go" {
			goVersion = f[1]
		}
		if len(f) == 2 && f[0] == "toolchain" {
			toolchain = strings.TrimPrefix(f[1], "go")
		}
	}
	return goVersion, toolchain
}

func minor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// versionLess compares dotted numeric versions such as 1.26.8 and 1.26.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x = atoi(as[i])
		}
		if i < len(bs) {
			y = atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			break
		}
		n = n*10 + int(r-'0')
	}
	return n
}
