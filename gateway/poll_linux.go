//go:build linux

package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// epoll is the process's poller: one epoll instance watched by one
// goroutine. Each connection's descriptor is added level-triggered with
// EPOLLONESHOT, so that a readiness report disarms it until the worker
// that read it re-arms it (arm): one report, one worker, however much
// arrives meanwhile. The descriptor stays in the runtime's own poller too
// (writes and the closing handshake block there as usual); the worker's
// reads never wait, so the runtime never parks a reader on it.
type epoll struct {
	fd int
	mu sync.Mutex
	// conns maps a descriptor to the connection watched on it. A report
	// for a descriptor closed and reused meanwhile wakes the new
	// connection once for nothing: its worker finds nothing to read.
	conns map[int32]*Conn
}

var (
	epollOnce sync.Once
	epollInst *epoll
	epollErr  error
)

// sharedEpoll returns the process's poller, starting it the first time.
func sharedEpoll() (*epoll, error) {
	epollOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			epollErr = err
			return
		}
		epollInst = &epoll{fd: fd, conns: map[int32]*Conn{}}
		go epollInst.run()
	})
	return epollInst, epollErr
}

const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// watch takes over reading c: it registers the descriptor and reads what
// has already arrived (the early input, say) on the caller's goroutine
// before letting go.
func (p *epoll) watch(c *Conn, ctx context.Context) bool {
	rc, ok := rawConnOf(c.nc)
	if !ok {
		return false
	}
	pr := &pollReader{rc: rc, fd: -1, ctx: ctx, ep: p, state: ws.StateServerSide}
	if err := rc.Control(func(fd uintptr) { pr.fd = int(fd) }); err != nil || pr.fd < 0 {
		return false
	}
	// The handshake's deadlines do not apply to reads any more; the idle
	// timeout is a shared timer.
	_ = c.nc.SetReadDeadline(time.Time{})
	pr.in, c.early = c.early, nil
	pr.rs.Store(readRunning)
	pr.lastIn.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.pr = pr
	c.mu.Unlock()
	p.mu.Lock()
	p.conns[int32(pr.fd)] = c
	p.mu.Unlock()
	var err error
	_ = rc.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, int(fd), &unix.EpollEvent{Events: armEvents, Fd: int32(fd)})
	})
	if err != nil {
		p.drop(pr.fd, c)
		c.mu.Lock()
		c.pr = nil
		c.mu.Unlock()
		c.early = pr.in
		return false
	}
	c.idleT.schedule(time.Now().Add(c.srv.cfg.IdleTimeout))
	c.pollLoop()
	return true
}

// arm re-arms the descriptor after a worker read it. It fails when the
// socket was closed meanwhile (Server.Close).
func (p *epoll) arm(pr *pollReader) error {
	var err error
	cerr := pr.rc.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.fd, unix.EPOLL_CTL_MOD, int(fd), &unix.EpollEvent{Events: armEvents, Fd: int32(fd)})
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// forget removes c from the poller before its socket closes.
func (pr *pollReader) forget(c *Conn) {
	_ = pr.rc.Control(func(fd uintptr) {
		_ = unix.EpollCtl(pr.ep.fd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	pr.ep.drop(pr.fd, c)
}

func (p *epoll) drop(fd int, c *Conn) {
	p.mu.Lock()
	if p.conns[int32(fd)] == c {
		delete(p.conns, int32(fd))
	}
	p.mu.Unlock()
}

// read reads what the socket holds without waiting: EAGAIN when nothing.
func (pr *pollReader) read(b []byte) (n int, err error) {
	cerr := pr.rc.Read(func(fd uintptr) bool {
		for {
			n, err = unix.Read(int(fd), b)
			if err != unix.EINTR {
				return true
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

// run waits for readiness and hands each ready connection to a worker.
func (p *epoll) run() {
	events := make([]unix.EpollEvent, 256)
	ready := make([]*Conn, 0, len(events))
	for {
		n, err := unix.EpollWait(p.fd, events, -1)
		if err != nil {
			continue // EINTR
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if c := p.conns[ev.Fd]; c != nil {
				ready = append(ready, c)
			}
		}
		p.mu.Unlock()
		for i, c := range ready {
			c.ready()
			ready[i] = nil
		}
		ready = ready[:0]
	}
}
