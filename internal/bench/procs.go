package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// The children of -procs and their parent talk in lines: the child's
// stdout says "ready" once its connections are up, the parent answers "go"
// on its stdin when every child is ready (so that no process sends before
// all subscribers listen); in broadcast the child says "sent N" after
// sending and the parent answers "total M", the messages of all children;
// last the child prints its result as one JSON line, histograms included.
// A child whose stdin closes stops (the parent is gone).

// childSync is the child's side.
type childSync struct {
	lines <-chan string
	out   io.Writer
}

// NewChildSync reads the parent's lines from in and writes to out; cancel
// is called when in ends.
func NewChildSync(in io.Reader, out io.Writer, cancel func()) Sync {
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
		cancel()
		close(lines)
	}()
	return &childSync{lines: lines, out: out}
}

func (s *childSync) expect(prefix string) (string, error) {
	line, ok := <-s.lines
	if !ok {
		return "", errors.New("bench: the parent process is gone")
	}
	rest, found := strings.CutPrefix(line, prefix)
	if !found {
		return "", fmt.Errorf("bench: parent said %q, want %q", line, prefix)
	}
	return rest, nil
}

func (s *childSync) Ready() error {
	if _, err := fmt.Fprintln(s.out, "ready"); err != nil {
		return err
	}
	_, err := s.expect("go")
	return err
}

func (s *childSync) TotalSent(n int64) (int64, error) {
	if _, err := fmt.Fprintln(s.out, "sent", n); err != nil {
		return 0, err
	}
	rest, err := s.expect("total ")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(rest, 10, 64)
}

// child is the parent's handle on one child process.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (c *child) line() (string, error) {
	if c.out.Scan() {
		return c.out.Text(), nil
	}
	return "", fmt.Errorf("bench: child process %d ended before its result", c.cmd.Process.Pid)
}

// RunChildren starts the commands (the same run, each with -shard i/n),
// coordinates them, merges their results and passes the merged result to
// onResult, then waits for them to exit. When ctx ends, the children's
// stdin is closed, which stops them.
func RunChildren(ctx context.Context, cmds []*exec.Cmd, onResult func(*Result)) error {
	kids := make([]*child, 0, len(cmds))
	ok := false
	defer func() {
		for _, k := range kids {
			if !ok {
				k.in.Close() // stops the child
			}
			k.cmd.Wait()
		}
	}()
	for _, cmd := range cmds {
		in, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("bench: start child: %w", err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20) // a result line with histograms
		kids = append(kids, &child{cmd: cmd, in: in, out: sc})
	}
	stop := context.AfterFunc(ctx, func() {
		for _, k := range kids {
			k.in.Close()
		}
	})
	defer stop()
	res, err := coordinate(kids)
	if err != nil {
		return err
	}
	onResult(res)
	ok = true // the children end on their own (idle holds first)
	return nil
}

// coordinate runs the line protocol with every child and merges results.
func coordinate(kids []*child) (*Result, error) {
	first, err := readAll(kids)
	if err != nil {
		return nil, err
	}
	for i, l := range first {
		if l != "ready" {
			return nil, fmt.Errorf("bench: child %d said %q, want ready", i, l)
		}
	}
	tell(kids, "go")
	lines, err := readAll(kids)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(lines[0], "sent ") {
		var total int64
		for _, l := range lines {
			n, err := strconv.ParseInt(strings.TrimPrefix(l, "sent "), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bench: child said %q", l)
			}
			total += n
		}
		tell(kids, "total "+strconv.FormatInt(total, 10))
		if lines, err = readAll(kids); err != nil {
			return nil, err
		}
	}
	parts := make([]*Result, len(lines))
	for i, l := range lines {
		parts[i] = new(Result)
		if err := json.Unmarshal([]byte(l), parts[i]); err != nil {
			return nil, fmt.Errorf("bench: child %d result %q: %v", i, l, err)
		}
	}
	return Merge(parts)
}

// readAll reads the next line of every child, all at once.
func readAll(kids []*child) ([]string, error) {
	lines := make([]string, len(kids))
	errs := make([]error, len(kids))
	var wg sync.WaitGroup
	for i, k := range kids {
		wg.Go(func() { lines[i], errs[i] = k.line() })
	}
	wg.Wait()
	return lines, errors.Join(errs...)
}

func tell(kids []*child, line string) {
	for _, k := range kids {
		io.WriteString(k.in, line+"\n")
	}
}
