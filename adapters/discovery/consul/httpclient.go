package consul

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxResponseBytes bounds the body of one answer from the agent. A health
// answer is about 1-2 KiB per instance, so this allows tens of thousands
// of instances while a broken or hostile endpoint cannot exhaust memory.
const maxResponseBytes = 64 << 20

// errResponseTooLarge is returned when an answer exceeds its bound.
var errResponseTooLarge = errors.New("response body too large")

// limitTransport wraps a RoundTripper so that every response body fails
// with errResponseTooLarge after max bytes.
type limitTransport struct {
	next http.RoundTripper
	max  int64
}

// RoundTrip implements http.RoundTripper.
func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp == nil {
		return resp, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max, max: t.max}
	return resp, nil
}

// CloseIdleConnections closes the wrapped transport's idle connections, so
// that http.Client.CloseIdleConnections still works through the wrapper.
func (t *limitTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// limitedBody is a response body that fails after max bytes.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	max  int64
}

// Read implements io.Reader.
func (b *limitedBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.left <= 0 {
		// Exactly max bytes is fine; one more is not.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w (more than %d bytes)", errResponseTooLarge, b.max)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

// Close implements io.Closer.
func (b *limitedBody) Close() error { return b.rc.Close() }
