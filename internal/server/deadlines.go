package server

import (
	"net"
	"sync"
	"time"
)

// deadlineTick is how often a coarse listener looks for connections past their deadlines: a
// timeout fires at most this much later than net/http asked for.
const deadlineTick = 250 * time.Millisecond

// coarseListener gives every accepted connection coarse deadlines. net/http sets four deadlines
// per request with the timeouts of NewHTTPServer (the idle wait, the header, the whole request,
// the answer), and each arms a runtime timer: about 190 ns apiece, two thirds of what the limits
// cost per request (issue 11). A coarse connection only records the deadline asked for, and one
// goroutine per listener, every deadlineTick, makes the real deadline of each connection past its
// recorded one expire at once, which fails the read or write blocked on it exactly as the
// timer would have. The protections stay (slowloris, idle and slow-reader connections are cut);
// they fire up to deadlineTick late.
type coarseListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*coarseConn]struct{}
	done  chan struct{}
	once  sync.Once
	// stopped is closed when the sweeper returns.
	stopped chan struct{}
}

// withCoarseDeadlines wraps ln and starts its sweeper, which stops when ln and the connections
// it accepted are closed.
func withCoarseDeadlines(ln net.Listener) net.Listener { return newCoarseListener(ln, deadlineTick) }

func newCoarseListener(ln net.Listener, tick time.Duration) *coarseListener {
	l := &coarseListener{Listener: ln, conns: map[*coarseConn]struct{}{}, done: make(chan struct{}),
		stopped: make(chan struct{})}
	go func() {
		defer close(l.stopped)
		l.sweep(tick)
	}()
	return l
}

func (l *coarseListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &coarseConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[cc] = struct{}{}
	l.mu.Unlock()
	return cc, nil
}

func (l *coarseListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// sweep expires, every tick, the connections whose recorded deadlines have passed, until the
// listener is closed and its last connection with it (a graceful shutdown lets requests in
// flight finish, still under their deadlines).
func (l *coarseListener) sweep(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	closed, done := false, l.done
	for {
		select {
		case <-done:
			closed, done = true, nil // a nil channel: only ticks from now on
		case now := <-t.C:
			if n := l.expire(now); n == 0 && closed {
				return
			}
		}
	}
}

// expire makes every connection past a recorded deadline time out now, and returns how many
// connections are open.
func (l *coarseListener) expire(now time.Time) int {
	l.mu.Lock()
	open := make([]*coarseConn, 0, len(l.conns))
	for c := range l.conns {
		open = append(open, c)
	}
	l.mu.Unlock()
	for _, c := range open {
		c.expire(now)
	}
	return len(open)
}

// coarseConn records the deadlines net/http asks for; its listener's sweeper enforces them.
type coarseConn struct {
	net.Conn
	l *coarseListener

	mu sync.Mutex
	// read and write are the deadlines asked for (zero: none); readForced and writeForced say
	// that the real deadline was set in the past by the sweeper and must be cleared before the
	// next one is recorded.
	read, write             time.Time
	readForced, writeForced bool
}

func (c *coarseConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *coarseConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set(t, &c.read, &c.readForced, c.Conn.SetReadDeadline)
}

func (c *coarseConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set(t, &c.write, &c.writeForced, c.Conn.SetWriteDeadline)
}

// set records deadline t. One already due is set on the connection at once: net/http aborts its
// background read after every request with a deadline long past, and waits for it. The real
// deadline a sweep or such a call forced is cleared before the next one is recorded.
func (c *coarseConn) set(t time.Time, recorded *time.Time, forced *bool, real func(time.Time) error) error {
	*recorded = t
	if !t.IsZero() && !t.After(time.Now()) {
		*forced = true
		return real(t)
	}
	if *forced {
		*forced = false
		return real(time.Time{})
	}
	return nil
}

// expire sets the real deadline in the past for each recorded one now has passed: a blocked
// Read or Write returns os.ErrDeadlineExceeded, and so does the next one until net/http records
// a new deadline.
func (c *coarseConn) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.read.IsZero() && !c.readForced && now.After(c.read) {
		c.readForced = true
		_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	if !c.write.IsZero() && !c.writeForced && now.After(c.write) {
		c.writeForced = true
		_ = c.Conn.SetWriteDeadline(time.Unix(1, 0))
	}
}

// CloseWrite lets net/http half-close the connection as it does a bare TCP one.
func (c *coarseConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *coarseConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
