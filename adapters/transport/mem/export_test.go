package mem

// Streams returns how many live stream ends t tracks, for tests that check
// finished streams are forgotten.
func Streams(t *Transport) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.streams)
}
