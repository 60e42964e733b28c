// Package load is a closed-loop HTTP/1.1 load generator for the benchmarks and the soak test:
// a fixed number of keep-alive connections, each sending its next request as soon as the
// previous answer has been read, as wrk does.
//
// It speaks only as much HTTP as that needs (the request is encoded once; an answer must carry
// Content-Length), so that on a 2-core machine the generator takes as little CPU as possible
// from the server it measures, and exactly the same amount whichever server that is. Run it in
// another process than the server, so the two do not share a Go scheduler.
package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Target is what every request asks for.
type Target struct {
	// Addr is host:port.
	Addr string
	// Path is the request target, e.g. /v1/credentials.
	Path string
	// Header lines sent with every request, in order, besides Host.
	Header [][2]string
}

// Options shape one run.
type Options struct {
	// Conns is the number of connections, each with one request in flight.
	Conns int
	// Warmup runs before the measured window; its answers count in Status and Errors only.
	Warmup time.Duration
	// Duration is the measured window.
	Duration time.Duration
	// Timeout bounds one request; 5 s when 0.
	Timeout time.Duration
	// Check, if set, is called with every answer's status and body; a non-nil error counts as a
	// failed request. It must be safe for concurrent use.
	Check func(status int, body []byte) error
}

// Result is what one run measured.
type Result struct {
	// Conns is Options.Conns.
	Conns int
	// Elapsed is the measured window's length.
	Elapsed time.Duration
	// Requests counts answers whose request started and ended inside the window.
	Requests uint64
	// Latency holds those answers' round-trip times.
	Latency Histogram
	// Status counts every answer, warm-up included, by status code.
	Status map[int]uint64
	// Errors counts every failed request, warm-up included: connect, write, read and parse
	// failures, and answers Check refused.
	Errors uint64
	// ErrorSamples are the first few errors, for reports.
	ErrorSamples []string
}

// RPS is answers per second in the measured window.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Non200 counts answers, warm-up included, whose status was not 200.
func (r *Result) Non200() uint64 {
	var n uint64
	for code, c := range r.Status {
		if code != 200 {
			n += c
		}
	}
	return n
}

const maxErrorSamples = 5

