package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// report is the markdown being written, plus files (the PNG) to save beside it.
type report struct {
	s     settings
	head  strings.Builder // title and machine
	b     strings.Builder // the sections
	files map[string][]byte
	// summary collects every target's row for the table at the top.
	summary [][]string
}

func newReport(s settings) *report {
	r := &report{s: s, files: map[string][]byte{}}
	flags := "(defaults)"
	if len(os.Args) > 1 {
		flags = "`" + strings.Join(os.Args[1:], " ") + "`"
	}
	fmt.Fprintf(&r.b, "# credsidecar benchmarks, %s\n\n", s.date)
	r.p("Written by `make bench` (`go run ./cmd/bench`). Every figure is the median of the runs stated " +
		"with it; ratios are measured side by side in the same run, alternating which side goes first. " +
		"Targets are the ones of issue 7; a figure that misses its target says so.")
	r.h2("Machine")
	r.table([]string{"", ""}, [][]string{
		{"CPU", cpuModel()},
		{"Cores (runtime.NumCPU)", fmt.Sprint(runtime.NumCPU())},
		{"Memory", memTotal()},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"Kernel", strings.TrimSpace(readFile("/proc/sys/kernel/osrelease"))},
		{"Flags", flags},
	})
	r.head.WriteString(r.b.String())
	r.b.Reset()
	return r
}

// checks renders a section's targets and adds them to the summary. Each row is the target with
// what was measured, and the verdict.
func (r *report) checks(section string, rows [][]string) {
	r.table([]string{"target", "result"}, rows)
	for _, row := range rows {
		r.summary = append(r.summary, []string{section, row[0], row[1]})
	}
}

func (r *report) h2(title string) { fmt.Fprintf(&r.b, "## %s\n\n", title) }

func (r *report) h3(title string) { fmt.Fprintf(&r.b, "### %s\n\n", title) }

func (r *report) p(format string, args ...any) {
	fmt.Fprintf(&r.b, format, args...)
	r.b.WriteString("\n\n")
}

func (r *report) table(header []string, rows [][]string) {
	r.b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		r.b.WriteString("---|")
	}
	r.b.WriteString("\n")
	for _, row := range rows {
		r.b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	r.b.WriteString("\n")
}

// failed records a section that could not be measured.
func (r *report) failed(name string, err error) {
	fmt.Fprintf(&r.b, "**Section %q not measured**: %s\n\n", name, oneLine(err.Error()))
	r.summary = append(r.summary, []string{name, "not measured: " + oneLine(err.Error()), "**not measured**"})
}

func (r *report) footer(took time.Duration) {
	fmt.Fprintf(&r.b, "---\n\nWhole run: %s.\n", took.Round(time.Second))
}

func (r *report) String() string {
	var out strings.Builder
	out.WriteString(r.head.String())
	out.WriteString("## Targets\n\n")
	out.WriteString("| section | target and measurement | result |\n|---|---|---|\n")
	for _, row := range r.summary {
		out.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	out.WriteString("\n")
	out.WriteString(r.b.String())
	return out.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return string(b)
}

func cpuModel() string {
	sc := bufio.NewScanner(bytes.NewReader([]byte(readFile("/proc/cpuinfo"))))
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

func memTotal() string {
	sc := bufio.NewScanner(bytes.NewReader([]byte(readFile("/proc/meminfo"))))
	for sc.Scan() {
		var kib int64
		if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kib); err == nil {
			return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
		}
	}
	return "unknown"
}
