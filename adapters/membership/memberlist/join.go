package memberlist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	ml "github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
)

// maxParallelJoins bounds how many seeds one Join contacts at once.
const maxParallelJoins = 8

// joinResult is the outcome of contacting one seed.
type joinResult struct {
	n   int
	err error
}

// Join contacts the seeds ("host:port"; a host name may resolve to several
// addresses) and merges state with those that answer, up to 8 at a time.
// Seeds equal to this node's advertised address (LocalAddr) and repeated
// seeds are skipped; when none is left Join returns 0 and no error, as for
// the first node of a cluster. It returns how many addresses answered, and
// an error (wrapping ports.ErrUnreachable, or ctx's error) only when none
// did.
//
// memberlist's Join is not ctx-aware: when ctx ends first, Join returns at
// once, the attempts in flight finish in the background, each bounded by
// memberlist's TCPTimeout (plus name resolution), and no further seed is
// tried. Close waits for them. Join fails after Leave.
func (m *Membership) Join(ctx context.Context, seeds []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memberlist: join: %w", err)
	}
	list, err := m.running("join")
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	left, self := m.state == stateLeft, m.localAddr
	m.mu.Unlock()
	if left {
		return 0, fmt.Errorf("memberlist: join after Leave: %w", ports.ErrClosed)
	}
	targets := filterSeeds(seeds, self)
	if len(targets) == 0 {
		return 0, nil
	}

	queue := make(chan string, len(targets))
	for _, s := range targets {
		queue <- s
	}
	close(queue)
	results := make(chan joinResult, len(targets)) // never blocks a worker
	started := 0
	for range min(len(targets), maxParallelJoins) {
		if !m.spawn(func() { m.joinWorker(ctx, list, queue, results) }) {
			break
		}
		started++
	}
	if started == 0 {
		return 0, fmt.Errorf("memberlist: join: %w", ports.ErrClosed)
	}

	n := 0
	var errs []error
	for range targets {
		select {
		case r := <-results:
			n += r.n
			if r.err != nil {
				errs = append(errs, flatten(r.err))
			}
		case <-ctx.Done():
			return m.joinOutcome(n, len(targets), append(errs, ctx.Err()))
		case <-m.closing:
			return m.joinOutcome(n, len(targets), append(errs, ports.ErrClosed))
		}
	}
	return m.joinOutcome(n, len(targets), errs)
}

// joinWorker contacts seeds from queue one at a time until it is empty,
// reporting every seed, tried or skipped, on results.
func (m *Membership) joinWorker(ctx context.Context, list *ml.Memberlist, queue <-chan string, results chan<- joinResult) {
	for seed := range queue {
		if err := ctx.Err(); err != nil {
			results <- joinResult{err: err}
			continue
		}
		select {
		case <-m.closing:
			results <- joinResult{err: ports.ErrClosed}
			continue
		default:
		}
		n, err := list.Join([]string{seed})
		results <- joinResult{n: n, err: err}
	}
}

func (m *Membership) joinOutcome(n, tried int, errs []error) (int, error) {
	if n > 0 {
		if len(errs) > 0 {
			m.log.Debug("some seeds did not answer", "answered", n, "err", errors.Join(errs...))
		}
		return n, nil
	}
	for _, e := range errs {
		if errors.Is(e, context.Canceled) || errors.Is(e, context.DeadlineExceeded) || errors.Is(e, ports.ErrClosed) {
			return 0, fmt.Errorf("memberlist: join: no seed answered before it was interrupted: %w", errors.Join(errs...))
		}
	}
	return 0, fmt.Errorf("memberlist: join: none of %d seeds answered: %w: %w",
		tried, ports.ErrUnreachable, errors.Join(errs...))
}

// flatten unwraps the multierror memberlist's Join returns into a plain
// joined error (its own message already names the seed).
func flatten(err error) error {
	var multi interface{ WrappedErrors() []error }
	if errors.As(err, &multi) {
		return errors.Join(multi.WrappedErrors()...)
	}
	return err
}

// filterSeeds drops empty seeds, repeats and this node's own address.
func filterSeeds(seeds []string, self string) []string {
	self = canonicalAddr(self)
	seen := make(map[string]bool, len(seeds))
	out := make([]string, 0, len(seeds))
	for _, s := range seeds {
		s = strings.TrimSpace(s)
		c := canonicalAddr(s)
		if s == "" || c == self || seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, s)
	}
	return out
}

// canonicalAddr normalises "host:port" (optionally "name/host:port", as
// memberlist accepts) so that equal IPs compare equal.
func canonicalAddr(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 {
		s = s[i+1:]
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return s
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}