// Run drives the target with o.Conns connections for o.Warmup plus o.Duration, or until ctx is
// done. It returns an error only when o is unusable; failed requests are counted in the Result.
func Run(ctx context.Context, t Target, o Options) (*Result, error) {
	if o.Conns < 1 {
		return nil, fmt.Errorf("run load: %d connections", o.Conns)
	}
	if o.Duration <= 0 {
		return nil, fmt.Errorf("run load: duration %s", o.Duration)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	req := encodeRequest(t)
	start := time.Now()
	windowStart := start.Add(o.Warmup)
	end := windowStart.Add(o.Duration)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	workers := make([]*worker, o.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{target: t, req: req, opts: o, windowStart: windowStart, end: end, status: map[int]uint64{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()

	res := &Result{Conns: o.Conns, Elapsed: end.Sub(windowStart), Status: map[int]uint64{}}
	if now := time.Now(); now.Before(end) { // cancelled early
		res.Elapsed = max(now.Sub(windowStart), 0)
	}
	for _, w := range workers {
		res.Requests += w.requests
		res.Latency.Merge(&w.latency)
		for code, c := range w.status {
			res.Status[code] += c
		}
		res.Errors += w.errors
		for _, s := range w.samples {
			if len(res.ErrorSamples) < maxErrorSamples {
				res.ErrorSamples = append(res.ErrorSamples, s)
			}
		}
	}
	return res, nil
}

func encodeRequest(t Target) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", t.Path, t.Addr)
	for _, h := range t.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// worker owns one connection; its counters are read only after it returns.
type worker struct {
	target      Target
	req         []byte
	opts        Options
	windowStart time.Time
	end         time.Time

	mu       sync.Mutex
	conn     net.Conn
	br       *bufio.Reader
	deadline time.Time
	body     []byte

	requests uint64
	latency  Histogram
	status   map[int]uint64
	errors   uint64
	samples  []string
}

func (w *worker) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, w.abort)
	defer stop()
	defer w.closeConn()
	for ctx.Err() == nil {
		if w.conn == nil {
			if err := w.dial(ctx); err != nil {
				if w.over(ctx) {
					return
				}
				w.fail(err)
				// A refused connect would otherwise spin; this is load generation, not a test.
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
		}
		began := time.Now()
		status, keep, err := w.roundTrip(began)
		done := time.Now()
		if err != nil {
			if w.over(ctx) {
				return // cut off by the end of the run, not a failure
			}
			w.fail(err)
			w.closeConn()
			continue
		}
		w.status[status]++
		if w.opts.Check != nil {
			if cerr := w.opts.Check(status, w.body); cerr != nil {
				w.fail(cerr)
			}
		}
		if !began.Before(w.windowStart) && !done.After(w.end) {
			w.requests++
			w.latency.Record(done.Sub(began))
		}
		if !keep {
			w.closeConn()
		}
	}
}

// setConn and closeConn change w.conn under mu, because the context's AfterFunc closes the
// connection from another goroutine to cut a blocked read short; the worker itself reads
// w.conn without the lock, being its only writer.
func (w *worker) setConn(c net.Conn) {
	w.mu.Lock()
	w.conn = c
	w.mu.Unlock()
}

func (w *worker) closeConn() {
	w.mu.Lock()
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
	w.mu.Unlock()
}

func (w *worker) abort() {
	w.mu.Lock()
	if w.conn != nil {
		_ = w.conn.Close()
	}
	w.mu.Unlock()
}

// over reports whether the run has ended. The deadline is checked by the clock as well as by
// ctx, because a dial or read can fail on the deadline a moment before ctx's own timer fires.
func (w *worker) over(ctx context.Context) bool {
	return ctx.Err() != nil || !time.Now().Before(w.end)
}

func (w *worker) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: w.opts.Timeout}
	c, err := d.DialContext(ctx, "tcp", w.target.Addr)
	if err != nil {
		return err
	}
	w.setConn(c)
	w.br = bufio.NewReaderSize(c, 16<<10)
	w.deadline = time.Time{}
	return nil
}

func (w *worker) fail(err error) {
	w.errors++
	if len(w.samples) < maxErrorSamples {
		w.samples = append(w.samples, err.Error())
	}
}

var errNoLength = errors.New("answer without Content-Length")

// roundTrip writes the request and reads one answer, keeping its body in w.body.
func (w *worker) roundTrip(now time.Time) (status int, keepAlive bool, err error) {
	// Moving the deadline costs a timer update; doing it only when half of it is used keeps
	// that off most requests.
	if w.deadline.Sub(now) < w.opts.Timeout/2 {
		w.deadline = now.Add(w.opts.Timeout)
		if err := w.conn.SetDeadline(w.deadline); err != nil {
			return 0, false, err
		}
	}
	if _, err := w.conn.Write(w.req); err != nil {
		return 0, false, fmt.Errorf("write request: %w", err)
	}
	line, err := w.br.ReadSlice('\n')
	if err != nil {
		return 0, false, fmt.Errorf("read status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("bad status line %q", truncate(line))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", truncate(line))
	}
	keepAlive = line[7] == '1'
	length := -1
	for {
		h, err := w.br.ReadSlice('\n')
		if err != nil {
			return 0, false, fmt.Errorf("read header: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("bad header line %q", truncate(h))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", truncate(value))
			}
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			keepAlive = false
		}
	}
	if length < 0 {
		return 0, false, errNoLength
	}
	if cap(w.body) < length {
		w.body = make([]byte, length)
	}
	w.body = w.body[:length]
	if _, err := io.ReadFull(w.br, w.body); err != nil {
		return 0, false, fmt.Errorf("read body: %w", err)
	}
	return status, keepAlive, nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
