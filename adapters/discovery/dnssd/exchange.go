package dnssd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// Errors wrapped by Discover's errors; check them with errors.Is.
var (
	// ErrServer means a DNS server answered with an error code other than
	// NXDOMAIN (SERVFAIL, REFUSED, NOTIMP, ...).
	ErrServer = errors.New("DNS server answered with an error")
	// ErrNoAnswer means a DNS server did not answer in time, could not be
	// reached, or sent a reply that is not an answer to the query.
	ErrNoAnswer = errors.New("no usable reply from DNS server")
	// ErrNoUsableRecords means records were found but none of them gave a
	// usable address.
	ErrNoUsableRecords = errors.New("no usable DNS records")
)

// udpSize is the EDNS0 UDP payload size advertised in queries: the size
// recommended by DNS Flag Day 2020, which avoids IP fragmentation. Larger
// answers come back truncated and are asked again over TCP.
const udpSize = 1232

// query asks the configured servers for name's records of type qtype and
// returns the first reply that is NOERROR or NXDOMAIN. Each round asks every
// server once, in order; a server that does not answer in time is asked
// again in the next round, up to s.attempts rounds, while one that answers
// with an error code is not asked again. A reply with the TC bit set is
// asked again over TCP from the same server.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	failures := make([]error, len(r.s.servers))
	final := make([]bool, len(r.s.servers)) // answered with an error code
	for range r.s.attempts {
		for i, server := range r.s.servers {
			if final[i] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("dnssd: %s query for %s: %w", typeName(qtype), name, err)
			}
			resp, err := r.ask(ctx, server, name, qtype)
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("dnssd: %s query for %s: %w", typeName(qtype), name, ctx.Err())
				}
				failures[i] = fmt.Errorf("%s: %w: %w", server, ErrNoAnswer, err)
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return resp, nil
			}
			failures[i] = fmt.Errorf("%s answered %s: %w", server, rcodeName(resp.Rcode), ErrServer)
			final[i] = true
		}
	}
	return nil, fmt.Errorf("dnssd: %s query for %s: %w", typeName(qtype), name, errors.Join(failures...))
}

// ask sends one query to server, over UDP and then over TCP if the UDP
// reply is truncated, and checks that the reply answers it.
func (r *Resolver) ask(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype) // also sets a random ID and RD
	q.SetEdns0(udpSize, false)
	resp, err := r.exchange(ctx, r.udp, server, q)
	if resp != nil && resp.Truncated && resp.Response {
		// Unpacking a truncated reply may fail on its cut-off records; the
		// header is still good enough to know we must ask over TCP.
		r.s.log.Debug("dnssd: truncated UDP reply, asking over TCP", "server", server, "name", name, "type", typeName(qtype))
		q.Id = dns.Id()
		resp, err = r.exchange(ctx, r.tcp, server, q)
	}
	if err != nil {
		return nil, err
	}
	if err := checkReply(q, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// exchange sends q to server with c and waits for the reply, for at most
// the configured timeout. dns.Client.ExchangeContext honours only ctx's
// deadline, not its cancellation, so the connection is dialled here and
// closed as soon as ctx ends, which wakes the pending read at once.
//
// An error caused by the end of ctx wraps ctx's error; one caused by the
// per-query timeout says so without wrapping context.DeadlineExceeded, so
// that callers do not mistake it for the end of their own ctx.
func (r *Resolver) exchange(ctx context.Context, c *dns.Client, server string, q *dns.Msg) (*dns.Msg, error) {
	qctx, cancel := context.WithTimeout(ctx, r.s.timeout)
	defer cancel()
	resp, err := func() (*dns.Msg, error) {
		conn, err := c.DialContext(qctx, server)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		stop := context.AfterFunc(qctx, func() { _ = conn.Close() })
		defer stop()
		resp, _, err := c.ExchangeWithConnContext(qctx, q, conn)
		return resp, err
	}()
	switch {
	case err == nil:
		return resp, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case qctx.Err() != nil || isTimeout(err):
		return resp, fmt.Errorf("no reply over %s within %v", c.Net, r.s.timeout)
	}
	return resp, err
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkReply reports whether resp is a reply to q: a response that repeats
// q's question (a server may leave the question out of an error reply).
func checkReply(q, resp *dns.Msg) error {
	if resp == nil || !resp.Response {
		return errors.New("reply is not a DNS response")
	}
	if resp.Opcode != dns.OpcodeQuery {
		return fmt.Errorf("reply has opcode %d, want QUERY", resp.Opcode)
	}
	if len(resp.Question) == 0 {
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			return errors.New("reply has no question section")
		}
		return nil
	}
	got, want := resp.Question[0], q.Question[0]
	if len(resp.Question) != 1 || got.Qtype != want.Qtype || got.Qclass != want.Qclass || !strings.EqualFold(got.Name, want.Name) {
		return fmt.Errorf("reply is for %s %s, not %s %s", got.Name, typeName(got.Qtype), want.Name, typeName(want.Qtype))
	}
	return nil
}

// typeName returns the mnemonic of a record type ("SRV").
func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// rcodeName returns the mnemonic of a response code ("SERVFAIL").
func rcodeName(c int) string {
	if s, ok := dns.RcodeToString[c]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", c)
}
