//go:build linux

package gateway

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// epoll is the process's poller: one epoll instance, itself watched by
// the runtime's poller, so that the goroutine collecting its reports
// parks like any reader instead of holding a thread in epoll_wait. Each
// connection's descriptor is added edge-triggered: every arrival of bytes
// is reported, and a report while a worker reads the connection only
// makes it read again (pollReader.rs), so nothing needs re-arming. The
// descriptor stays in the runtime's own poller too: writes and the closing
// handshake block there as usual, and so does the worker of a hot
// connection waiting for its next input (awaitInput), with the descriptor
// disarmed here meanwhile.
type epoll struct {
	fd int
	f  *os.File // fd, for the runtime's poller
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
		if err == nil {
			err = unix.SetNonblock(fd, true)
		}
		if err != nil {
			epollErr = err
			return
		}
		// A non-blocking descriptor in an os.File is watched by the
		// runtime's poller: an epoll instance is readable while it has
		// reports.
		f := os.NewFile(uintptr(fd), "epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			epollErr = err
			return
		}
		epollInst = &epoll{fd: fd, f: f, conns: map[int32]*Conn{}}
		go epollInst.run(rc)
	})
	return epollInst, epollErr
}

const watchEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// hangup is a report of the peer's half-close or an error: the worker then
// reads until EOF or EAGAIN instead of stopping at a short read.
const hangup = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR

// watch takes over reading c: it registers the descriptor and reads what
// has already arrived (the early input, say) on the caller's goroutine
// before letting go.
func (p *epoll) watch(c *Conn, ctx context.Context) bool {
	rc, ok := rawConnOf(c.nc)
	if !ok {
		return false
	}
	pr := &pollReader{rc: rc, fd: -1, ctx: ctx, ep: p, state: ws.StateServerSide}
	pr.readFn, pr.awaitFn = pr.readRaw, pr.awaitRaw
	// The handshake's deadlines do not apply to reads any more; the idle
	// timeout is a shared timer.
	_ = c.nc.SetReadDeadline(time.Time{})
	pr.in, c.early = c.early, nil
	pr.rs.Store(readRunning)
	pr.lastIn.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.pr = pr
	c.mu.Unlock()
	err := errors.ErrUnsupported
	_ = rc.Control(func(fd uintptr) {
		pr.fd = int(fd)
		p.mu.Lock()
		p.conns[int32(fd)] = c
		p.mu.Unlock()
		err = unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, int(fd), &unix.EpollEvent{Events: watchEvents, Fd: int32(fd)})
	})
	if err != nil { // the socket has no descriptor, or epoll refused it: a goroutine reads
		if pr.fd >= 0 {
			p.drop(pr.fd, c)
		}
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

// A connection whose input comes in quick succession (a client calling in
// a loop, or pipelining) is hot: after a read its worker keeps it and
// waits for the next input in the runtime's poller, as a goroutine reader
// does, with the descriptor disarmed in ours. Each message then costs one
// report (the runtime's) instead of two (ours, with epoll_wait and a
// hand-off to a worker, and the runtime's, which watches the descriptor
// for writes anyway). A connection that sends nothing for hotLinger goes
// back to ours, and holds no goroutine again.
const (
	hotGap    = 5 * time.Millisecond  // reads closer than this make a connection hot
	hotLinger = 50 * time.Millisecond // how long a hot connection's worker waits for input
)

// awaitInput waits, if c is hot, until input arrives or c is closing
// (true: the caller reads again), or hotLinger passes without input
// (false: the caller lets go). Leaving the hot state re-arms the
// descriptor in our poller; a report of input that arrived meanwhile
// makes the caller read again (readAgain).
func (c *Conn) awaitInput() bool {
	pr := c.pr
	if !pr.hot {
		if pr.gap >= int64(hotGap) || !pr.ep.arm(pr, false) {
			return false
		}
		pr.hot = true
		_ = c.nc.SetReadDeadline(time.Now().Add(hotLinger))
	}
	for !c.isClosing() { // closeCode sets closing, then a past read deadline
		// The socket is asked before waiting (the wait's preparation
		// forgets readiness reported since the last wait), not after: a
		// wake-up is input, or the caller's read finds EAGAIN and waits
		// again.
		pr.asked = false
		err := pr.rc.Read(pr.awaitFn)
		if err == nil {
			return true
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		last := time.Unix(0, pr.lastIn.Load())
		if time.Since(last) >= hotLinger {
			break
		}
		_ = c.nc.SetReadDeadline(last.Add(hotLinger))
	}
	if c.isClosing() {
		return true // the caller's read sees it
	}
	pr.hot = false
	_ = c.nc.SetReadDeadline(time.Time{})
	if !pr.ep.arm(pr, true) { // not a socket our poller can watch any more
		c.closeWith(CloseIOError, "")
		return true
	}
	return false
}

// awaitRaw is awaitInput's wait, given to RawConn.Read: the first call
// asks the socket (done: input is there), a later one is the wake-up.
func (pr *pollReader) awaitRaw(fd uintptr) bool {
	if pr.asked {
		return true
	}
	pr.asked = true
	return pr.pending(int(fd))
}

// pending says whether the socket has input (or an error or EOF) to read,
// without taking it. (unix.Recvfrom would allocate the sender's address.)
func (pr *pollReader) pending(fd int) bool {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&pr.peek[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return errno != unix.EAGAIN
		}
	}
}

// arm sets whether our poller reports input on pr's descriptor. Arming
// reports at once what arrived while it was disarmed (EPOLL_CTL_MOD
// looks at the descriptor's readiness).
func (p *epoll) arm(pr *pollReader, on bool) bool {
	ev := unix.EpollEvent{Events: unix.EPOLLET, Fd: int32(pr.fd)}
	if on {
		ev.Events = watchEvents
	}
	err := errors.ErrUnsupported
	_ = pr.rc.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.fd, unix.EPOLL_CTL_MOD, int(fd), &ev)
	})
	return err == nil
}

// read reads what the socket holds without waiting: EAGAIN when nothing.
// It ignores the read deadline, which only bounds a hot connection's
// wait (awaitInput).
func (pr *pollReader) read(b []byte) (n int, err error) {
	pr.rbuf = b
	cerr := pr.rc.Control(pr.readFn)
	n, err = pr.rn, pr.rerr
	pr.rbuf, pr.rerr = nil, nil
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

// readRaw is read's system call, given to RawConn.Control.
func (pr *pollReader) readRaw(fd uintptr) {
	for {
		pr.rn, pr.rerr = unix.Read(int(fd), pr.rbuf)
		if pr.rerr != unix.EINTR {
			return
		}
	}
}

// run collects the reports and hands each ready connection to a worker.
func (p *epoll) run(rc syscall.RawConn) {
	events := make([]unix.EpollEvent, 256)
	ready := make([]*Conn, 0, len(events))
	for {
		var n int
		err := rc.Read(func(fd uintptr) bool {
			var err error
			n, err = unix.EpollWait(int(fd), events, 0)
			return err == nil && n > 0 // none: park until the instance is readable
		})
		if err != nil {
			return // never closed
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if c := p.conns[ev.Fd]; c != nil {
				if ev.Events&hangup != 0 {
					c.pr.hup.Store(true)
				}
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
